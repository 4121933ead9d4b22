"""openpose_ros.messages.conversions on real images (../shared/data/images/messi5.jpg), and an image over DDS."""
import array
import json

import cv2
import numpy as np
import pytest

from ros_helpers import SHARED_DATA, pick_domain_id, require_ros, ros_env, run_pair

DOMAIN_ID = pick_domain_id()
MESSI = SHARED_DATA / 'images' / 'messi5.jpg'

pytestmark = pytest.mark.ros


@pytest.fixture(scope='module', autouse=True)
def ros():
    require_ros()


@pytest.fixture(scope='module')
def bgr():
    image = cv2.imread(str(MESSI), cv2.IMREAD_COLOR)
    assert image is not None, f'cannot read {MESSI}'
    assert image.shape == (342, 548, 3)
    return image


def image_msg(pixels, encoding, padding=0, bigendian=False):
    """A sensor_msgs/Image holding `pixels` (h, w[, c]) with `padding` bytes of 0xAB after each row."""
    from sensor_msgs.msg import Image

    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype == np.uint16:
        pixels = pixels.astype('>u2' if bigendian else '<u2')
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1).view(np.uint8)
    padded = np.full((height, rows.shape[1] + padding), 0xAB, np.uint8)
    padded[:, :rows.shape[1]] = rows
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian), step=padded.shape[1])
    msg.data = array.array('B', padded.tobytes())
    return msg


def test_supported_encodings():
    from openpose_ros.messages.conversions import SUPPORTED_ENCODINGS
    assert {'rgb8', 'bgr8', 'mono8', 'rgba8', 'bgra8', 'mono16', '16UC1'} <= set(SUPPORTED_ENCODINGS)


@pytest.mark.parametrize('padding', [0, 5])
@pytest.mark.parametrize('encoding, to_message, expected', [
    ('bgr8', None, None),
    ('8UC3', None, None),
    ('rgb8', cv2.COLOR_BGR2RGB, None),
    ('bgra8', cv2.COLOR_BGR2BGRA, None),
    ('rgba8', cv2.COLOR_BGR2RGBA, None),
    ('mono8', cv2.COLOR_BGR2GRAY, 'gray'),
    ('8UC1', cv2.COLOR_BGR2GRAY, 'gray'),
])
def test_8_bit_encodings(bgr, encoding, to_message, expected, padding):
    from openpose_ros.messages.conversions import image_msg_to_bgr

    pixels = bgr if to_message is None else cv2.cvtColor(bgr, to_message)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels[:, :, 3] = 77  # alpha must be dropped, whatever it holds
    out = image_msg_to_bgr(image_msg(pixels, encoding, padding))
    want = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR) if expected == 'gray' else bgr
    assert out.shape == want.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize('padding', [0, 6])
def test_bgr8_is_a_view_of_the_message_data(bgr, padding):
    from openpose_ros.messages.conversions import image_msg_to_bgr

    msg = image_msg(bgr, 'bgr8', padding)
    out = image_msg_to_bgr(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    np.testing.assert_array_equal(out, bgr)
    # cv2 takes the padded view as it is
    np.testing.assert_array_equal(cv2.resize(out, (274, 171)), cv2.resize(bgr, (274, 171)))


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
@pytest.mark.parametrize('bigendian', [False, True])
@pytest.mark.parametrize('padding', [0, 4])
def test_16_bit_encodings_are_scaled_to_their_maximum(bgr, encoding, bigendian, padding):
    from openpose_ros.messages.conversions import image_msg_to_bgr

    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    deep = gray.astype(np.uint16) * 40  # a 14-bit range, as from a depth or thermal camera
    out = image_msg_to_bgr(image_msg(deep, encoding, padding, bigendian))
    assert out.shape == bgr.shape and out.dtype == np.uint8
    want = np.round(deep * (255.0 / deep.max()))
    assert np.abs(out[:, :, 1].astype(int) - want).max() <= 1
    assert (out[:, :, 0] == out[:, :, 2]).all()
    assert out.max() == 255


def test_all_black_16_bit_image():
    from openpose_ros.messages.conversions import image_msg_to_bgr

    out = image_msg_to_bgr(image_msg(np.zeros((4, 6), np.uint16), 'mono16'))
    assert out.shape == (4, 6, 3) and not out.any()


def test_data_given_as_bytes_or_numpy(bgr):
    """rosbags deserialises data as a numpy array; other code may set bytes."""
    from types import SimpleNamespace

    from openpose_ros.messages.conversions import image_msg_to_bgr

    for data in (bgr.tobytes(), bgr.reshape(-1).copy(), bgr.reshape(-1).tolist()):
        msg = SimpleNamespace(height=342, width=548, encoding='bgr8', is_bigendian=0, step=548 * 3, data=data)
        np.testing.assert_array_equal(image_msg_to_bgr(msg), bgr)
    for data in ([0, 1, 256] * 3, np.full(9, -1), np.zeros(9, np.float32)):
        msg = SimpleNamespace(height=1, width=3, encoding='rgb8', is_bigendian=0, step=9, data=data)
        with pytest.raises(ValueError, match=r'image data must hold bytes \(integers in 0..255\), got'):
            image_msg_to_bgr(msg)


@pytest.mark.parametrize('change, message', [
    (dict(encoding='yuv422'), r"unsupported image encoding 'yuv422' \(supported: bgr8, "),
    (dict(encoding='bayer_rggb8'), 'unsupported image encoding'),
    (dict(encoding=''), "unsupported image encoding ''"),
    (dict(step=548 * 3 - 1), r'image step 1643 is smaller than a row of 548 bgr8 pixels \(1644 bytes\)'),
    (dict(step=0), 'image step 0 is smaller'),
    (dict(width=0), 'empty image: 0x342 pixels'),
    (dict(height=0), 'empty image: 548x0 pixels'),
    (dict(height=343), r'image data is truncated: 562248 bytes, expected step x height = 1644 x 343 = 563892'),
    (dict(data=array.array('B')), 'image data is truncated: 0 bytes'),
])
def test_bad_image_messages(bgr, change, message):
    from openpose_ros.messages.conversions import image_msg_to_bgr

    msg = image_msg(bgr, 'bgr8')
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ValueError, match=message):
        image_msg_to_bgr(msg)


def test_odd_step_for_16_bit():
    from openpose_ros.messages.conversions import image_msg_to_bgr

    msg = image_msg(np.ones((3, 4), np.uint16), 'mono16', padding=1)
    with pytest.raises(ValueError, match='image step 9 is not a multiple of the 2-byte pixel depth of mono16'):
        image_msg_to_bgr(msg)


def compressed_msg(data, fmt):
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage(format=fmt)
    msg.data = array.array('B', bytes(data))
    return msg


def test_compressed_jpeg_and_png(bgr):
    from openpose_ros.messages.conversions import compressed_msg_to_bgr

    jpeg = compressed_msg(MESSI.read_bytes(), 'jpeg')
    np.testing.assert_array_equal(compressed_msg_to_bgr(jpeg), bgr)  # the same decoder as cv2.imread
    ok, png = cv2.imencode('.png', bgr)
    assert ok
    np.testing.assert_array_equal(compressed_msg_to_bgr(compressed_msg(png, 'bgr8; png compressed bgr8')), bgr)
    ok, gray_jpeg = cv2.imencode('.jpg', cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    out = compressed_msg_to_bgr(compressed_msg(gray_jpeg, 'mono8; jpeg compressed mono8'))
    assert out.shape == bgr.shape


@pytest.mark.parametrize('make, message', [
    (lambda jpeg: jpeg[:len(jpeg) // 2], r'truncated JPEG: no end-of-image marker in compressed image '
                                         r"\(format 'jpeg', 36468 bytes\)"),
    (lambda jpeg: jpeg[:2] + bytes(range(256)) * 20 + jpeg[-2:], "cannot decode compressed image"),
    (lambda jpeg: b'this is not an image',
     r"cannot decode compressed image \(format 'jpeg', 20 bytes\): neither JPEG nor PNG"),
    (lambda jpeg: b'', r"empty compressed image \(format 'jpeg', 0 bytes\)"),
])
def test_bad_compressed_images(make, message):
    from openpose_ros.messages.conversions import compressed_msg_to_bgr

    with pytest.raises(ValueError, match=message):
        compressed_msg_to_bgr(compressed_msg(make(MESSI.read_bytes()), 'jpeg'))


def test_bgr_to_image_msg_round_trip(bgr):
    from std_msgs.msg import Header

    from openpose_ros.messages.conversions import bgr_to_image_msg, image_msg_to_bgr

    header = Header(frame_id='camera')
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = bgr_to_image_msg(bgr, header)
    assert (msg.height, msg.width, msg.step, msg.encoding, msg.is_bigendian) == (342, 548, 548 * 3, 'bgr8', 0)
    assert msg.header.frame_id == 'camera' and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)
    assert isinstance(msg.data, array.array) and len(msg.data) == bgr.size
    np.testing.assert_array_equal(image_msg_to_bgr(msg), bgr)
    # a non-contiguous view (a crop) is copied correctly
    crop = bgr[10:110, 20:220]
    np.testing.assert_array_equal(image_msg_to_bgr(bgr_to_image_msg(crop)), crop)


@pytest.mark.parametrize('image', [
    np.zeros((4, 5), np.uint8), np.zeros((4, 5, 4), np.uint8), np.zeros((4, 5, 3), np.float32),
    np.zeros((0, 5, 3), np.uint8),
])
def test_bgr_to_image_msg_rejects_other_arrays(image):
    from openpose_ros.messages.conversions import bgr_to_image_msg

    with pytest.raises(ValueError, match='expected a BGR uint8 array of shape|empty image'):
        bgr_to_image_msg(image)


def make_poses():
    from openpose_ros.pose import Pose

    keypoints = np.full((18, 2), -1.0, np.float32)
    keypoints[[0, 1, 2, 5, 14, 15]] = [[100, 50], [101.5, 80], [80, 82], [120, 81], [95, 45], [105, 44.25]]
    scores = np.zeros(18, np.float32)
    scores[[0, 1, 2, 5, 14, 15]] = [0.9, 1.07, 0.8, 0.7, 0.6, 0.5]  # heatmap peaks may pass 1
    first = Pose(keypoints, 0.75, scores, id=3)
    second = Pose(np.full((18, 2), -1.0, np.float32), 0.0)  # nothing found, untracked
    third = Pose(keypoints + 200, 1.2, scores, id=0)
    return [first, second, third]


def test_poses_to_msg():
    from std_msgs.msg import Header

    from openpose_ros.messages.conversions import poses_to_msg

    poses = make_poses()
    header = Header(frame_id='camera')
    header.stamp.sec = 99
    msg = poses_to_msg(poses, header)
    assert msg.header.frame_id == 'camera' and msg.header.stamp.sec == 99
    assert [p.track_id for p in msg.poses] == [3, -1, 0]
    assert [p.score for p in msg.poses] == [0.75, 0.0, 1.0]  # clipped to [0, 1]
    first = msg.poses[0]
    assert (first.bbox.x, first.bbox.y, first.bbox.width, first.bbox.height) == (80.0, 44.25, 40.0, 37.75)
    assert [k.valid for k in first.keypoints] == poses[0].found.tolist()
    assert (first.keypoints[1].x, first.keypoints[1].y, first.keypoints[1].score) == (101.5, 80.0, 1.0)
    assert first.keypoints[0].score == pytest.approx(0.9)
    assert all((k.x, k.y, k.score) == (-1.0, -1.0, 0.0) for k in first.keypoints if not k.valid)
    assert not any(k.valid for k in msg.poses[1].keypoints)
    assert (msg.poses[1].bbox.width, msg.poses[1].bbox.height) == (0.0, 0.0)
    assert poses_to_msg([], header).poses == []


def test_poses_3d_to_msg_carries_valid_points_and_zeroes_the_invalid():
    from std_msgs.msg import Header

    from openpose_ros.inference.lifting import Intrinsics, lift_poses
    from openpose_ros.messages.conversions import poses_3d_to_msg

    poses = make_poses()
    depth = np.full((480, 640), 2500, np.uint16)
    depth[40:60, 90:110] = 0                                   # a hole under the first pose's nose
    intrinsics = Intrinsics([[500, 0, 319.5], [0, 500, 239.5], [0, 0, 1]], 640, 480)
    lifted = lift_poses(poses, depth, intrinsics)
    header = Header(frame_id='depth_optical_frame')
    header.stamp.sec = 7
    msg = poses_3d_to_msg(poses, lifted, header)
    assert msg.header.frame_id == 'depth_optical_frame' and msg.header.stamp.sec == 7
    assert [p.track_id for p in msg.poses] == [3, -1, 0]
    assert [p.score for p in msg.poses] == [0.75, 0.0, 1.0]
    first = msg.poses[0]
    assert not first.keypoints[0].valid and first.keypoints[1].valid
    neck = first.keypoints[1]
    expected = ((101.5 - 319.5) * 2.5 / 500, (80 - 239.5) * 2.5 / 500, 2.5)   # the pinhole camera's back-projection
    assert (neck.position.x, neck.position.y, neck.position.z) == pytest.approx(expected)
    assert neck.score == 1.0                                   # clipped to [0, 1]
    invalid = [k for k in first.keypoints if not k.valid]
    assert all((k.position.x, k.position.y, k.position.z, k.score) == (0, 0, 0, 0) for k in invalid)
    assert first.center_valid and first.center.z == pytest.approx(2.5)
    nobody = msg.poses[1]
    assert not nobody.center_valid and not any(k.valid for k in nobody.keypoints)
    assert (nobody.center.x, nobody.center.y, nobody.center.z) == (0, 0, 0)


def test_msg_to_poses_inverts_poses_to_msg():
    from openpose_ros.messages.conversions import msg_to_poses, poses_to_msg

    poses = make_poses()
    back = msg_to_poses(poses_to_msg(poses))
    for pose, again in zip(poses, back, strict=True):
        np.testing.assert_array_equal(again.keypoints, pose.keypoints)
        np.testing.assert_allclose(again.keypoint_scores, np.clip(pose.keypoint_scores, 0, 1), rtol=1e-6)
        assert again.id == pose.id
        assert again.confidence == pytest.approx(min(pose.confidence, 1.0))


IMAGE_SUBSCRIBER = '''
import hashlib, json, os, time
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from openpose_ros.messages.conversions import image_msg_to_bgr

rclpy.init()
node = rclpy.create_node('image_listener')
frames = []
def on_image(msg):
    image = image_msg_to_bgr(msg)
    sent = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    frames.append((time.time() - sent, hashlib.sha256(image.tobytes()).hexdigest(), image.shape))
node.create_subscription(Image, 'image_' + os.environ['TEST_TOPIC_SUFFIX'], on_image, qos_profile_sensor_data)
print('ready', flush=True)
deadline = time.monotonic() + 30
last = None
while time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
    if frames and last is None:
        last = time.monotonic()
    if last is not None and time.monotonic() - last > 3:  # the publisher sends for 1.5 s
        break
latencies = sorted(f[0] for f in frames)
print(json.dumps({'count': len(frames), 'digests': sorted(set(f[1] for f in frames)),
                  'shapes': sorted(set(str(f[2]) for f in frames)),
                  'median_latency_ms': 1000 * latencies[len(latencies) // 2] if frames else None}))
node.destroy_node()
rclpy.shutdown()
'''

IMAGE_PUBLISHER = '''
import os, time
import cv2
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from openpose_ros.messages.conversions import bgr_to_image_msg

image = cv2.imread(%r)
rclpy.init()
node = rclpy.create_node('image_talker')
publisher = node.create_publisher(Image, 'image_' + os.environ['TEST_TOPIC_SUFFIX'], qos_profile_sensor_data)
deadline = time.monotonic() + 20
while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
    time.sleep(0.02)
assert publisher.get_subscription_count() > 0, 'no subscriber matched'
time.sleep(0.5)
for _ in range(%d):
    msg = bgr_to_image_msg(image, Header(frame_id='camera', stamp=node.get_clock().now().to_msg()))
    publisher.publish(msg)
    time.sleep(0.05)
time.sleep(0.5)
node.destroy_node()
rclpy.shutdown()
'''


@pytest.mark.slow
def test_image_travels_between_processes_best_effort(bgr):
    """A 548x342 bgr8 image (562 kB, more than Fast DDS' default shared memory segment) at 20 Hz, best effort."""
    import hashlib

    sent = 30
    result = run_pair(IMAGE_SUBSCRIBER, IMAGE_PUBLISHER % (str(MESSI), sent), ros_env(DOMAIN_ID))
    print(json.dumps(result))
    assert result['digests'] == [hashlib.sha256(bgr.tobytes()).hexdigest()], 'every image arrives intact'
    assert result['shapes'] == [str(bgr.shape)]
    assert result['count'] >= sent * 0.8, f"only {result['count']} of {sent} images arrived"


def test_depth_images_read_as_millimetres_or_metres_with_padded_rows_and_either_byte_order():
    from sensor_msgs.msg import Image

    from openpose_ros.messages.conversions import depth_msg_to_array

    millimetres = np.arange(12, dtype=np.uint16).reshape(3, 4) * 250
    for bigendian in (False, True):
        msg = image_msg(millimetres, '16UC1', padding=6, bigendian=bigendian)
        read = depth_msg_to_array(msg)
        assert read.dtype == np.uint16 and read.dtype.isnative
        np.testing.assert_array_equal(read, millimetres)
    metres = (millimetres / 1000).astype(np.float32)
    msg = Image(height=3, width=4, encoding='32FC1', is_bigendian=0, step=16, data=metres.tobytes())
    np.testing.assert_array_equal(depth_msg_to_array(msg), metres)
    with pytest.raises(ValueError, match='16UC1 millimetres or 32FC1 metres'):
        depth_msg_to_array(image_msg(np.zeros((3, 4, 3), np.uint8), 'rgb8'))
    with pytest.raises(ValueError, match='malformed depth image'):
        depth_msg_to_array(Image(height=3, width=4, encoding='32FC1', step=16, data=metres.tobytes()[:20]))
