"""Message class providers: rclpy's generated classes and a rosbags typestore's build the same headers."""
import array
import dataclasses

import numpy as np

from openpose_ros.messages.typestore import typestore
from openpose_ros.messages.types import HEADER, RCLPY_TYPES, StoreTypes, header, with_frame

STORE_TYPES = StoreTypes(typestore())


def fields_of(msg):
    """The field names of a message of either provider."""
    if hasattr(msg, 'get_fields_and_field_types'):
        return sorted(msg.get_fields_and_field_types())
    return sorted(field.name for field in dataclasses.fields(msg) if not field.name.startswith('__'))


def test_both_providers_give_a_header_with_the_same_fields_and_values():
    stamp_ns = 1_700_000_123_000_000_045
    headers = [header(types, stamp_ns, 'camera') for types in (RCLPY_TYPES, STORE_TYPES)]
    assert fields_of(headers[0]) == fields_of(headers[1]) == ['frame_id', 'stamp']
    for msg in headers:
        assert (msg.stamp.sec, msg.stamp.nanosec, msg.frame_id) == (1_700_000_123, 45, 'camera')
    from std_msgs.msg import Header
    assert isinstance(headers[0], Header) and type(headers[1]) is STORE_TYPES[HEADER]


def test_with_frame_keeps_the_stamp_and_the_original():
    for types in (RCLPY_TYPES, STORE_TYPES):
        original = header(types, 2_500_000_000, 'camera')
        moved = with_frame(types, original, 'optical')
        assert (moved.stamp.sec, moved.stamp.nanosec, moved.frame_id) == (2, 500_000_000, 'optical')
        assert original.frame_id == 'camera'


def test_byte_arrays_hold_the_bytes_in_the_provider_s_type():
    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    rclpy_bytes, store_bytes = RCLPY_TYPES.byte_array(pixels), STORE_TYPES.byte_array(pixels)
    assert isinstance(rclpy_bytes, array.array) and rclpy_bytes.typecode == 'B'
    assert isinstance(store_bytes, np.ndarray) and store_bytes.shape == (12,)
    assert bytes(rclpy_bytes) == store_bytes.tobytes() == pixels.tobytes()


def test_new_builds_an_image_with_its_data_in_both_providers():
    pixels = np.full((2, 3, 3), 7, np.uint8)
    for types in (RCLPY_TYPES, STORE_TYPES):
        msg = types.new('sensor_msgs/msg/Image', header=header(types, 5, 'camera'), height=2, width=3,
                        encoding='bgr8', is_bigendian=0, step=9, data=types.byte_array(pixels))
        assert (msg.height, msg.width, msg.encoding, msg.step) == (2, 3, 'bgr8', 9)
        assert bytes(msg.data) == pixels.tobytes() and msg.header.stamp.nanosec == 5
