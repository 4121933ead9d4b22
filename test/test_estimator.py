"""The inference pipeline's geometry: letterboxing, multiscale resampling, and stage timings."""
import cv2
import numpy as np
import pytest

from conftest import MMPOSE_ANNOTATIONS, PHOTO
from openpose_ros import LightweightOpenPoseLearner
from openpose_ros.evaluation.metrics import load_ground_truth
from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.inference.estimator import STAGES, resample
from openpose_ros.inference.preprocess import letterbox
from openpose_ros.training.targets import render_oracle_maps


@pytest.mark.parametrize('base_height', [192, 384])
def test_maps_of_another_scale_resample_onto_the_reference_grid(base_height):
    """Oracle maps of one person rendered at two scales: resampled, the second lands on the first."""
    record = next(r for r in load_coco_keypoints(load_ground_truth(str(MMPOSE_ANNOTATIONS))) if r.num_people == 1)
    reference_maps, source_maps = (np.concatenate(render_oracle_maps(record, height)[:2])
                                   for height in (256, base_height))
    reference, _ = letterbox(record.height, record.width, 256, 8)
    source, _ = letterbox(record.height, record.width, base_height, 8)
    resampled = resample(source_maps, source, reference, 8)
    assert resampled.shape == reference_maps.shape
    heat = slice(0, 18)
    peaks_expected = np.array([np.unravel_index(m.argmax(), m.shape) for m in reference_maps[heat]])
    peaks_got = np.array([np.unravel_index(m.argmax(), m.shape) for m in resampled[heat]])
    labelled = reference_maps[heat].max(axis=(1, 2)) > 0.5
    assert np.abs(peaks_got - peaks_expected)[labelled].max() <= 1
    assert np.corrcoef(resampled[heat].ravel(), reference_maps[heat].ravel())[0, 1] > 0.8


def test_multiscale_runs_every_scale_and_times_every_stage():
    learner = LightweightOpenPoseLearner(device='cpu', multiscale=True, scales=[1.0, 0.5]).allow_random_weights()
    image = cv2.imread(str(PHOTO))
    heatmaps, pafs, box = learner.estimator.maps(image)
    assert (heatmaps.shape, pafs.shape) == ((19, 32, 49), (38, 32, 49)) and box.height == 256
    learner.infer(image)
    assert set(learner.stream.timings) == set(STAGES)


def test_keypoints_found_in_the_padding_stay_found_on_the_image_edge():
    from openpose_ros.inference.estimator import PoseEstimator
    box, _ = letterbox(600, 100, 256, 8)  # narrow: wide padding left of the image
    estimator = PoseEstimator(backend=None, stride=8)
    heatmaps = np.zeros((19, 32, 32), np.float32)
    pafs = np.zeros((38, 32, 32), np.float32)
    for kind, (x, y) in ((1, (1, 10)), (2, (14, 10))):  # neck deep in the left padding, shoulder inside
        heatmaps[kind, y, x] = 1.0
    pafs[12, 10, 1:15] = 1.0  # limb (1, 2) points along +x
    poses = estimator.decode(heatmaps, pafs, box, upsample_ratio=1)
    assert len(poses) == 1 and poses[0].found.sum() == 2  # both stay found, the neck on the edge
