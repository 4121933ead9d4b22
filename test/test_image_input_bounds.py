"""Inputs that would cost memory or time, or give wrong poses, are refused before the work starts: strips of
extreme aspect ratio, compressed images that declare a huge size, cut JPEGs with an end marker appended, float
images on a 0-255 scale; and `Image.opencv()` gives an array that may be drawn on."""
import zlib

import cv2
import numpy as np
import pytest

from conftest import PHOTO, TEST_MODEL
from openpose_ros import Image
from openpose_ros.inference.estimator import PoseEstimator
from openpose_ros.inference.image import MAX_PIXELS, ImageRejected, declared_size, read_pixels, to_bgr8
from openpose_ros.inference.preprocess import DEFAULT_MAX_ASPECT_RATIO, prepare


@pytest.fixture(scope='module')
def photo():
    return cv2.imread(str(PHOTO))


class InputRecorder:
    """A backend that records the shape of each network input and returns empty maps (stride 8)."""

    def __init__(self):
        self.shapes = []

    def run(self, batch):
        self.shapes.append(batch.shape)
        height, width = batch.shape[2] // 8, batch.shape[3] // 8
        return np.zeros((1, 19, height, width), np.float32), np.zeros((1, 38, height, width), np.float32)


# --- extreme aspect ratios ---------------------------------------------------------------------------------------
def test_a_one_pixel_high_strip_never_becomes_a_network_input():
    strip = np.full((1, 200), 100, np.uint8)  # a 200-byte mono8 frame: 51200 px wide at base height 256
    with pytest.raises(ImageRejected, match=r'\(200x1\) has an aspect ratio of 200') as refused:
        prepare(cv2.cvtColor(strip, cv2.COLOR_GRAY2BGR), 256, 8)
    assert refused.value.cause == 'aspect ratio'
    recorder = InputRecorder()
    estimator = PoseEstimator(recorder, stride=8)
    for image in (strip, strip.T):  # as wide as high the other way round: refused too
        with pytest.raises(ImageRejected, match='max_aspect_ratio'):
            estimator.detect(image)
    assert recorder.shapes == [] and estimator.network_inputs == {}


def test_the_aspect_ratio_bound_is_a_setting_and_panoramas_within_it_are_processed():
    recorder = InputRecorder()
    estimator = PoseEstimator(recorder, stride=8)
    panorama = np.zeros((200, 200 * int(DEFAULT_MAX_ASPECT_RATIO), 3), np.uint8)
    assert estimator.detect(panorama) == []
    assert recorder.shapes == [(1, 3, 256, 256 * int(DEFAULT_MAX_ASPECT_RATIO))]
    estimator.max_aspect_ratio = 2.0
    with pytest.raises(ImageRejected, match='more than the 2 accepted'):
        estimator.detect(panorama)
    with pytest.raises(ValueError, match=r'max_aspect_ratio must be in \[1, 32\]'):
        PoseEstimator(recorder, stride=8, max_aspect_ratio=0.5)


def test_the_learner_refuses_the_strip_and_forwards_its_setting():
    from openpose_ros.learner import LightweightOpenPoseLearner

    learner = LightweightOpenPoseLearner(device='cpu', temp_path='unused')
    learner.load(TEST_MODEL)
    with pytest.raises(ImageRejected, match='aspect ratio'):
        learner.infer(np.zeros((1, 200), np.uint8))
    assert learner.estimator.network_inputs == {}  # no network input was made
    learner.max_aspect_ratio = 20.0
    assert learner.estimator.max_aspect_ratio == 20.0
    learner.infer(np.zeros((10, 200), np.uint8))  # 20:1, now within the bound
    assert learner.estimator.network_inputs[1.0].shape == (1, 3, 256, 5120)
    with pytest.raises(ValueError, match='max_aspect_ratio'):
        learner.max_aspect_ratio = 100.0
    with pytest.raises(ValueError, match='max_aspect_ratio'):
        LightweightOpenPoseLearner(device='cpu', max_aspect_ratio=0.0)


# --- compressed images that declare a huge size ------------------------------------------------------------------
def with_declared_size(encoded, width, height):
    """A JPEG or PNG whose header says width x height (the pixel data left as it is)."""
    data = bytearray(encoded)
    if data[:4] == b'\x89PNG':
        data[16:24] = width.to_bytes(4, 'big') + height.to_bytes(4, 'big')
        data[29:33] = zlib.crc32(data[12:29]).to_bytes(4, 'big')  # IHDR's checksum, over its type and data
        return bytes(data)
    position = data.index(b'\xff\xc0')  # baseline frame header: FFC0, length (2), precision (1), height, width
    data[position + 5:position + 9] = height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
    return bytes(data)


def test_the_declared_size_is_read_from_real_jpeg_and_png_headers(photo):
    height, width = photo.shape[:2]
    assert declared_size(PHOTO.read_bytes()) == (width, height)
    assert declared_size(cv2.imencode('.png', photo)[1]) == (width, height)
    assert declared_size(b'GIF89a....') is None and declared_size(PHOTO.read_bytes()[:6]) is None


@pytest.mark.parametrize('extension', ['.jpg', '.png'])
def test_a_compressed_image_declaring_a_huge_size_is_refused_before_decoding(extension, tmp_path):
    from types import SimpleNamespace

    from openpose_ros.messages.conversions import compressed_msg_to_bgr

    small = cv2.imencode(extension, np.full((16, 16, 3), 90, np.uint8))[1].tobytes()
    huge = with_declared_size(small, 20000, 20000)  # 400 Mpx: OpenCV would decode it (1.2 GB, seconds)
    assert 20000 * 20000 > MAX_PIXELS and len(huge) < 1000
    with pytest.raises(ImageRejected, match=r'its header declares is too large \(20000x20000\)') as refused:
        compressed_msg_to_bgr(SimpleNamespace(format=extension[1:], data=huge))
    assert refused.value.cause == 'too large'
    path = tmp_path / f'huge{extension}'
    path.write_bytes(huge)
    with pytest.raises(ImageRejected, match='too large'):
        read_pixels(path)


def test_stray_bytes_before_the_jpeg_frame_header_do_not_hide_its_size():
    from types import SimpleNamespace

    from openpose_ros.messages.conversions import compressed_msg_to_bgr

    small = cv2.imencode('.jpg', np.full((16, 16, 3), 90, np.uint8))[1].tobytes()
    huge = with_declared_size(small, 20000, 20000)
    frame_header = huge.index(b'\xff\xc0')
    stray = huge[:frame_header] + b'junk' + huge[frame_header:]  # libjpeg skips these with a warning
    assert declared_size(stray) == (20000, 20000)
    with pytest.raises(ImageRejected, match='too large'):
        compressed_msg_to_bgr(SimpleNamespace(format='jpeg', data=stray))
    no_frame = small[:small.index(b'\xff\xc0')] + small[small.index(b'\xff\xda'):]
    with pytest.raises(ImageRejected, match='no image size in its header'):
        compressed_msg_to_bgr(SimpleNamespace(format='jpeg', data=no_frame))


def test_compressed_formats_other_than_jpeg_and_png_are_refused(photo):
    from types import SimpleNamespace

    from openpose_ros.messages.conversions import compressed_msg_to_bgr

    bmp = cv2.imencode('.bmp', photo)[1]
    with pytest.raises(ImageRejected, match='neither JPEG nor PNG'):
        compressed_msg_to_bgr(SimpleNamespace(format='bmp', data=bmp))


# --- cut JPEGs --------------------------------------------------------------------------------------------------
def test_a_jpeg_cut_in_half_with_an_end_marker_appended_is_refused(tmp_path):
    from types import SimpleNamespace

    from openpose_ros.messages.conversions import compressed_msg_to_bgr

    jpeg = PHOTO.read_bytes()
    cut = jpeg[:len(jpeg) // 2] + b'\xff\xd9'
    assert cv2.imdecode(np.frombuffer(cut, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV takes it
    with pytest.raises(ImageRejected, match='truncated JPEG: its image data ends before the last block') as refused:
        compressed_msg_to_bgr(SimpleNamespace(format='jpeg', data=cut))
    assert refused.value.cause == 'truncated JPEG'
    path = tmp_path / 'cut.jpg'
    path.write_bytes(cut)
    with pytest.raises(ImageRejected, match='truncated JPEG'):
        Image.open(path)
    assert compressed_msg_to_bgr(SimpleNamespace(format='jpeg', data=jpeg)).shape == (425, 640, 3)


def test_a_complete_jpeg_whose_last_block_is_grey_is_accepted(photo):
    from types import SimpleNamespace

    from openpose_ros.messages.conversions import compressed_msg_to_bgr

    grey_corner = photo.copy()
    grey_corner[-64:, -64:] = 128  # what a cut JPEG decodes to, but here the picture's own
    jpeg = cv2.imencode('.jpg', grey_corner)[1].tobytes()
    decoded = compressed_msg_to_bgr(SimpleNamespace(format='jpeg', data=jpeg))
    assert np.all(decoded[-8:, -8:] == 128)
    assert np.array_equal(decoded, cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))


# --- Image.opencv() and float images ---------------------------------------------------------------------------
def test_drawing_on_opencv_leaves_the_image_and_its_source_unchanged(photo):
    from openpose_ros.pose import Pose, draw

    source = photo.copy()
    image = Image(source)
    keypoints = np.full((18, 2), -1.0, np.float32)
    keypoints[:2] = [(100, 100), (150, 200)]  # nose, neck: one limb to draw
    canvas = image.opencv()
    draw(canvas, Pose(keypoints, 1.0))
    canvas[:10] = 0
    assert not np.array_equal(canvas, photo)
    assert np.array_equal(image.opencv(), photo) and np.array_equal(source, photo)
    assert np.array_equal(to_bgr8(image), photo)


def test_float_images_on_a_0_255_scale_are_refused_with_what_to_do(photo):
    with pytest.raises(ImageRejected, match=r'float pixel values must be in \[0, 1\], got 0\.\.255; divide') as refused:
        to_bgr8(photo.astype(np.float32))
    assert refused.value.cause == 'float range'
    with pytest.raises(ImageRejected, match='float range|must be in'):
        to_bgr8(photo.astype(np.float32) / 127.5 - 1.0)  # -1..1
    rounded = photo.astype(np.float64) / 255.0 * (1 + 1e-6)  # rounding just past 1 is taken as 1
    assert np.array_equal(to_bgr8(rounded), photo)
