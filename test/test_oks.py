"""COCO's object keypoint similarity and greedy matching (openpose_ros.tracking.oks) on real annotated people."""
import numpy as np

from conftest import MINI_VAL_ANNOTATIONS
from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.tracking.oks import box_areas, coco_similarity, greedy_pairs


def real_people(count=4, min_keypoints=10):
    people = [np.where(p[:, 2:] > 0, p[:, :2], -1.0) for r in load_coco_keypoints(str(MINI_VAL_ANNOTATIONS))
              for p in r.keypoints if (p[:, 2] > 0).sum() >= min_keypoints]
    return np.array(people[:count], dtype=float)


def test_a_person_is_most_similar_to_itself_and_less_to_a_moved_copy():
    people = real_people()
    scores = coco_similarity(people, people)
    assert np.allclose(np.diag(scores), 1.0) and (scores <= 1.0 + 1e-9).all()
    moved = people.copy()
    moved[moved >= 0] += 15
    assert (np.diag(coco_similarity(people, moved)) < 1.0).all()


def test_box_areas_and_greedy_pairs_are_one_to_one_best_first():
    people = real_people()
    found = people[0][people[0][:, 0] >= 0]
    assert box_areas(people[:1])[0] == np.ptp(found[:, 0]) * np.ptp(found[:, 1])
    rows, columns = greedy_pairs(coco_similarity(people, people[::-1]), 0.5)
    assert sorted(zip(rows, columns)) == [(i, len(people) - 1 - i) for i in range(len(people))]
    assert greedy_pairs(np.array([[0.4]]), 0.5)[0].size == 0
