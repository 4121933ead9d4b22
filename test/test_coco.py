"""COCO annotation loading, COCO results, pycocotools evaluation and the oracle-map plumbing, on real data."""
import json
import os
import warnings

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from openpose_ros.evaluation.metrics import (METRICS, evaluate_keypoints, evaluate_oracle_maps, load_ground_truth,
                                             oracle_results, write_results)
from openpose_ros.formats.coco import coco_to_openpose, load_coco_keypoints, to_coco_results
from openpose_ros.keypoints import COCO_TO_OPENPOSE, NECK, NUM_KEYPOINTS
from openpose_ros.training.targets import oracle_geometry

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


def test_ground_truth_as_results_scores_ap_one_and_perturbed_scores_lower():
    records = load_coco_keypoints(MMPOSE)
    results = ground_truth_results(records)
    assert len(results) == 12
    assert all(len(r['keypoints']) == 51 and 0 <= r['score'] <= 1 for r in results)
    metrics = evaluate_keypoints(MMPOSE, results)
    assert metrics['AP'] == 1.0 and metrics['AR'] == 1.0

    rng = np.random.default_rng(0)
    perturbed = []
    for record in records:
        keypoints, scores, pose_scores = ground_truth_poses(record)
        size = np.sqrt(np.maximum(record.areas, 1.0))[:, None, None]
        noisy = np.where(keypoints >= 0, keypoints + rng.normal(0, 0.08, keypoints.shape) * size, -1)
        perturbed += to_coco_results(record.image_id, noisy, scores, pose_scores, offset=0.0)
    worse = evaluate_keypoints(MMPOSE, perturbed)
    assert worse['AP'] < 0.7, worse


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


def test_pycocotools_area_is_the_box_of_all_keypoints_unless_a_bbox_is_given():
    """loadRes sets a keypoint result's area to the box of all 17 keypoints, (0, 0) placeholders included;
    given a 'bbox' it takes the area from that box instead, and OKS still reads the keypoints unchanged."""
    records = [r for r in load_coco_keypoints(MMPOSE) if r.num_people]
    coco = load_ground_truth(MMPOSE)
    with_box, plain = ground_truth_results(records), ground_truth_results(records, bbox=False)
    stretched = 0
    for boxed, bare in zip(with_box, plain):
        found = np.array(boxed['keypoints']).reshape(17, 3)
        found = found[found[:, 2] > 0, :2]
        box_area = np.prod(found.max(axis=0) - found.min(axis=0))
        loaded = coco.loadRes([dict(boxed, area=-1.0)]).anns[1]  # a given 'area' is overwritten
        assert loaded['area'] == pytest.approx(box_area) and loaded['keypoints'] == boxed['keypoints']
        area = coco.loadRes([bare]).anns[1]['area']
        x, y = np.array(bare['keypoints'][0::3]), np.array(bare['keypoints'][1::3])
        assert area == pytest.approx((x.max() - x.min()) * (y.max() - y.min()))
        stretched += area > 1.5 * box_area
    assert stretched >= 5  # real people miss keypoints, and (0, 0) then stretches their box
    # Same keypoints, same OKS: AP over all sizes is the same with or without the box.
    assert evaluate_keypoints(MMPOSE, with_box)['AP'] == evaluate_keypoints(MMPOSE, plain)['AP'] == 1.0


def test_no_people_no_results():
    empty = np.zeros((0, NUM_KEYPOINTS, 2))
    assert to_coco_results(1, empty, np.zeros((0, NUM_KEYPOINTS)), np.zeros(0)) == []
    negatives = [r for r in load_coco_keypoints(MINI_VAL) if r.num_people == 0]
    assert len(negatives) > 10
    assert ground_truth_results(negatives) == []


def test_evaluate_equals_direct_pycocotools(tmp_path):
    records = load_coco_keypoints(MINI_VAL)
    rng = np.random.default_rng(1)
    results = []
    for record in records:
        keypoints, scores, _ = ground_truth_poses(record)
        keypoints = np.where(keypoints >= 0, keypoints + rng.normal(0, 3, keypoints.shape), -1)
        results += to_coco_results(record.image_id, keypoints, scores, rng.uniform(0, 1, record.num_people))
    path = write_results(tmp_path / 'sub' / 'results.json', results)
    assert os.listdir(tmp_path / 'sub') == ['results.json']

    coco_gt = COCO(MINI_VAL)
    coco_eval = COCOeval(coco_gt, coco_gt.loadRes(str(path)), 'keypoints')
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    direct = dict(zip(METRICS, coco_eval.stats))
    assert 0.2 < direct['AP'] < 0.99

    before = json.dumps(results)
    for annotations in (MINI_VAL, coco_gt, json.load(open(MINI_VAL, encoding='utf-8'))):
        for given in (results, str(path)):
            ours = evaluate_keypoints(annotations, given)
            assert ours == pytest.approx(direct, abs=1e-12)
    assert json.dumps(results) == before  # the caller's results are not modified

    # A subset of images: the same as pycocotools with params.imgIds set.
    subset = sorted({r['image_id'] for r in results})[:5]
    coco_eval = COCOeval(coco_gt, coco_gt.loadRes(str(path)), 'keypoints')
    coco_eval.params.imgIds = subset
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    assert evaluate_keypoints(MINI_VAL, path, image_ids=subset) == pytest.approx(dict(zip(METRICS, coco_eval.stats)))


def test_evaluate_is_quiet_and_robust_to_empty_results(capsys):
    with pytest.warns(RuntimeWarning, match='no keypoint results'):
        metrics = evaluate_keypoints(MMPOSE, [])
    assert metrics == {name: 0.0 for name in METRICS}
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        evaluate_keypoints(MMPOSE, ground_truth_results(load_coco_keypoints(MMPOSE)))
    assert capsys.readouterr().out == ''
    evaluate_keypoints(MMPOSE, ground_truth_results(load_coco_keypoints(MMPOSE)), verbose=True)
    assert 'Average Precision' in capsys.readouterr().out
    with pytest.raises(ValueError, match='not in the annotations'):
        evaluate_keypoints(MMPOSE, [dict(ground_truth_results(load_coco_keypoints(MMPOSE))[0], image_id=123)])


def test_write_results_is_atomic(tmp_path):
    path = tmp_path / 'results.json'
    write_results(path, [{'image_id': np.int64(1), 'score': np.float32(0.5), 'keypoints': np.zeros(3)}])
    assert json.loads(path.read_text()) == [{'image_id': 1, 'score': 0.5, 'keypoints': [0.0, 0.0, 0.0]}]
    with pytest.raises(TypeError):
        write_results(path, [{'image_id': object()}])
    assert json.loads(path.read_text())[0]['image_id'] == 1  # the old file is intact
    assert os.listdir(tmp_path) == ['results.json']            # no temporary left behind


def test_a_write_that_fails_halfway_leaves_the_old_file_whole(tmp_path):
    from openpose_ros.files import write_text
    path = write_text(tmp_path / 'report.txt', 'old\n')
    with pytest.raises(TypeError):
        write_text(path, b'not text')  # fails inside the write, after the temporary was opened
    assert path.read_text() == 'old\n' and os.listdir(tmp_path) == ['report.txt']
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's private one


class GroundTruthStandIn:
    """A stand-in for the decoder, for this test only: it returns the ground truth of the records in the
    order they are decoded, in network-input pixels, after checking that the oracle heatmaps peak there."""

    def __init__(self, records, base_height=368):
        self.records = iter(records)
        self.base_height = base_height
        self.calls = 0

    def __call__(self, heatmaps, pafs, stride=8, upsample_ratio=4):
        record = next(self.records)
        self.calls += 1
        scale, pad, (input_h, input_w) = oracle_geometry(record.height, record.width, self.base_height, stride)
        assert heatmaps.shape == (19, input_h // stride, input_w // stride) and pafs.shape[0] == 38
        keypoints, scores, pose_scores = ground_truth_poses(record)
        keypoints = np.where(keypoints >= 0, keypoints * scale + (pad[1], pad[0]), -1.0)
        shift = stride / 2 - 0.5
        for person in range(record.num_people):
            for kind in np.flatnonzero(scores[person]):
                x, y = keypoints[person, kind]
                col = min(max(int(round((x - shift) / stride)), 0), heatmaps.shape[2] - 1)
                row = min(max(int(round((y - shift) / stride)), 0), heatmaps.shape[1] - 1)
                # The nearest map pixel holds at least this person's Gaussian (sigma 7) there.
                d2 = (col * stride + shift - x) ** 2 + (row * stride + shift - y) ** 2
                assert d2 / 2 / 49 < 2.5  # well inside the cut
                assert heatmaps[kind, row, col] >= np.exp(-d2 / 2 / 49) - 1e-5
        return keypoints.astype(np.float32), scores, pose_scores


@pytest.mark.parametrize('stride', [8, 16])
def test_oracle_plumbing_with_ground_truth_stand_in(stride):
    """Rendering geometry, conversion back to image pixels, results and evaluation end to end: a decoder
    that returned the ground truth would score AP 1.0 (a check of the plumbing, not of any decoder)."""
    records = load_coco_keypoints(MMPOSE)
    stand_in = GroundTruthStandIn(records)
    metrics = evaluate_oracle_maps(MMPOSE, stand_in, stride=stride, offset=0.0)
    assert stand_in.calls == len(records)
    assert metrics['AP'] == pytest.approx(1.0) and metrics['AR'] == pytest.approx(1.0)
    assert (metrics['people'], metrics['detections']) == (12, 12)
    results = oracle_results(records, GroundTruthStandIn(records), stride=stride, offset=0.0)
    expected = ground_truth_results(records)
    assert len(results) == len(expected)
    for ours, truth in zip(results, expected):
        assert ours['image_id'] == truth['image_id']
        assert np.allclose(ours['keypoints'], truth['keypoints'], atol=1e-3)


def test_oracle_noise_and_blur_change_the_maps():
    records = [r for r in load_coco_keypoints(MMPOSE) if r.num_people]
    seen = {}

    def spy(heatmaps, pafs, stride=8, upsample_ratio=4):
        seen.setdefault('maps', []).append((heatmaps.copy(), pafs.copy()))
        return np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros((0, NUM_KEYPOINTS)), np.zeros(0)

    clean = oracle_results(records[:1], spy)
    noisy = oracle_results(records[:1], spy, noise_std=0.1, seed=3)
    again = oracle_results(records[:1], spy, noise_std=0.1, seed=3)
    blurred = oracle_results(records[:1], spy, blur_sigma=1.0)
    assert clean == noisy == again == blurred == []
    (h0, p0), (h1, p1), (h2, p2), (h3, p3) = seen['maps']
    assert np.std(h1 - h0) == pytest.approx(0.1, rel=0.05) and np.std(p1 - p0) == pytest.approx(0.1, rel=0.05)
    assert np.array_equal(h1, h2) and np.array_equal(p1, p2)  # seeded
    assert h3[:18].max() < h0[:18].max() and np.abs(h3 - h0).max() > 0.05 and h3.dtype == np.float32
