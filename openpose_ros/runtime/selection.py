"""Which network backend to run: the fastest one available, named for logs and diagnostics.

On CPU the order is int8 ONNX (when a quantised model exists beside the model), then the fastest at fp32's
accuracy: OpenVINO bf16 where the CPU has native bf16, else OpenVINO fp32, ONNX Runtime fp32, torch eager; int8
runs on OpenVINO when it is installed, else ONNX Runtime. On CUDA it is ONNX Runtime with the CUDA provider, then
torch. `choose_backend` decides without loading anything heavy (no torch import); `apply_backend` puts a
learner on the chosen backend.
"""
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from openpose_ros.runtime.openvino import PRECISIONS
from openpose_ros.runtime.quantize import QUANTIZED_SUFFIX, quantized_path
from openpose_ros.runtime.saved_model import read_saved_model, verified_model_file
from openpose_ros.runtime.backends import DEFAULT_OPENVINO_DEVICE

BACKENDS = ('torch', 'onnx', 'int8', 'openvino')
AUTO = 'auto'
BACKEND_CHOICES = (AUTO,) + BACKENDS  # what a user may ask for


@dataclass(frozen=True)
class BackendChoice:
    """name: 'int8', 'onnx', 'openvino' or 'torch'; model: the ONNX file to run (None: export/quantise from the
    torch model first, or torch itself); reason: why, in words, for logs; precision (OpenVINO): 'fp32', 'bf16'
    or 'int8'; openvino_device: the OpenVINO device it runs on."""
    name: str
    model: Path = None
    reason: str = ''
    precision: str = ''
    openvino_device: str = DEFAULT_OPENVINO_DEVICE

    def __str__(self):
        what = f'{self.name} {self.precision}' if self.precision else self.name
        return f'{what} ({self.reason})' if self.reason else what


def _installed(module):
    return importlib.util.find_spec(module) is not None


def onnxruntime_providers():
    """The execution providers of the installed onnxruntime, [] when it is not installed."""
    if not _installed('onnxruntime'):
        return []
    import onnxruntime
    return list(onnxruntime.get_available_providers())


def saved_onnx_models(model):
    """(fp32 ONNX path or None, int8 ONNX path or None) of a saved model folder or of an .onnx file (its int8
    twin beside it); (None, None) for anything else. A folder with checksums offers only the files its metadata
    lists; one saved before them, <name>.onnx (or the one named) and its int8 twin <name>.int8.onnx."""
    if model is None:
        return None, None
    model = Path(model)
    if model.is_dir():
        try:
            saved = read_saved_model(model)
        except (ValueError, OSError):
            return None, None  # not a saved model (load() says why)
        if saved.checksums is not None:
            return tuple(path if path is not None and path.is_file() else None for path in (saved.onnx, saved.int8))
        fp32 = saved.onnx or model / f'{model.name}.onnx'
    elif model.name.endswith(QUANTIZED_SUFFIX):
        return None, model
    elif model.suffix == '.onnx':
        fp32 = model
    else:
        return None, None
    int8 = quantized_path(fp32)
    return (fp32 if fp32.is_file() else None), (int8 if int8.is_file() else None)


def choose_backend(model=None, device='cpu', prefer=AUTO, precision=AUTO, openvino_device=DEFAULT_OPENVINO_DEVICE,
                   capabilities=None):
    """Picks the backend to run `model` (saved folder, checkpoint or .onnx file; None = a model in memory).

    prefer='auto' takes the fastest available; 'int8', 'onnx', 'openvino' or 'torch' insist on one and raise
    RuntimeError if it cannot run here. precision (auto and openvino): 'auto' runs int8 when a quantised model is
    there, else the fastest at fp32's accuracy; 'fp32' or 'bf16' insist (bf16 without native support runs fp32,
    with a warning). capabilities: the OpenVINO device's optimisation capabilities (default: asked of it). The
    returned choice's `model` is the ONNX file to load, or None when it has to be exported (and, for int8,
    quantised) from the torch model first.
    """
    _check_request(prefer, precision)
    cuda = str(device).startswith('cuda')
    fp32, int8 = saved_onnx_models(model)
    if prefer == 'openvino' or (prefer == AUTO and not cuda and _installed('openvino')):
        if not _installed('openvino'):
            raise RuntimeError('backend openvino was asked for but openvino is not installed (pip install openvino)')
        return _openvino_choice(fp32, int8, precision, openvino_device, capabilities,
                                'asked for' if prefer == 'openvino' else 'fastest available')
    providers = onnxruntime_providers()
    if prefer == 'torch':
        if not _installed('torch'):
            raise RuntimeError('backend torch was asked for but torch is not installed')
        return BackendChoice('torch', None, 'asked for')
    if prefer in ('onnx', 'int8'):
        return _onnxruntime_choice(prefer, fp32 if prefer == 'onnx' else int8, device, cuda, providers)
    return _fastest_choice(fp32, int8, cuda, providers)


def _check_request(prefer: str, precision: str) -> None:
    if prefer not in BACKEND_CHOICES:
        raise ValueError(f'backend must be one of {BACKEND_CHOICES}, got {prefer!r}')
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if precision != AUTO and prefer in ('int8', 'onnx', 'torch'):
        raise ValueError(f'precision {precision} is for backends openvino and auto; backend {prefer} has its own')


def _runs_onnxruntime(providers: list[str], cuda: bool) -> bool:
    return ('CUDAExecutionProvider' in providers) if cuda else bool(providers)


def _onnxruntime_choice(prefer: str, found: Path | None, device: str, cuda: bool,
                        providers: list[str]) -> BackendChoice:
    """Backend `prefer` ('onnx' or 'int8'), asked for, on its saved model `found` (None: exported from the
    weights); RuntimeError when it cannot run on `device`."""
    if not providers:
        raise RuntimeError(f'backend {prefer} needs onnxruntime, which is not installed (pip install onnxruntime)')
    if cuda and not _runs_onnxruntime(providers, cuda):
        raise RuntimeError(f'backend {prefer} on {device} needs onnxruntime-gpu (CUDAExecutionProvider)')
    if prefer == 'int8' and cuda:
        raise RuntimeError('the int8 model is for CPUs; on CUDA use backend onnx (fp16 with half_precision)')
    return BackendChoice(prefer, found, 'asked for' + ('' if found else '; exported from the weights'))


def _fastest_choice(fp32: Path | None, int8: Path | None, cuda: bool, providers: list[str]) -> BackendChoice:
    """The choice of prefer='auto' where OpenVINO does not run: ONNX Runtime (int8 on CPU when quantised), else
    torch."""
    if not _runs_onnxruntime(providers, cuda):
        why = 'onnxruntime is not installed' if not providers else 'onnxruntime has no CUDA provider'
        return BackendChoice('torch', None, why)
    if not cuda and int8 is not None:
        return BackendChoice('int8', int8, f'fastest available: quantised model {int8.name}')
    if fp32 is not None:
        return BackendChoice('onnx', fp32, f'fastest available: {fp32.name}'
                             + ('' if cuda else '; no quantised model'))
    return BackendChoice('onnx', None, 'fastest available: exported from the weights'
                         + ('' if cuda else '; no quantised model'))


def _openvino_choice(fp32, int8, precision, device, capabilities, why):
    from openpose_ros.runtime.openvino import device_capabilities, resolve_precision
    if precision == AUTO and int8 is not None:
        return BackendChoice('openvino', int8, f'{why}: quantised model {int8.name}', 'int8', device)
    capabilities = device_capabilities(device) if capabilities is None else capabilities
    resolved = resolve_precision(precision, capabilities, device)
    native = 'native bf16' if 'BF16' in capabilities else 'no native bf16'
    source = fp32.name if fp32 is not None else 'exported from the weights'
    return BackendChoice('openvino', fp32, f'{why}: {source}; {device} has {native}', resolved, device)


def apply_backend(learner, choice, calibration_images=None):
    """Puts `learner` on `choice` (see choose_backend): loads the ONNX file it names, or exports (and for int8
    quantises, calibrating on `calibration_images`) from the learner's torch model. Returns the backend's
    descriptive name, e.g. 'onnxruntime-cpu-int8', for logs."""
    from openpose_ros.runtime.backends import OnnxBackend
    if choice.name == 'torch':
        learner.ort_session = None
    elif choice.name == 'openvino' and choice.model is not None:
        from openpose_ros.runtime.openvino import OpenVinoBackend
        learner.ort_session = OpenVinoBackend(verified_model_file(choice.model), choice.precision,
                                              choice.openvino_device)
    elif choice.name == 'openvino':
        learner.optimize(quantize=choice.precision == 'int8', calibration_images=calibration_images,
                         backend='openvino', precision=choice.precision, openvino_device=choice.openvino_device)
    elif choice.model is not None:
        learner.ort_session = OnnxBackend(verified_model_file(choice.model), learner.device)
    else:
        learner.optimize(quantize=choice.name == 'int8', calibration_images=calibration_images)
    learner._invalidate()
    name = learner.estimator.backend.name
    return name + '-int8' if choice.name == 'int8' else name
