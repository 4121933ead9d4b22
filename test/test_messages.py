"""The generated openpose_ros messages: definitions, keypoint constants, and a trip between two processes over DDS."""
import json
import re

import pytest

from openpose_ros.keypoints import KEYPOINT_NAMES
from ros_helpers import ROOT, pick_domain_id, require_ros, ros_env, run_pair

DOMAIN_ID = pick_domain_id()

pytestmark = pytest.mark.ros


@pytest.fixture(scope='module', autouse=True)
def ros():
    require_ros()


def test_fields_and_types():
    from openpose_ros.msg import BoundingBox2D, Keypoint2D, Pose2D, Pose2DArray

    assert Keypoint2D.get_fields_and_field_types() == {
        'x': 'float', 'y': 'float', 'score': 'float', 'valid': 'boolean'}
    assert BoundingBox2D.get_fields_and_field_types() == {
        'x': 'float', 'y': 'float', 'width': 'float', 'height': 'float'}
    assert Pose2D.get_fields_and_field_types() == {
        'track_id': 'int64', 'score': 'float', 'bbox': 'openpose_ros/BoundingBox2D',
        'keypoints': 'openpose_ros/Keypoint2D[18]'}
    assert Pose2DArray.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'poses': 'sequence<openpose_ros/Pose2D>'}
    pose = Pose2D()
    assert len(pose.keypoints) == Pose2D.NUM_KEYPOINTS == len(KEYPOINT_NAMES)
    assert Pose2DArray().poses == []


def test_3d_fields_and_types():
    from openpose_ros.msg import Keypoint3D, Pose3D, Pose3DArray

    assert Keypoint3D.get_fields_and_field_types() == {
        'position': 'geometry_msgs/Point', 'score': 'float', 'valid': 'boolean'}
    assert Pose3D.get_fields_and_field_types() == {
        'track_id': 'int64', 'score': 'float', 'keypoints': 'openpose_ros/Keypoint3D[18]',
        'center': 'geometry_msgs/Point', 'center_valid': 'boolean'}
    assert Pose3DArray.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'poses': 'sequence<openpose_ros/Pose3D>'}
    assert len(Pose3D().keypoints) == len(KEYPOINT_NAMES)


def test_bag_typestore_serialises_3d_poses():
    from openpose_ros.messages import typestore as messages
    from openpose_ros.messages.types import StoreTypes, header

    store = messages.typestore()
    types = store.types
    Point = types['geometry_msgs/msg/Point']
    keypoints = [types['openpose_ros/msg/Keypoint3D'](position=Point(x=0.1 * i, y=0.0, z=2.0), score=0.5,
                                                      valid=True) for i in range(18)]
    pose = types['openpose_ros/msg/Pose3D'](track_id=4, score=0.8, keypoints=keypoints,
                                            center=Point(x=0.9, y=0.0, z=2.0), center_valid=True)
    msg = types['openpose_ros/msg/Pose3DArray'](header=header(StoreTypes(store), 5_000_000_000, 'depth'), poses=[pose])
    back = store.deserialize_cdr(store.serialize_cdr(msg, 'openpose_ros/msg/Pose3DArray'),
                                 'openpose_ros/msg/Pose3DArray')
    assert back.header.frame_id == 'depth' and back.poses[0].track_id == 4
    assert back.poses[0].keypoints[17].position.x == pytest.approx(1.7)


def cross_world_messages():
    """{name: (ROS type, builder)} of each message the node and the bag tools build; builder(types, header) makes
    it with the classes of `types` from the same inputs (a real photo, poses with missing keypoints and scores above
    1, an untracked one)."""
    import cv2

    from conftest import PHOTO
    from test_conversions import make_poses
    from openpose_ros.messages import bodies, conversions, typestore as messages

    photo = cv2.imread(str(PHOTO))
    crop = photo[10:130, 20:200]    # not contiguous
    poses = make_poses()
    width, height = photo.shape[1], photo.shape[0]
    cases = {'poses': (messages.POSE_ARRAY, lambda types, header: conversions.poses_to_msg(poses, header, types)),
             'ids': (messages.IDS_LIST, lambda types, header: bodies.ids_list_msg(['abcde', 'fghij'], header, types))}
    for encoding in conversions.OUTPUT_ENCODINGS:
        for padding in (0, 3):
            cases[f'image {encoding} padding {padding}'] = (
                messages.IMAGE, lambda types, header, encoding=encoding, padding=padding:
                conversions.bgr_to_image_msg(crop, header, encoding, padding, types))
    for codec, format_name in (('jpeg', None), ('png', None), ('jpeg', 'jpeg'), ('png', 'png')):
        cases[f'compressed {codec} format {format_name}'] = (
            messages.COMPRESSED_IMAGE, lambda types, header, codec=codec, format_name=format_name:
            conversions.compressed_image_msg(photo, header, codec, 75, format_name, types))
    for index, pose in enumerate(poses):
        cases[f'roi {index}'] = (messages.ROI, lambda types, header, pose=pose:
                                 bodies.roi_msg(pose, header, width, height, types))
        cases[f'skeleton2d {index}'] = (messages.SKELETON2D, lambda types, header, pose=pose:
                                        bodies.skeleton2d_msg(pose, header, width, height, types))
    return cases


@pytest.fixture(scope='module')
def built_messages():
    return cross_world_messages()


CROSS_WORLD_NAMES = (['poses', 'ids']
                     + [f'image {encoding} padding {padding}'
                        for encoding in ('bgr8', 'rgb8', 'mono8', 'bgra8', 'rgba8') for padding in (0, 3)]
                     + [f'compressed {codec} format {format_name}'
                        for codec, format_name in (('jpeg', None), ('png', None), ('jpeg', 'jpeg'), ('png', 'png'))]
                     + [f'{kind} {index}' for kind in ('roi', 'skeleton2d') for index in range(3)])


def test_every_built_message_is_compared_across_worlds(built_messages):
    assert sorted(built_messages) == sorted(CROSS_WORLD_NAMES)


@pytest.mark.parametrize('name', CROSS_WORLD_NAMES)
def test_rclpy_and_typestore_messages_serialise_to_the_same_cdr_bytes(name, built_messages):
    """One builder serves the node and the bags: its message of rclpy's classes and of the bag typestore's
    serialise to the same CDR. rclpy's serialiser leaves the alignment padding uninitialised (the typestore writes
    zeros), so the bytes may differ there only; the rclpy bytes read back by the typestore and written again must
    be identical in full."""
    from rclpy.serialization import serialize_message

    from openpose_ros.messages import typestore as messages
    from openpose_ros.messages.types import RCLPY_TYPES, StoreTypes, header

    msgtype, build = built_messages[name]
    store = messages.typestore(hri=True)
    stamp_ns, frame_id = 1_700_000_123_456_789_012, 'camera_color_optical_frame'
    from_rclpy = bytes(serialize_message(build(RCLPY_TYPES, header(RCLPY_TYPES, stamp_ns, frame_id))))
    types = StoreTypes(store)
    from_store = bytes(store.serialize_cdr(build(types, header(types, stamp_ns, frame_id)), msgtype))
    assert len(from_rclpy) == len(from_store)
    assert bytes(store.serialize_cdr(store.deserialize_cdr(from_rclpy, msgtype), msgtype)) == from_store
    assert all(a == b or b == 0 for a, b in zip(from_rclpy, from_store)), 'only the zero padding may differ'


def test_keypoint_constants_follow_keypoint_names():
    """Each constant's name spells the KEYPOINT_NAMES entry at its value: RIGHT_SHOULDER = index of 'r_sho'."""
    from openpose_ros.msg import Pose2D

    text = (ROOT / 'msg' / 'Pose2D.msg').read_text()
    constants = dict((name, int(value)) for name, value in re.findall(r'^uint8 ([A-Z_]+)=(\d+)', text, re.M))
    assert constants.pop('NUM_KEYPOINTS') == len(KEYPOINT_NAMES) == 18
    assert sorted(constants.values()) == list(range(len(KEYPOINT_NAMES))), 'one constant per index'
    for name, index in constants.items():
        assert getattr(Pose2D, name) == index, name  # the generated class carries the same constants
        side, _, part = name.partition('_')
        short = KEYPOINT_NAMES[index]
        if side in ('LEFT', 'RIGHT'):
            short_side, _, short_part = short.partition('_')
            assert short_side == side[0].lower() and part.lower().startswith(short_part), (name, index, short)
        else:
            assert short == name.lower(), (name, index, short)


# The message published by one process and expected, field by field, in the other. Values are exact in float32.
EXPECTED = {
    'header': {'sec': 1_700_000_123, 'nanosec': 456_789_000, 'frame_id': 'camera_color_optical_frame'},
    'poses': [
        {'track_id': track_id, 'score': score, 'bbox': [10.5 * n, 20.25, 100.0, 200.125],
         'keypoints': [[k * 8.5 + n, k * 3.25 + 2 * n, (k % 5) / 4, (k + n) % 3 != 0] for k in range(18)]}
        for n, (track_id, score) in enumerate([(-1, 0.0), (0, 0.5), (2 ** 40 + 3, 1.0)])
    ],
}

TO_DICT = '''
def to_dict(msg):
    return {
        'header': {'sec': msg.header.stamp.sec, 'nanosec': msg.header.stamp.nanosec,
                   'frame_id': msg.header.frame_id},
        'poses': [{'track_id': p.track_id, 'score': p.score,
                   'bbox': [p.bbox.x, p.bbox.y, p.bbox.width, p.bbox.height],
                   'keypoints': [[k.x, k.y, k.score, k.valid] for k in p.keypoints]} for p in msg.poses],
    }
'''

SUBSCRIBER = '''
import json, os, time
import rclpy
from openpose_ros.msg import Pose2DArray
''' + TO_DICT + '''
rclpy.init()
node = rclpy.create_node('pose_array_listener')
received = []
node.create_subscription(Pose2DArray, 'poses_' + os.environ['TEST_TOPIC_SUFFIX'], received.append, 10)
print('ready', flush=True)
deadline = time.monotonic() + 30
while not received and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
if received:
    print(json.dumps({'message': to_dict(received[0]), 'count': len(received)}))
node.destroy_node()
rclpy.shutdown()
'''

PUBLISHER = '''
import json, os, time
import rclpy
from rclpy.duration import Duration
from builtin_interfaces.msg import Time
from openpose_ros.msg import BoundingBox2D, Keypoint2D, Pose2D, Pose2DArray

spec = json.loads(%r)
msg = Pose2DArray()
msg.header.stamp = Time(sec=spec['header']['sec'], nanosec=spec['header']['nanosec'])
msg.header.frame_id = spec['header']['frame_id']
msg.poses = [
    Pose2D(track_id=p['track_id'], score=p['score'], bbox=BoundingBox2D(x=p['bbox'][0], y=p['bbox'][1],
           width=p['bbox'][2], height=p['bbox'][3]),
           keypoints=[Keypoint2D(x=x, y=y, score=s, valid=v) for x, y, s, v in p['keypoints']])
    for p in spec['poses']]
rclpy.init()
node = rclpy.create_node('pose_array_talker')
publisher = node.create_publisher(Pose2DArray, 'poses_' + os.environ['TEST_TOPIC_SUFFIX'], 10)
deadline = time.monotonic() + 20
while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
    time.sleep(0.02)
assert publisher.get_subscription_count() > 0, 'no subscriber matched'
time.sleep(0.5)  # the first message can be lost right after matching
publisher.publish(msg)
assert publisher.wait_for_all_acked(Duration(seconds=10)), 'the message was not acknowledged'
node.destroy_node()
rclpy.shutdown()
'''


@pytest.mark.slow
def test_pose_array_travels_between_processes():
    result = run_pair(SUBSCRIBER, PUBLISHER % json.dumps(EXPECTED), ros_env(DOMAIN_ID))
    assert result['count'] == 1
    assert result['message'] == EXPECTED
