"""OpenVINO backend: the exported ONNX model in fp32, bf16 (where the device computes it natively) or int8.

Same interface as openpose_ros.runtime.backends: `run(batch) -> (heatmaps, pafs)`. Imports neither torch nor
onnxruntime, so an OpenVINO-only process pays for neither, nor for OpenVINO's model-conversion API (see _openvino).
The model is compiled once per input size (a camera's size does not change) and the compiled models of the last
few sizes are kept: each holds its own copy of the weights in the layout the device computes with, and its own
activations.
"""
import logging
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

from openpose_ros.runtime.backends import INPUT_NAME, OUTPUT_NAMES, OnnxBackend, _return_free_heap, cpu_threads
from openpose_ros.runtime.quantize import QUANTIZED_SUFFIX, quantized_path

LOG = logging.getLogger(__name__)
PRECISIONS = ('auto', 'fp32', 'bf16')
DEFAULT_DEVICE = 'CPU'
COMPILED_SIZES = 4  # input sizes whose compiled model is kept: a few cameras, or a few scales
_PRECISION_HINTS = {'fp32': 'f32', 'bf16': 'bf16', 'int8': 'f32'}  # int8: its float layers stay fp32


def _openvino():
    """The openvino module, imported without its model-conversion API when nothing imported it yet.

    `import openvino` also imports openvino.tools.ovc (convert_model) when it can, and with it OpenVINO's
    telemetry, its TensorFlow front end, ssl, multiprocessing, email and about 150 other modules: 16 MiB of the
    process's memory that running an ONNX model never uses. openvino's __init__ skips that API when importing it
    raises ImportError, which a None in sys.modules makes it do; the None is taken out afterwards, so
    `import openvino.tools.ovc` still works later (only the shortcut `openvino.convert_model` is then missing).
    """
    if 'openvino' not in sys.modules:
        sys.modules['openvino.tools.ovc'] = None
        try:
            import openvino  # noqa: F401 (the module is returned from sys.modules)
        finally:
            sys.modules.pop('openvino.tools.ovc', None)
    return sys.modules['openvino']


def _fold_constants(model):
    """Folds the batch norms (and any other constant arithmetic) into the convolutions, as OpenVINO's model
    conversion does. The device would fold them anyway, at every compilation, into new weights that each compiled
    model keeps beside the read model's own; folded once here, the model and every compiled size share one copy:
    the same results bit for bit, 13 MiB less for the published model exported by optimize() (without constant
    folding), 14 MiB less again for every further input size. Not for int8: it changes the quantised graph's
    results a little. Where OpenVINO lacks the transformation (it is not in its public API) the device folds."""
    try:
        from openvino._offline_transformations import apply_moc_transformations
    except ImportError:
        LOG.debug('OpenVINO without apply_moc_transformations: the device folds the constants')
        return
    apply_moc_transformations(model, cf=True)
    _return_free_heap()


def device_capabilities(device: str = DEFAULT_DEVICE) -> tuple:
    """The device's OPTIMIZATION_CAPABILITIES, e.g. ('FP32', 'BF16', 'INT8', ...); BF16 means native bf16."""
    return tuple(_openvino().Core().get_property(device, 'OPTIMIZATION_CAPABILITIES'))


def resolve_precision(asked: str, capabilities, device: str = DEFAULT_DEVICE) -> str:
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

    def __init__(self, path, precision='auto', device=DEFAULT_DEVICE, threads=None, capabilities=None,
                 compiled_sizes=COMPILED_SIZES):
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
        self._core = _openvino().Core()
        self._model = self._core.read_model(str(path))
        if self.precision != 'int8':
            _fold_constants(self._model)
        self._config = {'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_PRECISION_HINT': _PRECISION_HINTS[self.precision]}
        if self.device == DEFAULT_DEVICE:
            self._config['INFERENCE_NUM_THREADS'] = int(threads or cpu_threads())
        self._compiled_sizes = compiled_sizes
        self._requests = OrderedDict()  # input shape -> infer request of the model compiled for it
        self.name = f'openvino-{self.device.lower()}-{self.precision}'
        self.runtime = {'backend': 'openvino', 'precision': self.precision, 'device': self.device}

    @property
    def compiled_shapes(self):
        """Input shapes with a compiled model, least recently used first."""
        return list(self._requests)

    def _request(self, shape):
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

    def run(self, batch):
        """The (heatmaps, pafs) of a (N, 3, H, W) batch as float32 numpy arrays (copies); an input shape not seen
        lately is compiled first."""
        request = self._request(tuple(batch.shape))
        request.infer({INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        # The request reuses its output memory on the next run: copy.
        return tuple(np.array(request.get_tensor(name).data, dtype=np.float32) for name in OUTPUT_NAMES)


def runtime_backend(path, device='cpu', runtime=None):
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
