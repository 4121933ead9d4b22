"""The video publisher: its arguments, its frame sources, and a real run publishing a folder of real photos to a
subscriber of this process."""
import cv2
import numpy as np
import pytest

from conftest import MMPOSE_IMAGES, VIDEO
from openpose_ros.ros.video_publisher import FrameSource, build_parser, is_bag


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
def test_a_folder_of_photos_is_published_to_a_subscriber_with_the_summary_s_stamps(client):
    from sensor_msgs.msg import Image

    arrivals = client.listen('/test_camera', Image)
    summary = client.publish_frames('/test_camera', source=MMPOSE_IMAGES, count=5, rate=20.0, motion=0.0,
                                    extra=('--wait', '20'), timeout=60)
    client.wait_until(lambda: len(arrivals) >= 5, 1.0, 'the five frames')
    received = [msg for _, msg in arrivals]
    assert summary['published'] == 5 and summary['topic'] == '/test_camera' and len(summary['stamps']) == 5
    assert [[msg.header.stamp.sec, msg.header.stamp.nanosec] for msg in received] == summary['stamps']
    photos = [cv2.imread(str(path)) for path in sorted(MMPOSE_IMAGES.glob('*.jpg'))]
    for index, msg in enumerate(received):
        photo = photos[index % 4]
        assert (msg.height, msg.width, msg.encoding) == (*photo.shape[:2], 'bgr8')
        assert np.array_equal(np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
                              [:, :msg.width * 3].reshape(photo.shape), photo)
