"""eval() and the evaluate executable on real COCO images: the stats are pycocotools' on the detections file
written, the oracle-map path through the whole pipeline scores near 1, multiscale and visualisation work, and
the committed test model finds the people it was trained on.
"""
import contextlib
import io
import json
import math
import os

import numpy as np
import pytest

from conftest import COCO, MINI_TRAIN_ANNOTATIONS, MMPOSE_ANNOTATIONS, MMPOSE_IMAGES, TEST_MODEL
from openpose_ros.evaluation.learner_eval import select_images
from openpose_ros.evaluation.metrics import METRICS
from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.inference.preprocess import letterbox
from openpose_ros.learner import LightweightOpenPoseLearner
from openpose_ros.training.datasets import CocoKeypoints, ExternalDataset
from openpose_ros.training.targets import keypoint_heatmaps, part_affinity_fields

MMPOSE = ExternalDataset(MMPOSE_IMAGES)  # OpenDR's layout: images and annotation file in one folder
MMPOSE_ARGS = dict(images_folder_name='.', annotations_filename='test_coco.json')
# The images the test model was trained on (benchmarks/overfit.py).
TEST_MODEL_IMAGES = (30752, 37666, 183872, 234748, 442450)

pytestmark = pytest.mark.usefixtures('one_torch_thread')


class OracleBackend:
    """A 'network' that outputs the ground-truth maps of the image it is shown: the training targets of its
    annotated people in the geometry the estimator prepared. Images come in evaluation order (sorted ids),
    each at the estimator's scales in its order."""

    def __init__(self, records, learner):
        self.records = records
        self.learner = learner
        self.scales = sorted(learner.scales, key=lambda s: abs(math.log(s)))
        self.calls = 0

    def run(self, batch):
        record = self.records[self.calls // len(self.scales)]
        base_height = round(self.learner.base_height * self.scales[self.calls % len(self.scales)])
        self.calls += 1
        box, _ = letterbox(record.height, record.width, base_height, self.learner.stride)
        assert batch.shape[2:] == (box.height, box.width)
        keypoints = record.keypoints.astype(np.float64).copy()
        keypoints[..., 0] = keypoints[..., 0] * box.scale + box.left
        keypoints[..., 1] = keypoints[..., 1] * box.scale + box.top
        heatmaps = keypoint_heatmaps(keypoints, box.height, box.width, self.learner.stride)
        pafs = part_affinity_fields(keypoints, box.height, box.width, self.learner.stride)
        return heatmaps[None], pafs[None]


def oracle_learner(tmp_path, annotations=MMPOSE_ANNOTATIONS, **options):
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=tmp_path, base_height=368, **options)
    records = load_coco_keypoints(str(annotations))
    learner.ort_session = OracleBackend(records, learner)
    return learner


def direct_pycocotools(annotations, detections, image_ids=None):
    """What a user would run by hand on the detections file."""
    from pycocotools.coco import COCO as Coco
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = Coco(str(annotations))
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(str(detections)), 'keypoints')
        if image_ids is not None:
            evaluation.params.imgIds = list(image_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return dict(zip(METRICS, evaluation.stats))


def test_oracle_maps_through_eval_score_near_one_and_are_pycocotools_own(tmp_path):
    learner = oracle_learner(tmp_path, output_name='oracle.json')
    stats = learner.eval(MMPOSE, silent=True, use_subset=False, **MMPOSE_ARGS)
    assert learner.ort_session.calls == 4
    print('oracle eval', {k: round(v, 3) for k, v in stats.items()})
    assert set(stats) == set(METRICS)
    assert stats['AP'] >= 0.9 and stats['AR'] >= 0.9
    detections = json.loads((tmp_path / 'oracle.json').read_text())
    assert len(detections) >= 12
    assert all(len(d['keypoints']) == 51 and d['category_id'] == 1 for d in detections)
    assert stats == pytest.approx(direct_pycocotools(MMPOSE_ANNOTATIONS, tmp_path / 'oracle.json'), abs=1e-12)


def test_multiscale_runs_every_scale_and_stays_near_one(tmp_path):
    learner = oracle_learner(tmp_path, multiscale=True, scales=(1.0, 0.75, 1.25))
    stats = learner.eval(MMPOSE, silent=True, use_subset=False, **MMPOSE_ARGS)
    assert learner.ort_session.calls == 4 * 3
    assert stats['AP'] >= 0.85


def test_subset_is_fixed_and_restricts_the_evaluation(tmp_path):
    ids = list(range(100, 200))
    assert select_images(ids, True, 10) == select_images(ids, True, 10)
    assert len(select_images(ids, True, 10)) == 10 and select_images(ids, False, 10) == ids
    assert select_images(ids, True, 500) == ids
    learner = oracle_learner(tmp_path, annotations=MINI_TRAIN_ANNOTATIONS)
    chosen = select_images([r.image_id for r in load_coco_keypoints(str(MINI_TRAIN_ANNOTATIONS))], True, 12)
    learner.ort_session.records = load_coco_keypoints(str(MINI_TRAIN_ANNOTATIONS), chosen)
    stats = learner.eval(ExternalDataset(COCO / 'coco-mini'), silent=True, subset_size=12,
                         images_folder_name='train2017', annotations_filename='person_keypoints_train2017.json')
    assert learner.ort_session.calls == 12
    detections = json.loads((tmp_path / 'detections.json').read_text())
    assert {d['image_id'] for d in detections} <= set(chosen)
    assert stats == pytest.approx(direct_pycocotools(MINI_TRAIN_ANNOTATIONS, tmp_path / 'detections.json', chosen))


def test_visualize_writes_annotated_images_without_a_display(tmp_path, monkeypatch):
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    learner = oracle_learner(tmp_path, visualize=True)
    learner.eval(MMPOSE, silent=True, use_subset=False, **MMPOSE_ARGS)
    written = sorted(os.listdir(tmp_path / 'visualization'))
    assert written == sorted(r.file_name for r in load_coco_keypoints(str(MMPOSE_ANNOTATIONS)))
    import cv2
    drawn = cv2.imread(str(tmp_path / 'visualization' / '000000000785.jpg'))
    plain = cv2.imread(str(MMPOSE_IMAGES / '000000000785.jpg'))
    assert drawn.shape == plain.shape and np.abs(drawn.astype(int) - plain).max() > 100


def _test_model_data():
    with open(MINI_TRAIN_ANNOTATIONS, encoding='utf-8') as stream:
        dataset = json.load(stream)
    dataset['images'] = [i for i in dataset['images'] if i['id'] in TEST_MODEL_IMAGES]
    dataset['annotations'] = [a for a in dataset['annotations'] if a['image_id'] in TEST_MODEL_IMAGES]
    return dataset


def test_test_model_finds_its_people_and_eval_is_pycocotools_on_the_file(tmp_path):
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=tmp_path).load(TEST_MODEL)
    annotations = _test_model_data()
    stats = learner.eval(CocoKeypoints(str(COCO / 'coco-mini' / 'train2017'), annotations), silent=True,
                         use_subset=False)
    print('test model', {k: round(v, 3) for k, v in stats.items()})
    assert stats['AP'] >= 0.5
    (tmp_path / 'gt.json').write_text(json.dumps(annotations))
    assert stats == pytest.approx(direct_pycocotools(tmp_path / 'gt.json', tmp_path / 'detections.json'), abs=1e-12)
