"""The node's model: the learner built from the node's parameters, on the chosen backend, and its release.

Free of rclpy. Every problem a user can fix (no weights, a failed download, weights that do not fit, a backend
that cannot run here) raises `ModelError` with a message that says what to do.
"""
import ctypes
import ctypes.util
import gc
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from openpose_ros.ros.params import DECODER_PARAMS, DOWNLOAD, SMOOTHING_PARAMS, TRACKER_PARAMS

LOG = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """The model cannot be loaded; the message is meant for the user."""


@dataclass
class LoadedModel:
    learner: object
    backend: str        # e.g. 'onnxruntime-cpu', 'onnxruntime-cpu-int8', 'torch-cpu'
    reason: str         # why that backend
    weights: Path       # the file or folder loaded


def default_download_dir():
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(cache) / 'openpose_ros'


def _weights_help(folder):
    from openpose_ros.download import ORIGINAL_CHECKPOINT_URL, MIRROR_VARIABLE
    return (f"Pass weights:=<folder saved by learner.save() or checkpoint file>, or weights:=download to fetch "
            f"the published model ({ORIGINAL_CHECKPOINT_URL}) into {folder}; offline, fetch that file elsewhere "
            f"and copy it there, or set {MIRROR_VARIABLE} to a folder or server that has it.")


def resolve_weights(weights, download_dir=''):
    """The weights parameter -> an existing path: downloads for 'download'. Raises ModelError."""
    folder = Path(download_dir).expanduser() if download_dir else default_download_dir()
    if weights == DOWNLOAD:
        from openpose_ros.download import DownloadError, download
        try:
            return Path(download(folder, 'pretrained'))
        except DownloadError as error:
            raise ModelError(f'weights:=download failed: {error}') from error
    if not weights:
        raise ModelError('no weights given. ' + _weights_help(folder))
    path = Path(weights).expanduser()
    if not path.exists():
        raise ModelError(f'no weights at {path}. ' + _weights_help(folder))
    return path


def refinement_stages_of(state_dict):
    return len({key.split('.')[1] for key in state_dict if key.startswith('refinement_stages.')})


def load_model(settings, temp_dir):
    """A learner ready to infer, configured from the node's parameter values `settings` (a dict).

    ONNX models exported (or quantised) at start are written under `temp_dir`.
    """
    from openpose_ros.checkpoints import extract_state_dict, read_checkpoint
    from openpose_ros.learner import LightweightOpenPoseLearner

    weights = resolve_weights(settings['weights'], settings['download_dir'])
    options = dict(device=settings['device'], backbone=settings['backbone'],
                   mobilenet_use_stride=settings['mobilenet_use_stride'],
                   half_precision=settings['half_precision'], temp_path=str(temp_dir))
    try:
        if weights.is_file():
            stages = settings['num_refinement_stages']
            if stages < 0:
                stages = refinement_stages_of(extract_state_dict(read_checkpoint(weights)))
            options['num_refinement_stages'] = stages
        learner = LightweightOpenPoseLearner(**options)
        learner.load(weights)
    except (ValueError, FileNotFoundError, OSError) as error:
        raise ModelError(f'cannot load the weights {weights}: {error}') from error
    if settings['base_height']:
        learner.base_height = settings['base_height']
    try:
        backend, reason = _apply_backend(learner, weights, settings['backend'])
    except (RuntimeError, ValueError, FileNotFoundError, OSError, ImportError) as error:
        raise ModelError(f'cannot run the {settings["backend"]} backend: {error}') from error
    apply_settings(learner, settings)
    return LoadedModel(learner, backend, reason, weights)


def _apply_backend(learner, weights, prefer):
    try:
        from openpose_ros.acceleration import apply_backend, choose_backend
    except ImportError:  # an installation without the backend chooser: ONNX Runtime when asked or auto
        if prefer in ('auto', 'onnx', 'int8'):
            learner.optimize(quantize=prefer == 'int8')
        return learner.estimator.backend.name, 'asked for' if prefer != 'auto' else 'ONNX Runtime'
    choice = choose_backend(weights if weights.is_dir() else None, learner.device, prefer)
    if choice.name == 'int8' and choice.model is None:
        LOG.warning('quantising the model to int8 (calibration takes a while); save a quantised model '
                    'beside the weights to start faster')
    return apply_backend(learner, choice), choice.reason


def apply_settings(learner, settings):
    """Puts the run-time parameters (thresholds, tracking, smoothing) of `settings` on the learner.
    Raises ValueError (from the pipeline's own checks) for values it refuses."""
    learner.set_thresholds(**{field: settings[name] for name, field in DECODER_PARAMS.items()})
    for name, field in SMOOTHING_PARAMS.items():
        setattr(learner.smoother.settings, field, float(settings[name]))
    learner.smoother.settings.validate()
    for name, field in TRACKER_PARAMS.items():
        setattr(learner.tracker, field, settings[name])


def release_memory():
    """Returns freed memory to the system: Python's garbage, CUDA's cache, and glibc's free heap pages."""
    gc.collect()
    try:
        import sys
        if 'torch' in sys.modules and sys.modules['torch'].cuda.is_available():
            sys.modules['torch'].cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort
        pass
    name = ctypes.util.find_library('c')
    if name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass
