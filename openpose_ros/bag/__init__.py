"""ROS 2 bags without ROS: read camera bags, run pose estimation on them offline, write what the pose
estimation node would publish, and report on it (the `bag_eval` executable). Uses the pure-Python `rosbags`
library (pip install 'openpose_ros[bags]'); never rclpy.

    messages   typestore with the openpose_ros messages, message builders
    reader     BagInput: image topics and frames of a bag (sqlite3, mcap), decoding
    writer     OutputBag: Pose2DArray, annotated images, Pose3DArray and skeleton markers under the node's topic names
    realtime   NewestFrameWorker: the live node's newest-frame worker replayed on a bag's clock
    report     report.json, report.txt and plots
    evaluate   evaluate_bag(): the whole run
"""
from openpose_ros.lazy import lazy_attributes

_LAZY = {
    'BagError': 'openpose_ros.formats.bag_reader',
    'BagInput': 'openpose_ros.formats.bag_reader',
    'OutputBag': 'openpose_ros.bag.writer',
    'NewestFrameWorker': 'openpose_ros.bag.realtime',
    'BagEvalOptions': 'openpose_ros.bag.evaluate',
    'evaluate_bag': 'openpose_ros.bag.evaluate',
    'typestore': 'openpose_ros.messages.typestore',
}


__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = list(_LAZY)
