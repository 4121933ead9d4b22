"""The inference pipeline's geometry: letterboxing, multiscale resampling, and stage timings."""
import cv2
import numpy as np
import pytest

from conftest import MMPOSE_ANNOTATIONS, PHOTO
from openpose_ros import LightweightOpenPoseLearner
from openpose_ros.evaluation.metrics import load_ground_truth
from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.inference.estimator import STAGES, _resample
from openpose_ros.inference.preprocess import letterbox, prepare
from openpose_ros.training.targets import render_oracle_maps


def test_letterbox_matches_the_reference_geometry():
    box, scaled = letterbox(425, 640, 256, 8)  # PERFORMANCE.md: 640x425 at base height 256 -> 256x392
    assert (box.height, box.width) == (256, 392) and scaled == (386, 256)
    narrow, _ = letterbox(600, 100, 256, 8)  # narrow images are padded to at least base_height wide
    assert (narrow.height, narrow.width) == (256, 256)
    point = np.array([[100.0, 50.0]], np.float32)
    assert np.allclose(box.to_image(point * box.scale + (box.left, box.top)), point)


def _reference_input(image, base_height, stride, mean, scale, pad):
    """The reference's pre-processing, written plainly: resize, normalise, pad, to CHW."""
    box, size = letterbox(image.shape[0], image.shape[1], base_height, stride)
    normalised = (cv2.resize(image, size).astype(np.float32) - np.float32(mean)) * np.float32(scale)
    padded = np.empty((box.height, box.width, 3), np.float32)
    padded[...] = np.float32(pad)
    padded[box.top:box.top + size[1], box.left:box.left + size[0]] = normalised
    return padded.transpose(2, 0, 1)[None]


@pytest.mark.parametrize('shape', [(425, 640), (600, 100), (100, 900)])  # padded right, both sides, below
def test_prepare_equals_the_reference_preprocessing_and_reuses_its_output(shape):
    image = cv2.resize(cv2.imread(str(PHOTO)), shape[::-1])
    options = dict(img_mean=(100, 128, 150), img_scale=1 / 200, pad_value=(0.5, -0.25, 0.125))
    expected = _reference_input(image, 256, 8, options['img_mean'], options['img_scale'], options['pad_value'])
    tensor, _ = prepare(image, 256, 8, **options)
    assert tensor.dtype == np.float32 and np.array_equal(tensor, expected)
    stale = np.full_like(tensor, np.nan)  # every element must be written, padding included
    reused, _ = prepare(image, 256, 8, **options, out=stale)
    assert reused is stale and np.array_equal(reused, expected)
    other, _ = prepare(image, 320, 8, **options, out=stale)  # another size: a new array, the old one untouched
    assert other is not stale and other.shape[2] == 320 and np.array_equal(stale, expected)


@pytest.mark.parametrize('base_height', [192, 384])
def test_maps_of_another_scale_resample_onto_the_reference_grid(base_height):
    """Oracle maps of one person rendered at two scales: resampled, the second lands on the first."""
    record = next(r for r in load_coco_keypoints(load_ground_truth(str(MMPOSE_ANNOTATIONS))) if r.num_people == 1)
    reference_maps, source_maps = (np.concatenate(render_oracle_maps(record, height)[:2])
                                   for height in (256, base_height))
    reference, _ = letterbox(record.height, record.width, 256, 8)
    source, _ = letterbox(record.height, record.width, base_height, 8)
    resampled = _resample(source_maps, source, reference, 8)
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
