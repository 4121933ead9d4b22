"""Network backends behind one interface: `run(batch) -> (heatmaps, pafs)` on numpy arrays.

This module imports neither torch nor onnxruntime at load time, so a process that only runs an ONNX model never
pays for torch (memory, start-up).
"""
import copy
import ctypes
import os
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # for the annotations only: importing torch here is what this module avoids
    import torch

# The device of every entry point (node, executables, learner) unless told: CUDA when there is one, else the CPU.
DEFAULT_DEVICE = 'auto'
DEFAULT_OPENVINO_DEVICE = 'CPU'  # OpenVINO's device name (or an Intel 'GPU', 'NPU')
INPUT_NAME = 'image'
OUTPUT_NAMES = ('heatmaps', 'pafs')


class Backend(Protocol):
    """What the pipeline runs the network with (openpose_ros.inference.estimator.PoseEstimator).

    `name` says what runs it (e.g. 'onnxruntime-cpu', 'openvino-cpu-bf16'); `run` takes the network input, a
    float32 (1, 3, H, W) array, and returns its heatmaps (1, 19, H/stride, W/stride) and PAFs
    (1, 38, H/stride, W/stride) as float32 arrays.
    """

    name: str

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The heatmaps and PAFs of `batch`."""


def cpu_threads() -> int:
    """Cores this process may use (respects taskset/cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def return_free_heap() -> None:
    """Hands the heap's free pages back to the system (glibc's malloc_trim). Building a session frees about a
    third of what it allocated (the parsed model and its copies), which glibc would otherwise keep in the
    process's RSS for good: 37 MiB of the 2-stage model. Elsewhere than glibc there is nothing to do."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


class TorchBackend:
    """Runs a torch network (eager); fp16 when `half` on CUDA."""

    def __init__(self, network: 'torch.nn.Module', device: 'str | torch.device' = 'cpu', half: bool = False) -> None:
        """`network` is moved to `device` and put in eval mode; with `half`, a half-precision copy runs it."""
        import torch
        if half and not str(device).startswith('cuda'):
            raise ValueError('half precision needs a CUDA device')
        self._torch = torch
        self.device = torch.device(device)
        self.half = half
        self.network = network.to(self.device).eval()
        if half:
            # half() converts in place: the caller's fp32 weights (to train, save or export) stay untouched.
            self.network = copy.deepcopy(self.network).half()
        self.name = f'torch-{self.device.type}' + ('-fp16' if half else '')

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The last stage's (heatmaps, pafs), float32 numpy arrays at 1/stride of the input, for a (N, 3, H, W)
        float32 batch."""
        torch = self._torch
        with torch.inference_mode():
            tensor = torch.from_numpy(batch).to(self.device)
            heatmaps, pafs = self.network(tensor.half() if self.half else tensor)[-2:]
            return heatmaps.float().cpu().numpy(), pafs.float().cpu().numpy()


class OnnxBackend:
    """Runs an exported model with ONNX Runtime: CUDA when asked and available, else a tuned CPU session."""

    def __init__(self, path: str | os.PathLike[str], device: str = 'cpu', threads: int | None = None) -> None:
        """`path`: the ONNX model; `device`: 'cpu' or 'cuda[:N]'; `threads`: CPU threads (default: the cores this
        process may use)."""
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        # Spinning threads steal the cores that OpenCV and numpy need between runs.
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        options.add_session_config_entry('session.inter_op.allow_spinning', '0')
        # Peak memory: weights outside the arena, and the arena reused across layers instead of one block
        # planned for all of them (-12 to -15 MiB peak RSS on the 1- and 2-stage models, same speed).
        options.add_session_config_entry('session.use_device_allocator_for_initializers', '1')
        options.enable_mem_pattern = False
        providers = ['CPUExecutionProvider']
        if str(device).startswith('cuda'):
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise RuntimeError('device is cuda but this onnxruntime has no CUDA provider: '
                                   'install onnxruntime-gpu, or use device="cpu"')
            providers.insert(0, 'CUDAExecutionProvider')
        self.path = path  # the model file, so that a learner can save the model it runs
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        return_free_heap()
        self._input_type = np.float16 if 'float16' in self.session.get_inputs()[0].type else np.float32
        self.name = f'onnxruntime-{self.session.get_providers()[0].replace("ExecutionProvider", "").lower()}'

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (heatmaps, pafs) of a (N, 3, H, W) batch as float32 numpy arrays; the batch is cast to the model's
        input type (float16 or float32) first."""
        heatmaps, pafs = self.session.run(OUTPUT_NAMES, {INPUT_NAME: batch.astype(self._input_type, copy=False)})
        return heatmaps.astype(np.float32, copy=False), pafs.astype(np.float32, copy=False)
