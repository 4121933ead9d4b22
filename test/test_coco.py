"""COCO annotation loading, COCO results, pycocotools evaluation and the oracle-map plumbing, on real data."""
import json
import os

import numpy as np
import pytest

from openpose_ros.evaluation.metrics import load_ground_truth
from openpose_ros.formats.coco import coco_to_openpose, load_coco_keypoints, to_coco_results
from openpose_ros.keypoints import COCO_TO_OPENPOSE, NECK, NUM_KEYPOINTS


DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'coco')
MMPOSE = os.path.join(DATA, 'mmpose-tests', 'test_coco.json')
MINI_VAL = os.path.join(DATA, 'coco-mini', 'annotations', 'person_keypoints_val2017.json')
MINI_TRAIN = os.path.join(DATA, 'coco-mini', 'annotations', 'person_keypoints_train2017.json')


def ground_truth_poses(record):
    """A record's people as a decoder would return them: (N, 18, 2) with -1 where unlabelled, scores."""
    labelled = record.keypoints[:, :, 2] > 0
    keypoints = np.where(labelled[..., None], record.keypoints[:, :, :2], -1.0)
    return keypoints, labelled.astype(np.float32), np.ones(record.num_people, np.float32)


def ground_truth_results(records, offset=0.0, bbox=True):
    results = []
    for record in records:
        results += to_coco_results(record.image_id, *ground_truth_poses(record), offset=offset, bbox=bbox)
    return results


def test_load_counts_people_images_and_negatives():
    for path, images, people in ((MMPOSE, 4, 12), (MINI_VAL, 79, 68), (MINI_TRAIN, 80, 86)):
        records = load_coco_keypoints(path)
        assert len(records) == images
        assert sum(r.num_people for r in records) == people
        assert [r.image_id for r in records] == sorted(r.image_id for r in records)
        assert any(r.num_people == 0 for r in records) or path == MMPOSE
    records = load_coco_keypoints(MMPOSE)
    record = next(r for r in records if r.image_id == 785)
    assert (record.file_name, record.width, record.height, record.num_people) == ('000000000785.jpg', 640, 425, 1)
    assert record.keypoints.shape == (1, NUM_KEYPOINTS, 3) and record.keypoints.dtype == np.float32
    # nose (367, 81), shoulders (399, 108) and (358, 129): the neck is their mean, visible.
    assert tuple(record.keypoints[0, 0]) == (367, 81, 2)
    assert tuple(record.keypoints[0, NECK]) == ((399 + 358) / 2, (108 + 129) / 2, 2)
    assert sum(len(r.unlabelled_segmentations) for r in records) == 2
    from_object = load_coco_keypoints(load_ground_truth(MMPOSE), image_ids=[785])
    assert len(from_object) == 1 and np.array_equal(from_object[0].keypoints, record.keypoints)
    assert sum(len(r.crowd_segmentations) for r in load_coco_keypoints(MINI_TRAIN)) == 5


def test_neck_rule_on_a_real_person_with_one_shoulder():
    with open(MINI_TRAIN, encoding='utf-8') as f:
        annotations = json.load(f)['annotations']
    one = [a for a in annotations if not a['iscrowd'] and a['num_keypoints'] > 0
           and (a['keypoints'][5 * 3 + 2] > 0) != (a['keypoints'][6 * 3 + 2] > 0)]
    assert one, 'the data should hold a person with one shoulder labelled'
    converted = coco_to_openpose([a['keypoints'] for a in one])
    assert (converted[:, NECK, 2] == 0).all()
    # Their other labelled keypoints are all kept, in OpenPose order.
    for a, person in zip(one, converted):
        coco = np.array(a['keypoints'], np.float32).reshape(17, 3)
        assert np.array_equal(person[list(COCO_TO_OPENPOSE)][:, 2] > 0, coco[:, 2] > 0)
    # Occluded shoulders give an occluded neck.
    both = np.array([0.0] * 51)
    both[5 * 3:5 * 3 + 3] = (10, 20, 1)
    both[6 * 3:6 * 3 + 3] = (30, 40, 2)
    assert tuple(coco_to_openpose(both)[0, NECK]) == (20, 30, 1)


def test_results_layout_offset_and_missing_keypoints():
    keypoints = np.full((2, NUM_KEYPOINTS, 2), -1.0)
    scores = np.zeros((2, NUM_KEYPOINTS))
    keypoints[0, 0] = (100, 50)     # nose
    keypoints[0, NECK] = (100, 80)  # neck: not in COCO
    keypoints[0, 2] = (80, 90)      # right shoulder
    keypoints[0, 13] = (120, 300)   # left ankle
    scores[0, [0, NECK, 2, 13]] = 0.9
    results = to_coco_results(7, keypoints, scores, [0.75, 0.5], offset=0.5)  # as val.py shifts them
    assert len(results) == 1  # the second pose has nothing found
    result = results[0]
    assert (result['image_id'], result['category_id'], result['score']) == (7, 1, 0.75)
    coco = np.array(result['keypoints']).reshape(17, 3)
    assert tuple(coco[0]) == (100.5, 50.5, 1)
    assert tuple(coco[6]) == (80.5, 90.5, 1)     # COCO 6: right shoulder
    assert tuple(coco[15]) == (120.5, 300.5, 1)  # COCO 15: left ankle
    missing = coco[:, 2] == 0
    assert missing.sum() == 14 and (coco[missing] == 0).all()  # as val.py writes them
    assert result['bbox'] == [80.5, 50.5, 40.0, 250.0]         # the found keypoints' box
    plain = to_coco_results(7, keypoints, scores, [0.75, 0.5], offset=0, bbox=False)[0]
    assert 'bbox' not in plain and plain['keypoints'][:3] == [100, 50, 1]
    assert json.loads(json.dumps(results)) == results  # plain JSON types
    with pytest.raises(ValueError):
        to_coco_results(7, keypoints, scores, [0.5])


def test_no_people_no_results():
    empty = np.zeros((0, NUM_KEYPOINTS, 2))
    assert to_coco_results(1, empty, np.zeros((0, NUM_KEYPOINTS)), np.zeros(0)) == []
    negatives = [r for r in load_coco_keypoints(MINI_VAL) if r.num_people == 0]
    assert len(negatives) > 10
    assert ground_truth_results(negatives) == []
