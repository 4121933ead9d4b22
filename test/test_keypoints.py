"""The OpenPose body model tables of openpose_ros.keypoints: consistent with each other, in OpenPose order."""
from openpose_ros.keypoints import (
    COCO_TO_OPENPOSE, FLIP_PAIRS, GROUPING_ORDER, KEYPOINT_COLORS, KEYPOINT_NAMES, L_SHOULDER, LIMB_COLORS, LIMBS,
    LOOP_LIMBS, NECK, NUM_HEATMAPS, NUM_KEYPOINTS, NUM_LIMBS, NUM_PAFS, R_SHOULDER, SIGMAS, SKELETON,
    SKELETON2D_KEYPOINTS)


def test_keypoints_are_in_openpose_order():
    assert NUM_KEYPOINTS == 18 and len(set(KEYPOINT_NAMES)) == NUM_KEYPOINTS
    assert KEYPOINT_NAMES[:2] == ('nose', 'neck')
    assert (KEYPOINT_NAMES[NECK], KEYPOINT_NAMES[R_SHOULDER], KEYPOINT_NAMES[L_SHOULDER]) == ('neck', 'r_sho', 'l_sho')
    assert KEYPOINT_NAMES[14:] == ('r_eye', 'l_eye', 'r_ear', 'l_ear')
    assert (NUM_HEATMAPS, NUM_PAFS) == (19, 38)


def test_limbs_join_two_different_keypoints_in_range_each_once():
    assert NUM_LIMBS == len(LIMBS) == 19
    for a, b in LIMBS:
        assert 0 <= a < NUM_KEYPOINTS and 0 <= b < NUM_KEYPOINTS and a != b
    assert len({frozenset(limb) for limb in LIMBS}) == NUM_LIMBS
    assert {keypoint for limb in LIMBS for keypoint in limb} == set(range(NUM_KEYPOINTS))


def test_the_drawn_skeleton_is_a_tree_over_all_keypoints():
    assert sorted(SKELETON + LOOP_LIMBS) == list(range(NUM_LIMBS))
    assert len(SKELETON) == NUM_KEYPOINTS - 1  # a tree: one limb fewer than keypoints
    assert [KEYPOINT_NAMES[b] for b in (LIMBS[limb][1] for limb in LOOP_LIMBS)] == ['r_ear', 'l_ear']


def test_grouping_reaches_each_limb_from_a_keypoint_already_placed():
    assert sorted(GROUPING_ORDER) == list(range(NUM_LIMBS))
    placed = {NECK}
    for limb in GROUPING_ORDER[:-len(LOOP_LIMBS)]:
        a, b = LIMBS[limb]
        assert a in placed, f'limb {KEYPOINT_NAMES[a]}-{KEYPOINT_NAMES[b]} reached before its first keypoint'
        placed.add(b)
    assert placed == set(range(NUM_KEYPOINTS))


def test_every_keypoint_and_limb_has_a_bgr_colour():
    assert len(KEYPOINT_COLORS) == NUM_KEYPOINTS and len(LIMB_COLORS) == NUM_LIMBS
    for colour in KEYPOINT_COLORS + LIMB_COLORS:
        assert len(colour) == 3 and all(0 <= channel <= 255 for channel in colour)


def test_coco_mapping_covers_every_keypoint_but_the_neck():
    assert len(COCO_TO_OPENPOSE) == 17
    assert sorted(COCO_TO_OPENPOSE) == [index for index in range(NUM_KEYPOINTS) if index != NECK]
    coco_names = ('nose', 'l_eye', 'r_eye', 'l_ear', 'r_ear', 'l_sho', 'r_sho', 'l_elb', 'r_elb', 'l_wri', 'r_wri',
                  'l_hip', 'r_hip', 'l_knee', 'r_knee', 'l_ank', 'r_ank')
    assert tuple(KEYPOINT_NAMES[index] for index in COCO_TO_OPENPOSE) == coco_names


def test_flip_pairs_swap_left_and_right():
    for index, partner in enumerate(FLIP_PAIRS):
        assert FLIP_PAIRS[partner] == index
        name, other = KEYPOINT_NAMES[index], KEYPOINT_NAMES[partner]
        if name[:2] in ('r_', 'l_'):
            assert other[2:] == name[2:] and other[:2] != name[:2]
        else:
            assert partner == index


def test_sigmas_are_coco_s_with_the_shoulders_for_the_neck():
    assert SIGMAS.shape == (NUM_KEYPOINTS,) and (SIGMAS > 0).all()
    assert SIGMAS[NECK] == SIGMAS[R_SHOULDER] == SIGMAS[L_SHOULDER]
    assert all(SIGMAS[index] == SIGMAS[partner] for index, partner in enumerate(FLIP_PAIRS))


def test_skeleton2d_names_map_to_the_openpose_keypoint_of_the_same_side_and_part():
    assert sorted(SKELETON2D_KEYPOINTS.values()) == sorted(KEYPOINT_NAMES)
    parts = {'NOSE': 'nose', 'NECK': 'neck', 'SHOULDER': 'sho', 'ELBOW': 'elb', 'WRIST': 'wri', 'HIP': 'hip',
             'KNEE': 'knee', 'ANKLE': 'ank', 'EYE': 'eye', 'EAR': 'ear'}
    for constant, name in SKELETON2D_KEYPOINTS.items():
        side, _, part = constant.rpartition('_')
        assert name == ({'RIGHT': 'r_', 'LEFT': 'l_', '': ''}[side] + parts[part]), constant


def test_skeleton2d_names_are_hri_msgs_constants():
    from hri_msgs.msg import Skeleton2D
    numbers = {constant: getattr(Skeleton2D, constant) for constant in SKELETON2D_KEYPOINTS}
    assert sorted(numbers.values()) == list(range(NUM_KEYPOINTS))
