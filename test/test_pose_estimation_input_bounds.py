"""pose_estimation_node given frames that used to cost gigabytes or give poses of a grey half-image: a 1x200
mono8 strip, a JPEG declaring 20000x20000 pixels, a JPEG cut in half with an end marker appended. The real node
process rejects each (counted in /diagnostics, warned about with the cause), stays small, and processes the next
good frame."""
import time

import cv2
import numpy as np
import pytest

from test_pose_estimation import (ONE_PERSON, Client, NodeProcess, compressed_node, image_msg,  # noqa: F401
                                  poses_by_stamp, raw_node, stamp_of)
from test_image_input_bounds import with_declared_size

pytestmark = [pytest.mark.slow, pytest.mark.ros]
RSS_GROWTH_LIMIT_MIB = 300  # the strip alone took 2.5 GB before it was bounded


def _send_bad_then_good(client, node, topic, bad, good, words):
    """Publishes `bad`, then `good`; waits for the poses of `good` and the node's warning with `words`."""
    from openpose_ros.msg import Pose2DArray

    poses = client.listen(node.poses_topic, Pose2DArray)
    client.wait_for_publisher(node.poses_topic)
    before = int(client.diagnostics(node.name)['frames_rejected'])
    rss_before = node.rss_mib()
    client.publish(topic, bad)
    client.spin(0.3)  # the idle worker takes the bad frame at once
    client.publish(topic, good)
    client.wait_until(lambda: stamp_of(good) in poses_by_stamp(poses), 30, f'poses of the good frame after {words!r}')
    assert len(poses_by_stamp(poses)[stamp_of(good)].poses) >= 1
    node.wait_for_line(words, timeout=5)
    status = client.diagnostics(node.name, after=time.time(),
                                condition=lambda s: int(s['frames_rejected']) >= before + 1)
    assert int(status['frames_rejected']) == before + 1 and words in status['last_rejection']
    assert node.process.poll() is None
    assert node.rss_mib() - rss_before < RSS_GROWTH_LIMIT_MIB


def test_a_one_pixel_high_mono8_strip_is_rejected_and_the_next_frame_processed(client, raw_node):
    photo = cv2.imread(str(ONE_PERSON))
    strip = image_msg(np.full((1, 200, 3), 100, np.uint8), encoding='mono8')
    assert (strip.height, strip.width, len(strip.data)) == (1, 200, 200)
    _send_bad_then_good(client, raw_node, raw_node.camera_topic, strip, image_msg(photo), 'aspect ratio too large')


def test_max_aspect_ratio_changes_at_run_time(client, raw_node):
    from openpose_ros.msg import Pose2DArray

    poses = client.listen(raw_node.poses_topic, Pose2DArray)
    wide = image_msg(cv2.resize(cv2.imread(str(ONE_PERSON)), (400, 20)))  # 20:1
    assert client.set_parameters(raw_node.name, max_aspect_ratio=50.0)['max_aspect_ratio'][0] is False
    assert client.set_parameters(raw_node.name, max_aspect_ratio=25.0) == {'max_aspect_ratio': (True, '')}
    try:
        client.publish(raw_node.camera_topic, wide)
        client.wait_until(lambda: stamp_of(wide) in poses_by_stamp(poses), 30, 'poses of the 20:1 frame')
    finally:
        client.set_parameters(raw_node.name, max_aspect_ratio=10.0)


@pytest.mark.parametrize('make, words', [
    (lambda jpeg: with_declared_size(cv2.imencode('.jpg', np.full((16, 16, 3), 90, np.uint8))[1].tobytes(),
                                     20000, 20000), 'is too large (20000x20000)'),
    (lambda jpeg: jpeg[:len(jpeg) // 2] + b'\xff\xd9', 'truncated JPEG: its image data ends before the last block'),
])
def test_huge_and_cut_jpegs_are_rejected_before_decoding_and_the_next_frame_processed(
        client, compressed_node, make, words):
    from sensor_msgs.msg import CompressedImage

    jpeg = ONE_PERSON.read_bytes()
    header = image_msg(cv2.imread(str(ONE_PERSON))).header
    bad = CompressedImage(format='jpeg', data=make(jpeg), header=header)
    good = CompressedImage(format='jpeg', data=jpeg, header=image_msg(cv2.imread(str(ONE_PERSON))).header)
    _send_bad_then_good(client, compressed_node, compressed_node.camera_topic + '/compressed', bad, good, words)
