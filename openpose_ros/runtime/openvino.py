"""OpenVINO backend: the exported ONNX model in fp32, bf16 (where the device computes it natively) or int8.

Same interface as openpose_ros.runtime.backends: `run(batch) -> (heatmaps, pafs)`. Imports neither torch nor
onnxruntime, so an OpenVINO-only process pays for neither. The model is compiled once per input size (a camera's
size does not change) and the compiled models of the last few sizes are kept.
"""
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openpose_ros.runtime.backends import INPUT_NAME, OUTPUT_NAMES, OnnxBackend, _return_free_heap, cpu_threads
from openpose_ros.runtime.quantize import QUANTIZED_SUFFIX, quantized_path

LOG = logging.getLogger(__name__)
PRECISIONS = ('auto', 'fp32', 'bf16')
DEFAULT_DEVICE = 'CPU'
COMPILED_SIZES = 4  # input sizes whose compiled model is kept: a few cameras, or a few scales
_PRECISION_HINTS = {'fp32': 'f32', 'bf16': 'bf16', 'int8': 'f32'}  # int8: its float layers stay fp32


def device_capabilities(device: str = DEFAULT_DEVICE) -> tuple[str, ...]:
    """The device's OPTIMIZATION_CAPABILITIES, e.g. ('FP32', 'BF16', 'INT8', ...); BF16 means native bf16."""
    import openvino
    return tuple(openvino.Core().get_property(device, 'OPTIMIZATION_CAPABILITIES'))


def resolve_precision(asked: str, capabilities: Sequence[str], device: str = DEFAULT_DEVICE) -> str:
    """The float precision to run: 'auto' is bf16 where the device has native bf16, else fp32; 'bf16' without
    native bf16 (emulated, slower than fp32) runs fp32 with a warning."""
    if asked not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {asked!r}')
    native_bf16 = 'BF16' in capabilities
    if asked == 'bf16' and not native_bf16:
        LOG.warning('precision bf16 was asked for but OpenVINO device %s has no native bf16 (capabilities: %s); '
                    'running fp32', device, ', '.join(capabilities))
        return 'fp32'
    if asked == 'auto':
        return 'bf16' if native_bf16 else 'fp32'
    return asked


class OpenVinoBackend:
    """Runs an exported ONNX model (dynamic height and width) with OpenVINO, tuned for latency.

    path: an fp32 model, or a quantised <name>.int8.onnx (whose precision is 'int8' whatever is asked: its
    float layers run fp32); precision: 'auto', 'fp32' or 'bf16' (see resolve_precision); device: an OpenVINO
    device ('CPU', 'GPU', 'NPU'); threads: CPU inference threads (default: the cores this process may use);
    capabilities: the device's optimisation capabilities (default: asked of the device); compiled_sizes: how
    many input sizes keep their compiled model.
    """

    def __init__(self, path: str | os.PathLike[str], precision: str = 'auto', device: str = DEFAULT_DEVICE,
                 threads: int | None = None, capabilities: Sequence[str] | None = None,
                 compiled_sizes: int = COMPILED_SIZES) -> None:
        import openvino
        if compiled_sizes < 1:
            raise ValueError(f'compiled_sizes must be >= 1, got {compiled_sizes}')
        self.device = str(device)
        self.path = Path(path)  # the model file, so that a learner can save the model it runs
        if Path(path).name.endswith(QUANTIZED_SUFFIX):
            self.precision = 'int8'
        else:
            if capabilities is None:
                capabilities = device_capabilities(self.device)
            self.precision = resolve_precision(precision, capabilities, self.device)
        self._core = openvino.Core()
        self._model = self._core.read_model(str(path))
        self._config: dict[str, str | int] = {'PERFORMANCE_HINT': 'LATENCY',
                                              'INFERENCE_PRECISION_HINT': _PRECISION_HINTS[self.precision]}
        if self.device == DEFAULT_DEVICE:
            self._config['INFERENCE_NUM_THREADS'] = int(threads or cpu_threads())
        self._compiled_sizes = compiled_sizes
        # input shape -> infer request of the model compiled for it
        self._requests: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.name = f'openvino-{self.device.lower()}-{self.precision}'
        self.runtime = {'backend': 'openvino', 'precision': self.precision, 'device': self.device}

    @property
    def compiled_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with a compiled model, least recently used first."""
        return list(self._requests)

    def _request(self, shape: tuple[int, ...]) -> Any:
        request = self._requests.get(shape)
        if request is not None:
            self._requests.move_to_end(shape)
            return request
        if len(self._requests) >= self._compiled_sizes:
            self._requests.popitem(last=False)
        self._model.reshape({INPUT_NAME: list(shape)})  # a static shape compiles to faster code
        request = self._core.compile_model(self._model, self.device, self._config).create_infer_request()
        _return_free_heap()
        self._requests[shape] = request
        return request

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The heatmaps and PAFs of `batch`, as float32 numpy arrays."""
        request = self._request(tuple(batch.shape))
        request.infer({INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        # The request reuses its output memory on the next run: copy.
        heatmaps, pafs = (np.array(request.get_tensor(name).data, dtype=np.float32) for name in OUTPUT_NAMES)
        return heatmaps, pafs


def runtime_backend(path: str | os.PathLike[str], device: str = 'cpu', runtime: dict[str, str] | None = None
                    ) -> OnnxBackend | OpenVinoBackend:
    """The backend for the ONNX model `path` on the runtime a saved model records (its .json's "runtime", e.g.
    {"backend": "openvino", "precision": "bf16", "device": "CPU"}); ONNX Runtime on `device` when it records
    none. An int8 record runs the quantised twin <name>.int8.onnx when it is there, else fp32 with a warning."""
    runtime = runtime or {}
    if runtime.get('backend') != 'openvino':
        return OnnxBackend(path, device)
    precision = runtime.get('precision', 'auto')
    if precision == 'int8' and not Path(path).name.endswith(QUANTIZED_SUFFIX):
        if quantized_path(path).is_file():
            path = quantized_path(path)
        else:
            LOG.warning('%s was optimised for OpenVINO int8 but %s is missing; running fp32',
                        path, quantized_path(path).name)
            precision = 'fp32'
    return OpenVinoBackend(path, precision, runtime.get('device', DEFAULT_DEVICE))
