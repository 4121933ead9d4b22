"""Real-time multi-person 2D pose estimation (Lightweight OpenPose) for ROS 2 and plain Python."""
import pkgutil

# The messages built by rosidl live in a second `openpose_ros` folder (the colcon install space);
# extending the package path lets `openpose_ros.msg` and the Python modules be found together.
__path__ = pkgutil.extend_path(__path__, __name__)

from openpose_ros.lazy import lazy_attributes

_LAZY = {
    'LightweightOpenPoseLearner': 'openpose_ros.learner',
    'NoWeightsError': 'openpose_ros.learner',
    'Image': 'openpose_ros.inference.image',
    'Pose': 'openpose_ros.pose',
    'draw': 'openpose_ros.pose',
    'get_bbox': 'openpose_ros.pose',
    'ExternalDataset': 'openpose_ros.training.datasets',
    'Intrinsics': 'openpose_ros.inference.lifting',
    'lift_poses': 'openpose_ros.inference.lifting',
}


# Imported on first use, so that `import openpose_ros.msg` does not pull in torch.
__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = list(_LAZY)
