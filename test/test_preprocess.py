"""Pre-processing (openpose_ros.inference.preprocess): letterboxing and the network input, against the reference."""
import cv2
import numpy as np
import pytest

from conftest import PHOTO
from openpose_ros.inference.preprocess import letterbox, prepare


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
