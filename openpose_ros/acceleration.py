"""Which network backend to run: the fastest one available, named for logs and diagnostics.

On CPU the order is int8 ONNX (when a quantised model exists beside the model), ONNX Runtime fp32, torch eager;
on CUDA it is ONNX Runtime with the CUDA provider, then torch. `choose_backend` decides without loading
anything heavy (no torch import); `apply_backend` puts a learner on the chosen backend.
"""
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from openpose_ros.quantize import QUANTIZED_SUFFIX, quantized_path

BACKENDS = ('int8', 'onnx', 'torch')
AUTO = 'auto'


@dataclass(frozen=True)
class BackendChoice:
    """name: 'int8', 'onnx' or 'torch'; model: the ONNX file to run (None: export/quantise from the torch
    model first, or torch itself); reason: why, in words, for logs."""
    name: str
    model: Path = None
    reason: str = ''

    def __str__(self):
        return f'{self.name} ({self.reason})' if self.reason else self.name


def _installed(module):
    return importlib.util.find_spec(module) is not None


def onnxruntime_providers():
    """The execution providers of the installed onnxruntime, [] when it is not installed."""
    if not _installed('onnxruntime'):
        return []
    import onnxruntime
    return list(onnxruntime.get_available_providers())


def saved_onnx_models(model):
    """(fp32 ONNX path or None, int8 ONNX path or None) of a saved model folder (<name>.onnx and
    <name>.int8.onnx in it) or of an .onnx file (its int8 twin beside it); (None, None) for anything else."""
    if model is None:
        return None, None
    model = Path(model)
    if model.is_dir():
        fp32 = model / f'{model.name}.onnx'
        metadata = model / f'{model.name}.json'
        if metadata.is_file():
            try:
                named = json.loads(metadata.read_text()).get('onnx')
                fp32 = model / named if named else fp32
            except (ValueError, AttributeError):
                pass
    elif model.name.endswith(QUANTIZED_SUFFIX):
        return None, model
    elif model.suffix == '.onnx':
        fp32 = model
    else:
        return None, None
    int8 = quantized_path(fp32)
    return (fp32 if fp32.is_file() else None), (int8 if int8.is_file() else None)


def choose_backend(model=None, device='cpu', prefer=AUTO):
    """Picks the backend to run `model` (saved folder, checkpoint or .onnx file; None = a model in memory).

    prefer='auto' takes the fastest available; 'int8', 'onnx' or 'torch' insist on one and raise
    RuntimeError if it cannot run here. The returned choice's `model` is the ONNX file to load, or None when
    it has to be exported (and, for int8, quantised) from the torch model first.
    """
    if prefer not in (AUTO,) + BACKENDS:
        raise ValueError(f'backend must be one of {(AUTO,) + BACKENDS}, got {prefer!r}')
    cuda = str(device).startswith('cuda')
    providers = onnxruntime_providers()
    ort_ok = ('CUDAExecutionProvider' in providers) if cuda else bool(providers)
    fp32, int8 = saved_onnx_models(model)
    if prefer == 'torch':
        if not _installed('torch'):
            raise RuntimeError('backend torch was asked for but torch is not installed')
        return BackendChoice('torch', None, 'asked for')
    if prefer in ('onnx', 'int8'):
        if not providers:
            raise RuntimeError(f'backend {prefer} needs onnxruntime, which is not installed (pip install onnxruntime)')
        if cuda and not ort_ok:
            raise RuntimeError(f'backend {prefer} on {device} needs onnxruntime-gpu (CUDAExecutionProvider)')
        if prefer == 'int8' and cuda:
            raise RuntimeError('the int8 model is for CPUs; on CUDA use backend onnx (fp16 with half_precision)')
        found = int8 if prefer == 'int8' else fp32
        return BackendChoice(prefer, found, 'asked for' + ('' if found else '; exported from the weights'))
    # auto
    if not ort_ok:
        why = 'onnxruntime is not installed' if not providers else 'onnxruntime has no CUDA provider'
        return BackendChoice('torch', None, why)
    if not cuda and int8 is not None:
        return BackendChoice('int8', int8, f'fastest available: quantised model {int8.name}')
    if fp32 is not None:
        return BackendChoice('onnx', fp32, f'fastest available: {fp32.name}'
                             + ('' if cuda else '; no quantised model'))
    return BackendChoice('onnx', None, 'fastest available: exported from the weights'
                         + ('' if cuda else '; no quantised model'))


def apply_backend(learner, choice, calibration_images=None):
    """Puts `learner` on `choice` (see choose_backend): loads the ONNX file it names, or exports (and for int8
    quantises, calibrating on `calibration_images`) from the learner's torch model. Returns the backend's
    descriptive name, e.g. 'onnxruntime-cpu-int8', for logs."""
    from openpose_ros.backends import OnnxBackend
    if choice.name == 'torch':
        learner.ort_session = None
    elif choice.model is not None:
        learner.ort_session = OnnxBackend(choice.model, learner.device)
    else:
        learner.optimize(quantize=choice.name == 'int8', calibration_images=calibration_images)
    learner._invalidate()
    name = learner.estimator.backend.name
    return name + '-int8' if choice.name == 'int8' else name
