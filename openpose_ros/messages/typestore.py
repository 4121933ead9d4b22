"""Message types for bags: a `rosbags` typestore (ROS 2 Kilted) with this package's messages registered from
their .msg files, and builders of the messages the pose estimation node publishes.

The .msg files are read, not copied: from the source tree (msg/ beside the package), from an install's
share/openpose_ros/msg (colcon, or `pip install .`), or from the folder named by OPENPOSE_ROS_MSG_DIR.
rosbags computes the same type hashes (RIHS01) from them as rosidl does, so bags written here play with
`ros2 bag play` and their messages deserialise in rclpy.
"""
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from openpose_ros.keypoints import NUM_KEYPOINTS, SKELETON2D_KEYPOINTS
from openpose_ros.messages.bodies import normalized_roi, normalized_skeleton, skeleton2d_order

PACKAGE = 'openpose_ros'
MESSAGES = ('BoundingBox2D', 'Keypoint2D', 'Pose2D', 'Pose2DArray', 'Keypoint3D', 'Pose3D', 'Pose3DArray')
MSG_DIR_VARIABLE = 'OPENPOSE_ROS_MSG_DIR'

POSE_ARRAY = f'{PACKAGE}/msg/Pose2DArray'
IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
POSE_3D_ARRAY = f'{PACKAGE}/msg/Pose3DArray'
MARKER_ARRAY = 'visualization_msgs/msg/MarkerArray'   # in rosbags' Kilted typestore, with rosidl's hashes
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)


# REP-155 (ROS4HRI) body messages, registered from hri_msgs' installed .msg files when a run writes them.
HRI_PACKAGE = 'hri_msgs'
HRI_MESSAGES = ('IdsList', 'NormalizedPointOfInterest2D', 'NormalizedRegionOfInterest2D', 'Skeleton2D')
IDS_LIST = f'{HRI_PACKAGE}/msg/IdsList'
ROI = f'{HRI_PACKAGE}/msg/NormalizedRegionOfInterest2D'
SKELETON2D = f'{HRI_PACKAGE}/msg/Skeleton2D'


class MessageDefinitionsNotFound(FileNotFoundError):
    """The openpose_ros .msg files are nowhere to be found; the message lists the places searched."""


def message_folder_candidates(package_name=PACKAGE):
    """Where the .msg files of `package_name` may be, in the order they are searched."""
    candidates = []
    if os.environ.get(MSG_DIR_VARIABLE) and package_name == PACKAGE:
        candidates.append(Path(os.environ[MSG_DIR_VARIABLE]))
    package = Path(__file__).resolve().parents[1]
    if package_name == PACKAGE:
        candidates.append(package.parent / 'msg')                  # source tree
    for parent in package.parents:                                 # <prefix>/lib/pythonX.Y/site-packages/...
        candidates.append(parent / 'share' / package_name / 'msg')
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / package_name / 'msg')
    candidates.append(Path(sys.prefix) / 'share' / package_name / 'msg')
    unique = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def message_folder():
    """The first folder holding all of this package's .msg files; MessageDefinitionsNotFound otherwise."""
    return _first_folder_with(message_folder_candidates(), MESSAGES,
                              f'the openpose_ros message definitions ({", ".join(m + ".msg" for m in MESSAGES)})',
                              f'Set {MSG_DIR_VARIABLE} to the folder holding them (msg/ of the source tree).')


def hri_message_folder():
    """The installed hri_msgs .msg folder (a ROS 2 distribution's, or the one `make setup` built into the virtual
    environment); MessageDefinitionsNotFound otherwise."""
    return _first_folder_with(message_folder_candidates(HRI_PACKAGE), HRI_MESSAGES,
                              'the hri_msgs message definitions (REP-155 body topics)',
                              'Install hri_msgs (make setup, or the ros-<distro>-hri-msgs package) or leave out '
                              'the REP-155 topics.')


def _first_folder_with(candidates, names, what, hint):
    for folder in candidates:
        if all((folder / f'{name}.msg').is_file() for name in names):
            return folder
    searched = '\n  '.join(str(folder) for folder in candidates)
    raise MessageDefinitionsNotFound(f'{what} were not found; searched:\n  {searched}\n{hint}')


@lru_cache(maxsize=None)
def _typestore(folder, hri_folder=None):
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    sources = [(folder, PACKAGE, MESSAGES)] + ([(hri_folder, HRI_PACKAGE, HRI_MESSAGES)] if hri_folder else [])
    for source, package, names in sources:
        for name in names:
            types.update(get_types_from_msg((Path(source) / f'{name}.msg').read_text(encoding='utf-8'),
                                            f'{package}/msg/{name}'))
    store.register(types)
    return store


def typestore(folder=None, hri=False):
    """The ROS 2 Kilted typestore with openpose_ros/msg/* registered (one per folder, cached), and with `hri` the
    hri_msgs body messages."""
    return _typestore(str(Path(folder) if folder is not None else message_folder()),
                      str(hri_message_folder()) if hri else None)


# --- messages ------------------------------------------------------------------------------------------------
def header(store, stamp_ns=0, frame_id=''):
    """A std_msgs/Header with the given stamp (integer nanoseconds) and frame id."""
    Header, Time = store.types['std_msgs/msg/Header'], store.types['builtin_interfaces/msg/Time']
    seconds, nanoseconds = divmod(int(stamp_ns), 1_000_000_000)
    return Header(stamp=Time(sec=seconds, nanosec=nanoseconds), frame_id=frame_id)


def stamp_ns(header_msg):
    """A std_msgs/Header's stamp in integer nanoseconds."""
    return int(header_msg.stamp.sec) * 1_000_000_000 + int(header_msg.stamp.nanosec)


def pose_array(store, poses, header_msg):
    """Poses (openpose_ros.pose.Pose) -> openpose_ros/msg/Pose2DArray, with the rules of the node's
    openpose_ros.messages.conversions.poses_to_msg: scores clipped to [0, 1], missing keypoints valid = false,
    x = y = -1, score 0."""
    types = store.types
    Pose2DArray, Pose2D = types[POSE_ARRAY], types[f'{PACKAGE}/msg/Pose2D']
    Keypoint2D, BoundingBox2D = types[f'{PACKAGE}/msg/Keypoint2D'], types[f'{PACKAGE}/msg/BoundingBox2D']
    out = []
    for pose in poses:
        found = np.asarray(pose.found, bool).reshape(NUM_KEYPOINTS)
        points = np.where(found[:, None], np.asarray(pose.keypoints, np.float64).reshape(NUM_KEYPOINTS, 2), -1.0)
        scores = np.where(found, np.clip(np.asarray(pose.keypoint_scores, np.float64).reshape(NUM_KEYPOINTS),
                                         0.0, 1.0), 0.0)
        x, y, width, height = (float(v) for v in pose.bbox)
        out.append(Pose2D(
            track_id=int(pose.id), score=float(np.clip(pose.confidence, 0.0, 1.0)),
            bbox=BoundingBox2D(x=x, y=y, width=width, height=height),
            keypoints=[Keypoint2D(x=kx, y=ky, score=s, valid=v)
                       for (kx, ky), s, v in zip(points.tolist(), scores.tolist(), found.tolist())]))
    return Pose2DArray(header=header_msg, poses=out)


def image(store, bgr, header_msg):
    """BGR uint8 (h, w, 3) -> sensor_msgs/msg/Image, encoding bgr8, rows unpadded."""
    bgr = np.ascontiguousarray(bgr)
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f'expected a BGR uint8 array of shape (height, width, 3), got {bgr.dtype} {bgr.shape}')
    height, width = bgr.shape[:2]
    return store.types[IMAGE](header=header_msg, height=height, width=width, encoding='bgr8', is_bigendian=0,
                              step=width * 3, data=bgr.reshape(-1))


def compressed_image(store, bgr, header_msg, quality=90):
    """BGR uint8 (h, w, 3) -> sensor_msgs/msg/CompressedImage, format 'bgr8; jpeg compressed bgr8' (the
    image_transport convention)."""
    import cv2
    ok, data = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError('OpenCV could not encode the image as JPEG')
    return store.types[COMPRESSED_IMAGE](header=header_msg, format='bgr8; jpeg compressed bgr8',
                                         data=data.reshape(-1))


def ids_list(store, ids, header_msg):
    """Body ids -> hri_msgs/msg/IdsList."""
    return store.types[IDS_LIST](header=header_msg, ids=list(ids))


def roi(store, pose, header_msg, width, height):
    """A pose's box normalised by the image size -> hri_msgs/msg/NormalizedRegionOfInterest2D (as the node)."""
    xmin, ymin, xmax, ymax, confidence = normalized_roi(pose, width, height)
    return store.types[ROI](header=header_msg, xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, c=confidence)


def skeleton2d(store, pose, header_msg, width, height):
    """A pose normalised by the image size -> hri_msgs/msg/Skeleton2D, keypoints placed by name (as the node)."""
    types = store.types
    Skeleton2D, Point = types[SKELETON2D], types[f'{HRI_PACKAGE}/msg/NormalizedPointOfInterest2D']
    order = skeleton2d_order({name: getattr(Skeleton2D, name) for name in SKELETON2D_KEYPOINTS})
    rows = normalized_skeleton(pose, width, height, order)
    return Skeleton2D(header=header_msg, skeleton=[Point(x=float(x), y=float(y), c=float(c)) for x, y, c in rows])
