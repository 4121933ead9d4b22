"""The backend agreement measurement's pose matching, on real annotated people."""
import cv2
import numpy as np
import pytest

from conftest import MINI_VAL_ANNOTATIONS, MMPOSE_ANNOTATIONS, MMPOSE_IMAGES
from openpose_ros.evaluation.agreement import compare_backends, match_poses
from openpose_ros.evaluation.metrics import load_ground_truth
from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.pose import Pose
from test_infer import OracleBackend


def real_people(count, min_keypoints=12):
    records = load_coco_keypoints(load_ground_truth(str(MINI_VAL_ANNOTATIONS)))
    people = [p for r in records for p in r.keypoints if (p[:, 2] > 0).sum() >= min_keypoints][:count]
    assert len(people) == count
    return [Pose(np.where(p[:, 2:] > 0, p[:, :2], -1.0), 0.9) for p in people]


def test_a_fragment_lying_on_a_person_does_not_take_the_persons_match():
    """The reference keeps two of a person's keypoints as a fragment of their own; the candidate joins them to
    the person. The person, not the fragment, is the candidate's twin."""
    person, = real_people(1)
    twin = person.data.copy()
    twin[person.found] += np.random.default_rng(0).normal(0, 1.0, (person.found.sum(), 2))
    missing = np.flatnonzero(~person.found)[:2]
    twin[missing] = twin[person.found][:2] + 40.0  # two keypoints the reference's person lacks
    fragment = np.full((18, 2), -1.0, np.float32)
    fragment[missing] = twin[missing]              # exactly where the candidate put them
    matches = match_poses([Pose(fragment, 0.2), person], [Pose(twin, 0.8)])
    assert [(i, j) for i, j, _ in matches] == [(1, 0)]
    assert matches[0][2] > 0.8


def test_people_match_their_own_twins_one_to_one():
    people = real_people(5)
    rng = np.random.default_rng(1)
    twins = []
    for pose in reversed(people):
        data = pose.data.copy()
        data[pose.found] += rng.normal(0, 1.0, (pose.found.sum(), 2))
        twins.append(Pose(data, 0.5))
    matches = match_poses(people, twins)
    assert sorted((i, j) for i, j, _ in matches) == [(i, len(people) - 1 - i) for i in range(len(people))]


def test_nothing_to_match_gives_no_pairs():
    person, = real_people(1)
    assert match_poses([], [person]) == [] and match_poses([person], []) == []


@pytest.mark.slow
def test_agreement_measures_displacement_on_real_people():
    """Oracle maps of the mmpose-tests people against the same maps moved one map pixel right: every matched
    keypoint moves by one stride in input pixels, 8 / scale image pixels."""
    records = load_coco_keypoints(str(MMPOSE_ANNOTATIONS))
    truth = OracleBackend(records, MMPOSE_IMAGES)

    class Shifted:
        def run(self, batch):
            heatmaps, pafs = truth.run(batch)
            return np.roll(heatmaps, 1, axis=3), np.roll(pafs, 1, axis=3)

    images = [cv2.imread(str(MMPOSE_IMAGES / r.file_name)) for r in records]
    same = compare_backends(truth, truth, images)
    assert same['poses_reference'] >= 10 and same['pose_agreement'] == 1.0
    moved = compare_backends(truth, Shifted(), images)
    expected = [8 * r.height / 256 for r in records]  # one map pixel in image pixels, per image
    assert min(expected) - 0.5 < moved['keypoint_displacement_median_px'] < max(expected) + 0.5, moved
    assert moved['heatmaps_max_abs_error'] > 0.5
    assert moved['pose_agreement'] >= 0.8  # a 13 px move keeps most people matched (OKS > 0.5)
