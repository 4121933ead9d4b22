"""REP-155 (ROS4HRI) body messages (openpose_ros.messages.bodies): the keypoint order mapping, normalised skeletons
and boxes, and body ids."""
import re

import numpy as np
import pytest

from openpose_ros.keypoints import KEYPOINT_NAMES, SKELETON2D_KEYPOINTS
from openpose_ros.messages.bodies import ID_LENGTH, BodyIds, normalized_roi, normalized_skeleton, skeleton2d_order
from openpose_ros.pose import Pose
from ros_helpers import SHARED_DATA


SKELETON2D_MSG = SHARED_DATA.parent / 'vendor' / 'hri_msgs' / 'msg' / 'Skeleton2D.msg'


def skeleton2d_msg_constants():
    """The keypoint constants of the vendored Skeleton2D.msg: {'NOSE': 0, ...}."""
    return {name: int(value) for name, value in
            re.findall(r'^uint8\s+([A-Z_]+)\s*=\s*(\d+)', SKELETON2D_MSG.read_text(), re.MULTILINE)}


# --- fast: mapping and ids ------------------------------------------------------------------------------------
def test_skeleton2d_order_puts_the_eyes_and_ears_where_skeleton2d_numbers_them():
    constants = skeleton2d_msg_constants()
    assert (constants['LEFT_EYE'], constants['RIGHT_EYE'], constants['LEFT_EAR'], constants['RIGHT_EAR']) == \
        (14, 15, 16, 17)
    order = skeleton2d_order(constants)
    assert order[:14] == tuple(range(14))  # nose .. left ankle: the same numbers in both
    assert [KEYPOINT_NAMES[index] for index in order[14:]] == ['l_eye', 'r_eye', 'l_ear', 'r_ear']
    assert sorted(order) == list(range(18))


def test_normalized_skeleton_and_roi_divide_by_the_image_size_and_zero_missing_keypoints():
    keypoints = np.array([(10.0 * i + 5, 7.0 * i + 3) for i in range(18)], np.float32)
    keypoints[KEYPOINT_NAMES.index('l_ear')] = -1  # missing
    pose = Pose(keypoints, 0.8, keypoint_scores=np.linspace(0.1, 0.9, 18))
    width, height = 400, 300
    constants = skeleton2d_msg_constants()
    rows = normalized_skeleton(pose, width, height, skeleton2d_order(constants))
    for constant, name in SKELETON2D_KEYPOINTS.items():
        index = KEYPOINT_NAMES.index(name)
        expected = (0, 0, 0) if name == 'l_ear' else (*(keypoints[index] / (width, height)),
                                                      pose.keypoint_scores[index])
        np.testing.assert_allclose(rows[constants[constant]], expected, rtol=1e-6, err_msg=constant)
    found = keypoints[pose.found]
    assert normalized_roi(pose, width, height) == pytest.approx(
        (found[:, 0].min() / width, found[:, 1].min() / height, found[:, 0].max() / width,
         found[:, 1].max() / height, 0.8))


def test_body_ids_stay_with_their_track_and_are_never_given_again():
    bodies = BodyIds()
    first = bodies.update([0, 1], alive=[0, 1])
    assert set(first.started) == {0, 1} and not first.ended
    assert all(len(body) == ID_LENGTH and body.isalpha() and body.islower() for body in first.started.values())
    assert bodies.update([1], alive=[0, 1]).started == {}  # track 0 missed, still kept: same bodies
    assert bodies.bodies == first.started
    second = bodies.update([1], alive=[1])
    assert second.ended == {0: first.started[0]}
    # The tracker restarts (reset) and numbers a new person 0 again: a new body id.
    assert bodies.clear() == {1: first.started[1]}
    again = bodies.update([0], alive=[0])
    assert again.started[0] not in first.started.values()
    assert bodies.update([-1], alive=[0]).started == {}  # untracked poses are no bodies


def test_body_ids_of_a_long_run_are_all_different():
    bodies = BodyIds(salt=12345)
    ids = [bodies.update([track], alive=[track]).started[track] for track in range(100_000)]
    assert len(set(ids)) == len(ids)


def expected_skeleton(points, width, height, constants):
    """(18, 2) Skeleton2D coordinates of OpenPose keypoints `points` (-1 where missing), placed by name."""
    expected = np.zeros((18, 2))
    for constant, name in SKELETON2D_KEYPOINTS.items():
        point = points[KEYPOINT_NAMES.index(name)]
        expected[constants[constant]] = point / (width, height) if point[0] >= 0 else 0
    return expected
