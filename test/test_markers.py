"""Skeleton markers for rviz (openpose_ros.messages.markers) of lifted real detections."""
import numpy as np
import pytest

from ros_helpers import require_ros
from test_conversions import make_poses


pytestmark = pytest.mark.ros


@pytest.fixture(scope='module', autouse=True)
def ros():
    require_ros()


def test_skeleton_markers_show_valid_keypoints_and_limbs_with_a_colour_per_track_and_a_lifetime():
    from openpose_ros.keypoints import LIMBS, SKELETON
    from openpose_ros.inference.lifting import Intrinsics, lift_poses
    from openpose_ros.messages.conversions import poses_3d_to_msg
    from openpose_ros.messages.markers import skeleton_markers
    from visualization_msgs.msg import Marker

    poses = make_poses()
    depth = np.full((480, 640), 2500, np.uint16)
    depth[40:60, 90:110] = 0                                   # the first pose's nose has no depth
    lifted = lift_poses(poses, depth, Intrinsics([[500, 0, 319.5], [0, 500, 239.5], [0, 0, 1]], 640, 480))
    msg = poses_3d_to_msg(poses, lifted)
    markers = skeleton_markers(msg, lifetime=0.75).markers
    by_person = {}
    for marker in markers:
        assert (marker.lifetime.sec, marker.lifetime.nanosec) == (0, 750_000_000)
        by_person.setdefault(marker.ns.rsplit(' ', 1)[0], {})[marker.type] = marker
    assert set(by_person) == {'person 3', 'person 0'}          # the pose without any valid keypoint shows nothing
    first = by_person['person 3']
    valid = [k.valid for k in msg.poses[0].keypoints]
    assert len(first[Marker.SPHERE_LIST].points) == sum(valid)
    limbs = [LIMBS[limb] for limb in SKELETON if valid[LIMBS[limb][0]] and valid[LIMBS[limb][1]]]
    assert len(first[Marker.LINE_LIST].points) == 2 * len(limbs) > 0
    assert first[Marker.TEXT_VIEW_FACING].text == '3'
    assert first[Marker.SPHERE_LIST].color != by_person['person 0'][Marker.SPHERE_LIST].color
    assert len({(m.ns, m.id) for m in markers}) == len(markers)
