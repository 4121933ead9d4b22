"""A model ready for inference in one call: weights from a saved folder, a checkpoint file or the published
download, on the fastest backend that runs here. The node and the executables all start this way."""
import os
from pathlib import Path

from openpose_ros.runtime.backends import DEFAULT_DEVICE, DEFAULT_OPENVINO_DEVICE

DOWNLOAD = 'download'  # as weights: fetch the published model


class ModelError(RuntimeError):
    """The model cannot be loaded; the message says what to do."""


def default_download_dir():
    """Where "download" puts the published model: $XDG_CACHE_HOME/openpose_ros, else ~/.cache/openpose_ros."""
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(cache) / 'openpose_ros'


def weights_help(download_dir=None):
    """The sentences telling the user which weights to pass, and how to get the published model offline."""
    from openpose_ros.runtime.download import MIRROR_VARIABLE, ORIGINAL_CHECKPOINT_URL
    folder = download_dir or default_download_dir()
    return (f'Pass a folder saved by learner.save() or a checkpoint file, or "{DOWNLOAD}" to fetch the published '
            f'model ({ORIGINAL_CHECKPOINT_URL}) into {folder}; offline, fetch that file elsewhere and copy it '
            f'there, or set {MIRROR_VARIABLE} to a folder or server that has it (file:///path works).')


def resolve_weights(weights, download_dir=None):
    """The weights argument -> an existing path; "download" fetches the published model. Raises ModelError."""
    folder = Path(download_dir).expanduser() if download_dir else default_download_dir()
    if str(weights) == DOWNLOAD:
        from openpose_ros.runtime.download import DownloadError, download
        try:
            return Path(download(folder, 'pretrained'))
        except DownloadError as error:
            raise ModelError(f'the download of the published model failed: {error}') from error
    if not weights:
        raise ModelError('no weights given. ' + weights_help(folder))
    path = Path(weights).expanduser()
    if not path.exists():
        raise ModelError(f'no weights at {path}. ' + weights_help(folder))
    return path


def refinement_stages_of(state_dict):
    """Number of refinement stages of a network, from its parameter names."""
    return len({key.split('.')[1] for key in state_dict if key.startswith('refinement_stages.')})


def load_for_inference(weights, device=DEFAULT_DEVICE, backend='auto', base_height=None, temp_path=None,
                       download_dir=None, calibration_images=None, precision='auto',
                       openvino_device=DEFAULT_OPENVINO_DEVICE, **learner_options):
    """A LightweightOpenPoseLearner with `weights` on `backend` ('auto': the fastest available; 'torch', 'onnx',
    'int8', 'openvino'), OpenVINO at `precision` on `openvino_device` (see acceleration.choose_backend); returns
    (learner, BackendChoice, backend name for logs). A checkpoint file's refinement stages are read from it
    unless `num_refinement_stages` is given; a saved folder brings its own architecture.

    Raises ModelError, saying what to do, for anything a user can fix.
    """
    from openpose_ros.runtime.selection import apply_backend, choose_backend
    from openpose_ros.runtime.checkpoints import extract_state_dict, read_checkpoint
    from openpose_ros.inference.preprocess import check_base_height
    from openpose_ros.learner import LightweightOpenPoseLearner

    path = resolve_weights(weights, download_dir)
    options = dict(learner_options, device=device)
    if temp_path is not None:
        options['temp_path'] = str(temp_path)
    try:
        if path.is_file() and options.get('num_refinement_stages') is None:
            options['num_refinement_stages'] = refinement_stages_of(extract_state_dict(read_checkpoint(path)))
        options = {key: value for key, value in options.items() if value is not None}
        learner = LightweightOpenPoseLearner(**options)
        learner.load(path)
    except (ValueError, FileNotFoundError, OSError) as error:
        raise ModelError(f'cannot use the weights {path}: {error}. ' + weights_help(download_dir)) from error
    if base_height:
        try:
            check_base_height(base_height)
        except ValueError as error:
            raise ModelError(str(error)) from error
        learner.base_height = base_height
    try:
        choice = choose_backend(path if path.is_dir() else None, learner.device, backend, precision, openvino_device)
        name = apply_backend(learner, choice, calibration_images)
    except (RuntimeError, ValueError, FileNotFoundError, OSError, ImportError) as error:
        raise ModelError(f'cannot run the {backend} backend: {error}') from error
    return learner, choice, name
