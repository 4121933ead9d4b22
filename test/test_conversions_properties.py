"""Properties of the image conversions on arbitrary inputs: every array, sensor_msgs/Image (any width, height,
step, encoding and data size), CompressedImage (random bytes, cut, damaged or resized real JPEGs and PNGs) and
bag image message either converts to a valid HxWx3 uint8 image or raises a ValueError that says why: never
another exception, never an image larger than the data it came from (raw) or than the pixel limit (compressed)."""
import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from conftest import PHOTO
from openpose_ros.inference.image import MAX_PIXELS, to_bgr8
from openpose_ros.messages.conversions import SUPPORTED_ENCODINGS, compressed_msg_to_bgr, image_msg_to_bgr
from test_image_input_bounds import with_declared_size

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL_PHOTO = cv2.resize(cv2.imread(str(PHOTO)), (40, 27))
ENCODED = {kind: cv2.imencode(suffix, SMALL_PHOTO)[1].tobytes() for kind, suffix in (('jpeg', '.jpg'), ('png', '.png'))}


def assert_bgr8(image, height=None, width=None):
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if height is not None:
        assert image.shape[:2] == (height, width)


def converts_or_refuses(convert, *args):
    """convert(*args), or None when it raised ValueError with a message; any other exception fails the test."""
    try:
        return convert(*args)
    except ValueError as error:
        assert str(error), 'a refusal must say why'
        return None


# --- arrays ------------------------------------------------------------------------------------------------------
DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.float16, np.float32, np.float64, np.bool_,
                          np.complex64])
ARRAY_SHAPES = st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple)


@st.composite
def arrays(draw):
    shape, dtype = draw(ARRAY_SHAPES), draw(DTYPES)
    size = int(np.prod(shape)) if shape else 1
    values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32) | st.integers(-300, 70000),
                           min_size=size, max_size=size))
    with np.errstate(all='ignore'):
        return np.array(values, dtype=np.float64).astype(dtype).reshape(shape)


@SETTINGS
@given(arrays())
def test_any_array_becomes_bgr8_or_is_refused(data):
    out = converts_or_refuses(to_bgr8, data)
    if out is not None:
        height, width = data.shape[:2]
        assert_bgr8(out, height, width)


@SETTINGS
@given(st.lists(st.floats(0.0, 1.0), min_size=12, max_size=12))
def test_float_images_in_0_1_convert_to_the_nearest_grey_level(values):
    image = np.array(values, np.float32).reshape(2, 2, 3)
    out = to_bgr8(image)
    assert np.abs(out.astype(float) - image * 255).max() <= 0.5 + 1e-3


# --- raw image messages ------------------------------------------------------------------------------------------
DATA_KINDS = st.sampled_from(['bytes', 'array', 'numpy', 'list'])


def as_data(raw, kind):
    return {'bytes': lambda: raw, 'array': lambda: array.array('B', raw), 'list': lambda: list(raw),
            'numpy': lambda: np.frombuffer(raw, np.uint8)}[kind]()


@st.composite
def image_messages(draw):
    encoding = draw(st.sampled_from(SUPPORTED_ENCODINGS) | st.text(max_size=8))
    dimension = st.integers(-2, 40) | st.integers(0, 2 ** 32 - 1)
    height, width = draw(dimension), draw(dimension)
    step = draw(st.integers(-2, 200) | st.integers(0, 2 ** 32 - 1) | st.just(max(width, 0) * 3))
    raw = draw(st.binary(max_size=1200))
    return SimpleNamespace(encoding=encoding, height=height, width=width, step=step,
                           is_bigendian=draw(st.integers(0, 1)), data=as_data(raw, draw(DATA_KINDS)))


@SETTINGS
@given(image_messages())
def test_any_image_message_converts_or_is_refused(msg):
    out = converts_or_refuses(image_msg_to_bgr, msg)
    if out is not None:
        assert_bgr8(out, msg.height, msg.width)
        assert out.size <= 3 * len(msg.data)  # nothing larger than the data: no allocation from the header


@SETTINGS
@given(st.sampled_from(SUPPORTED_ENCODINGS), st.integers(1, 12), st.integers(1, 12), st.integers(0, 5),
       st.randoms(use_true_random=False))
def test_well_formed_messages_of_every_encoding_convert(encoding, height, width, padding, rng):
    from sensor_msgs.msg import Image

    channels = {'mono8': 1, '8UC1': 1, 'mono16': 2, '16UC1': 2, 'bgra8': 4, 'rgba8': 4, '8UC4': 4}.get(encoding, 3)
    step = width * channels + padding * (2 if channels == 2 else 1)
    raw = bytes(rng.getrandbits(8) for _ in range(step * height))
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=step)
    msg.data = array.array('B', raw)
    assert_bgr8(image_msg_to_bgr(msg), height, width)


# --- compressed image messages ----------------------------------------------------------------------------------
@st.composite
def compressed_data(draw):
    """Random bytes; or a real small JPEG/PNG cut, damaged after its headers, or declaring another size."""
    kind = draw(st.sampled_from(['random', 'cut', 'damaged', 'resized']))
    if kind == 'random':
        prefix = draw(st.sampled_from([b'', b'\xff\xd8', b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n']))
        return prefix + draw(st.binary(max_size=600))
    encoded = ENCODED[draw(st.sampled_from(sorted(ENCODED)))]
    if kind == 'cut':
        cut = encoded[:draw(st.integers(0, len(encoded)))]
        return cut + (b'\xff\xd9' if draw(st.booleans()) else b'')
    if kind == 'damaged':
        data = bytearray(encoded)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(len(data) // 2, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    # small sizes decode quickly; sizes beyond the pixel limit must be refused before decoding
    side = st.integers(1, 64) | st.integers(16385, 65535)
    return with_declared_size(encoded, draw(side), draw(side))


@SETTINGS
@given(compressed_data(), st.sampled_from(['jpeg', 'png', '']), DATA_KINDS)
def test_any_compressed_message_converts_or_is_refused(data, fmt, kind):
    assume(kind != 'list' or len(data) < 400)  # a list of ints is slow to build; its path is the same
    out = converts_or_refuses(compressed_msg_to_bgr, SimpleNamespace(format=fmt, data=as_data(data, kind)))
    if out is not None:
        assert_bgr8(out)
        assert out.shape[0] * out.shape[1] <= MAX_PIXELS and out.shape[0] * out.shape[1] <= 65 * 65


# --- bag image messages ------------------------------------------------------------------------------------------
@SETTINGS
@given(st.sampled_from(['bgr8', 'rgb8', 'bgra8', 'rgba8', 'mono8']), st.integers(1, 16), st.integers(1, 16),
       st.integers(0, 7), st.randoms(use_true_random=False))
def test_bag_image_messages_convert_back_to_their_frame(encoding, height, width, padding, rng):
    pytest.importorskip('rosbags')
    from openpose_ros.messages import typestore as messages
    from openpose_ros.messages.conversions import bgr_to_image_msg
    from openpose_ros.messages.types import StoreTypes, header

    store = messages.typestore()
    frame = np.frombuffer(bytes(rng.getrandbits(8) for _ in range(height * width * 3)), np.uint8)
    frame = frame.reshape(height, width, 3)
    types = StoreTypes(store)
    msg = bgr_to_image_msg(frame, header(types, 1, 'camera'), encoding, padding, types)
    # What a bag holds: the message serialised and read back, as bag_eval reads it.
    read = store.deserialize_cdr(store.serialize_cdr(msg, messages.IMAGE), messages.IMAGE)
    out = image_msg_to_bgr(read)
    expected = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) if encoding == 'mono8' \
        else frame
    np.testing.assert_array_equal(out, expected)
