"""The node's model: the learner built from the node's parameters, on the chosen backend, and its release.

Free of rclpy. Every problem a user can fix (no weights, a failed download, weights that do not fit, a backend
that cannot run here) raises `ModelError` (openpose_ros.runtime.loading's) with a message that says what to do.
"""
import gc
import sys
from dataclasses import dataclass

from openpose_ros.inference.pipeline import DepthSettings, StreamSettings
from openpose_ros.parameters import DECODER_PARAMS, LEARNER_ATTRIBUTE_PARAMS, SMOOTHING_PARAMS, TRACKER_PARAMS
from openpose_ros.runtime.backends import return_free_heap
from openpose_ros.runtime.loading import ModelError


@dataclass
class LoadedModel:
    """The loaded model: the learner, the name of the backend it runs on and why that one, and the weights parameter it
    came from."""
    learner: object
    backend: str        # e.g. 'onnxruntime-cpu', 'onnxruntime-cpu-int8', 'torch-cpu'
    reason: str         # why that backend
    weights: str        # the weights parameter: the file or folder loaded, or 'download'


def load_model(settings, temp_dir):
    """A learner ready to infer, configured from the node's parameter values `settings` (a dict), loaded the way
    every executable loads it (openpose_ros.runtime.loading.load_for_inference). ONNX models exported (or quantised) at
    start are written under `temp_dir`. Raises ModelError, whose message starts with the weights parameter."""
    from openpose_ros.runtime.loading import load_for_inference

    stages = settings['num_refinement_stages']
    try:
        learner, choice, backend = load_for_inference(
            settings['weights'], device=settings['device'], backend=settings['backend'],
            precision=settings['precision'], openvino_device=settings['openvino_device'],
            base_height=settings['base_height'] or None, temp_path=temp_dir,
            download_dir=settings['download_dir'] or None, backbone=settings['backbone'],
            mobilenet_use_stride=settings['mobilenet_use_stride'], half_precision=settings['half_precision'],
            num_refinement_stages=None if stages < 0 else stages)
    except ModelError as error:
        raise ModelError(f'weights:={settings["weights"]}: {error}') from error
    apply_settings(learner, settings)
    return LoadedModel(learner, backend, choice.reason, settings['weights'])


def apply_settings(learner, settings):
    """Puts the run-time parameters (thresholds, tracking, smoothing, input bounds) of `settings` on the learner.
    Raises ValueError (from the pipeline's own checks) for values it refuses."""
    learner.set_thresholds(**{field: settings[name] for name, field in DECODER_PARAMS.items()})
    for name, field in SMOOTHING_PARAMS.items():
        setattr(learner.smoother.settings, field, float(settings[name]))
    learner.smoother.settings.validate()
    for name, field in TRACKER_PARAMS.items():
        setattr(learner.tracker, field, settings[name])
    for name in LEARNER_ATTRIBUTE_PARAMS:
        setattr(learner, name, settings[name])


def stream_settings(settings) -> StreamSettings:
    """The per-frame switches of the pipeline from the parameters."""
    return StreamSettings(settings['upsample_ratio'], settings['track'], settings['smooth'],
                          settings['min_pose_score'])


def depth_settings(settings) -> DepthSettings:
    """How keypoints are lifted to 3D, from the depth_* parameters."""
    return DepthSettings(settings['depth_min_range'], settings['depth_max_range'], settings['depth_window_scale'])


def release_memory():
    """Returns freed memory to the system: Python's garbage, CUDA's cache, and glibc's free heap pages."""
    gc.collect()
    try:
        if 'torch' in sys.modules and sys.modules['torch'].cuda.is_available():
            sys.modules['torch'].cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort
        pass
    return_free_heap()
