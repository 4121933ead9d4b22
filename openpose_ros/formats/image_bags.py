"""Writing camera bags: image frames (a video, a list of arrays) into a ROS 2 bag, as a camera driver and
`ros2 bag record` would have. For trying bag_eval on a video, and for tests.

    from openpose_ros.formats.image_bags import video_to_bag
    video_to_bag('vtest.avi', 'vtest_bag', storage='mcap', compressed=True)
"""
from pathlib import Path

import cv2

from openpose_ros.messages import typestore as messages
from openpose_ros.messages.conversions import bgr_to_image_msg, compressed_image_msg
from openpose_ros.messages.types import StoreTypes, header as make_header

DEFAULT_TOPIC = '/camera/image_raw'


def write_image_bag(path, frames, storage='sqlite3', topic=DEFAULT_TOPIC, compressed=False, encoding='bgr8',
                    frame_id='camera', store=None, row_padding=0, jpeg_quality=90):
    """Writes `frames`, an iterable of (stamp_ns, BGR uint8 array) or (stamp_ns, log_time_ns, array), into a new
    bag at `path`: sensor_msgs/Image in `encoding` (openpose_ros.messages.conversions.OUTPUT_ENCODINGS) with rows
    padded by `row_padding` bytes, or CompressedImage (JPEG) on `topic` + '/compressed' when `compressed`. A stamp
    of 0 leaves the header stamp zero. Returns the number of frames written."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    store = store or messages.typestore()
    types = StoreTypes(store)
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    topic = topic + '/compressed' if compressed else topic
    msgtype = messages.COMPRESSED_IMAGE if compressed else messages.IMAGE
    count = 0
    with Writer(Path(path), version=9, storage_plugin=plugin) as writer:
        connection = writer.add_connection(topic, msgtype, typestore=store)
        for item in frames:
            stamp, log_time, bgr = item if len(item) == 3 else (item[0], item[0], item[1])
            header = make_header(types, stamp, frame_id)
            if compressed:
                msg = compressed_image_msg(bgr, header, quality=jpeg_quality, types=types)
            else:
                msg = bgr_to_image_msg(bgr, header, encoding, row_padding, types)
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
