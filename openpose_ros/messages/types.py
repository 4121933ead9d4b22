"""Where the message builders take their message classes from, so that the node and the bags build the same
messages with the same code: rclpy's generated classes for the node (RCLPY_TYPES), a `rosbags` typestore's for
bags (StoreTypes(store)).

A provider maps a ROS type name ('geometry_msgs/msg/Point') to its class, turns bytes (a uint8 array) into
what that class holds in a uint8[] field, and makes messages that carry many bytes (new()) without copying them
again. Builders pass every field: rosbags' classes have no defaults.
"""
import array
import importlib

import numpy as np

HEADER = 'std_msgs/msg/Header'
TIME = 'builtin_interfaces/msg/Time'


class RclpyTypes:
    """The classes rclpy generates (imported on first use: a process without ROS never needs them)."""

    def __getitem__(self, name: str) -> type:
        package, _, message = name.split('/')
        return getattr(importlib.import_module(f'{package}.msg'), message)

    @staticmethod
    def byte_array(data) -> array.array:
        """A uint8[] field's value: array.array, which rclpy keeps without checking each byte."""
        out = array.array('B')
        out.frombytes(np.ascontiguousarray(data, np.uint8))
        return out

    def new(self, name: str, **fields):
        """A message of type `name` with `fields`, set one by one with field checks on where the distribution has
        the switch: with checks off (Kilted's default) the constructor and the setter copy a byte_array() again,
        ~1 ms for a 640x480 image; with them on the setter keeps it. Older distributions always check."""
        message_class = self[name]
        msg = message_class(check_fields=True) if '_check_fields' in message_class.__slots__ else message_class()
        for field, value in fields.items():
            setattr(msg, field, value)
        return msg


class StoreTypes:
    """The classes of a `rosbags` typestore (openpose_ros.messages.typestore.typestore())."""

    def __init__(self, store):
        self.store = store

    def __getitem__(self, name: str) -> type:
        return self.store.types[name]

    @staticmethod
    def byte_array(data) -> np.ndarray:
        """A uint8[] field's value: a flat uint8 numpy array, which rosbags serialises as it is."""
        return np.ascontiguousarray(data, np.uint8).reshape(-1)

    def new(self, name: str, **fields):
        """A message of type `name` with `fields` (as RclpyTypes.new)."""
        return self[name](**fields)


RCLPY_TYPES = RclpyTypes()


def header(types, stamp_ns: int = 0, frame_id: str = ''):
    """A std_msgs/Header with the given stamp (integer nanoseconds) and frame id."""
    seconds, nanoseconds = divmod(int(stamp_ns), 1_000_000_000)
    return types[HEADER](stamp=types[TIME](sec=seconds, nanosec=nanoseconds), frame_id=frame_id)


def with_frame(types, header_msg, frame_id: str):
    """A copy of a std_msgs/Header with another frame id (the same stamp)."""
    stamp = header_msg.stamp
    return types[HEADER](stamp=types[TIME](sec=int(stamp.sec), nanosec=int(stamp.nanosec)), frame_id=frame_id)
