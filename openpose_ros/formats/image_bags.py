"""Writing camera bags: image frames (a video, a list of arrays) into a ROS 2 bag, as a camera driver and
`ros2 bag record` would have. For trying bag_eval on a video, and for tests.

    from openpose_ros.formats.image_bags import video_to_bag
    video_to_bag('vtest.avi', 'vtest_bag', storage='mcap', compressed=True)
"""
from pathlib import Path

import cv2
import numpy as np

from openpose_ros.messages import typestore as messages

DEFAULT_TOPIC = '/camera/image_raw'
# encoding -> conversion from BGR, channels
_FROM_BGR = {
    'bgr8': (None, 3), 'rgb8': (cv2.COLOR_BGR2RGB, 3), 'bgra8': (cv2.COLOR_BGR2BGRA, 4),
    'rgba8': (cv2.COLOR_BGR2RGBA, 4), 'mono8': (cv2.COLOR_BGR2GRAY, 1),
}


def image_msg(store, bgr, header, encoding='bgr8', row_padding=0):
    """sensor_msgs/msg/Image of a BGR frame in `encoding` (bgr8, rgb8, bgra8, rgba8, mono8), rows padded with
    `row_padding` extra bytes (step = width x channels + padding)."""
    conversion, channels = _FROM_BGR[encoding]
    pixels = bgr if conversion is None else cv2.cvtColor(bgr, conversion)
    pixels = pixels.reshape(bgr.shape[0], bgr.shape[1] * channels)
    if row_padding:
        pixels = np.concatenate([pixels, np.zeros((pixels.shape[0], row_padding), np.uint8)], axis=1)
    height, width = bgr.shape[:2]
    return store.types[messages.IMAGE](header=header, height=height, width=width, encoding=encoding,
                                       is_bigendian=0, step=pixels.shape[1],
                                       data=np.ascontiguousarray(pixels).reshape(-1))


def write_image_bag(path, frames, storage='sqlite3', topic=DEFAULT_TOPIC, compressed=False, encoding='bgr8',
                    frame_id='camera', store=None, row_padding=0, jpeg_quality=90):
    """Writes `frames`, an iterable of (stamp_ns, BGR uint8 array) or (stamp_ns, log_time_ns, array), into a new
    bag at `path`: sensor_msgs/Image in `encoding`, or CompressedImage (JPEG) on `topic` + '/compressed' when
    `compressed`. A stamp of 0 leaves the header stamp zero. Returns the number of frames written."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    store = store or messages.typestore()
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    topic = topic + '/compressed' if compressed else topic
    msgtype = messages.COMPRESSED_IMAGE if compressed else messages.IMAGE
    count = 0
    with Writer(Path(path), version=9, storage_plugin=plugin) as writer:
        connection = writer.add_connection(topic, msgtype, typestore=store)
        for item in frames:
            stamp, log_time, bgr = item if len(item) == 3 else (item[0], item[0], item[1])
            header = messages.header(store, stamp, frame_id)
            if compressed:
                msg = messages.compressed_image(store, bgr, header, jpeg_quality)
            else:
                msg = image_msg(store, bgr, header, encoding, row_padding)
            writer.write(connection, int(log_time), bytes(store.serialize_cdr(msg, msgtype)))
            count += 1
    return count


def video_frames(video, max_frames=None, fps=None, start_ns=1_700_000_000_000_000_000, step=1):
    """(stamp_ns, BGR frame) of a video file, stamped from `start_ns` at the video's frame rate (or `fps`);
    every `step`-th frame."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError(f'{video} cannot be opened as a video')
    rate = fps or capture.get(cv2.CAP_PROP_FPS) or 30.0
    try:
        index = taken = 0
        while max_frames is None or taken < max_frames:
            ok, frame = capture.read()
            if not ok:
                return
            if index % step == 0:
                yield start_ns + round(index * 1e9 / rate), frame
                taken += 1
            index += 1
    finally:
        capture.release()


def video_to_bag(video, path, storage='sqlite3', topic=DEFAULT_TOPIC, compressed=False, max_frames=None,
                 fps=None, step=1):
    """A camera bag from a video file; returns the number of frames written."""
    return write_image_bag(path, video_frames(video, max_frames, fps, step=step), storage, topic, compressed)
