"""The video publisher: its arguments, its frame sources, and a real run publishing a folder of real photos to a
subscriber of this process."""
import json
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import MMPOSE_IMAGES, ROOT, VIDEO
from openpose_ros.ros.video_publisher import FrameSource, build_parser, is_bag
from ros_helpers import pick_domain_id, require_ros, ros_env

DOMAIN_ID = pick_domain_id()


def test_the_parser_defaults_to_a_reliable_bgr8_camera_on_image():
    args = build_parser().parse_args(['photo.jpg'])
    assert (args.source, args.topic, args.encoding, args.reliability) == (['photo.jpg'], 'image', 'bgr8', 'reliable')
    assert (args.rate, args.count, args.wait, args.compressed, args.lockstep) == (None, None, 30.0, None, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(['photo.jpg', '--compressed', 'gif'])


def test_a_folder_of_photos_repeats_up_to_count_and_moves_with_motion():
    photos = [cv2.imread(str(path)) for path in sorted(MMPOSE_IMAGES.glob('*.jpg'))]
    source = FrameSource([MMPOSE_IMAGES])
    assert source.length == len(photos) == 4 and source.fps == 0.0
    frames = list(source.frames(6))
    assert [index for index, _ in frames] == list(range(6))
    assert all(np.array_equal(frame, photos[index % 4]) for index, frame in frames)
    moved = dict(FrameSource([MMPOSE_IMAGES], motion=20.0).frames(2))
    assert moved[1].shape == photos[1].shape and not np.array_equal(moved[1], photos[1])


def test_a_video_source_has_its_rate_and_a_missing_one_is_refused(tmp_path):
    source = FrameSource([VIDEO], start=5)
    assert source.fps > 0 and source.length > 5
    assert [frame.shape for _, frame in source.frames(2)] == [(576, 768, 3)] * 2
    with pytest.raises(FileNotFoundError):
        FrameSource([tmp_path / 'missing.avi'])
    assert not is_bag(tmp_path) and not is_bag(VIDEO)
    (tmp_path / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}')
    assert is_bag(tmp_path)


@pytest.mark.ros
def test_a_folder_of_photos_is_published_to_a_subscriber_with_the_summary_s_stamps():
    require_ros()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        node = rclpy.create_node('video_publisher_test', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        received = []
        node.create_subscription(Image, 'test_camera', received.append, 10)
        command = [sys.executable, '-m', 'openpose_ros.ros.video_publisher', str(MMPOSE_IMAGES), '--topic',
                   '/test_camera', '--count', '5', '--rate', '20', '--wait', '20', '--quiet']
        publisher = subprocess.Popen(command, cwd=ROOT, env=ros_env(DOMAIN_ID), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while publisher.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.02)
        end = time.monotonic() + 1.0
        while len(received) < 5 and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.02)
        if publisher.poll() is None:
            publisher.kill()
        out, err = publisher.communicate()
        assert publisher.returncode == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    assert summary['published'] == 5 and summary['topic'] == '/test_camera' and len(summary['stamps']) == 5
    assert [[msg.header.stamp.sec, msg.header.stamp.nanosec] for msg in received] == summary['stamps']
    photos = [cv2.imread(str(path)) for path in sorted(MMPOSE_IMAGES.glob('*.jpg'))]
    for index, msg in enumerate(received):
        photo = photos[index % 4]
        assert (msg.height, msg.width, msg.encoding) == (*photo.shape[:2], 'bgr8')
        assert np.array_equal(np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
                              [:, :msg.width * 3].reshape(photo.shape), photo)
