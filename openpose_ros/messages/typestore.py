"""Message types for bags: a `rosbags` typestore (ROS 2 Kilted) with this package's messages registered from
their .msg files, and the names of the message types the pose estimation node publishes. The messages themselves
are built by openpose_ros.messages.conversions, .bodies and .markers, with StoreTypes(typestore()) as their
provider (openpose_ros.messages.types).

The .msg files are read, not copied: from the source tree (msg/ beside the package), from an install's
share/openpose_ros/msg (colcon, or `pip install .`), or from the folder named by OPENPOSE_ROS_MSG_DIR.
rosbags computes the same type hashes (RIHS01) from them as rosidl does, so bags written here play with
`ros2 bag play` and their messages deserialise in rclpy.
"""
import os
import sys
from functools import lru_cache
from pathlib import Path

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


def stamp_ns(header_msg):
    """A std_msgs/Header's stamp in integer nanoseconds."""
    return int(header_msg.stamp.sec) * 1_000_000_000 + int(header_msg.stamp.nanosec)
