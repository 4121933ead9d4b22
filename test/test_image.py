"""Bad and unusual images are converted or refused with a clear reason, through the whole learner too."""
import cv2
import numpy as np
import pytest

from conftest import PHOTO
from openpose_ros import Image, LightweightOpenPoseLearner
from openpose_ros.inference.image import to_bgr8


@pytest.fixture(scope='module')
def photo():
    return cv2.imread(str(PHOTO))


@pytest.fixture(scope='module')
def learner():
    return LightweightOpenPoseLearner(device='cpu').allow_random_weights()


def gray(bgr):
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


@pytest.mark.parametrize('convert, is_gray', [
    (gray, True),                                                   # HxW
    (lambda bgr: gray(bgr)[:, :, None], True),                      # HxWx1
    (lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), False),     # 4 channels
    (lambda bgr: bgr.astype(np.uint16) * 257, False),               # 16 bit
    (lambda bgr: bgr.astype(np.float32) / 255.0, False),            # float in [0, 1]
])
def test_unusual_formats_become_the_same_bgr_image(photo, convert, is_gray):
    converted = to_bgr8(convert(photo))
    expected = cv2.cvtColor(gray(photo), cv2.COLOR_GRAY2BGR) if is_gray else photo
    assert converted.shape == photo.shape and converted.dtype == np.uint8
    assert np.abs(converted.astype(int) - expected).max() <= 1


@pytest.mark.parametrize('bad, reason', [
    (np.zeros((0, 0, 3), np.uint8), 'empty'),
    (np.zeros((10, 0, 3), np.uint8), 'empty'),
    (np.zeros((10, 10, 2), np.uint8), 'shape'),
    (np.zeros((10, 10, 3), np.int32), 'pixel type'),
    (np.full((4, 4, 3), np.nan, np.float32), 'NaN'),
    (np.zeros((2, 2, 2, 3), np.uint8), 'shape'),
])
def test_bad_images_are_refused_with_the_reason(learner, bad, reason):
    with pytest.raises(ValueError, match=reason):
        learner.infer(bad)


def test_tiny_and_huge_images_are_handled(learner):
    assert learner.infer(np.zeros((1, 1, 3), np.uint8)) == []
    huge = np.zeros((8000, 8000, 3), np.uint8)
    assert learner.infer(huge, track=False, smooth=False) == []
    box = learner.estimator.maps(huge)[2]
    assert (box.height, box.width) == (256, 256)


def test_image_wrapper_reads_files_and_refuses_broken_ones(tmp_path, photo):
    image = Image.open(PHOTO)
    assert image.shape == (3,) + photo.shape[:2]
    assert np.array_equal(image.opencv(), photo)
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(PHOTO.read_bytes()[:200])
    with pytest.raises(ValueError, match='decode'):
        Image.open(broken)
    with pytest.raises(FileNotFoundError):
        Image.open(tmp_path / 'missing.jpg')
