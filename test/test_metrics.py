"""COCO keypoint evaluation (openpose_ros.evaluation.metrics) with the real pycocotools on real annotations: results
scored, written atomically, and the oracle-map plumbing."""
import json
import os
import warnings

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from openpose_ros.evaluation.metrics import (METRICS, evaluate_keypoints, evaluate_oracle_maps, load_ground_truth,
                                             oracle_results, write_results)
from openpose_ros.formats.coco import load_coco_keypoints, to_coco_results
from openpose_ros.keypoints import NUM_KEYPOINTS
from openpose_ros.training.targets import oracle_geometry
from test_coco import MINI_VAL, MMPOSE, ground_truth_poses, ground_truth_results


DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'coco')


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
