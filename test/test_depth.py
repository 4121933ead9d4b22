"""The node's depth input: colour, depth and CameraInfo published over DDS, paired by stamp for the worker."""
import threading

import pytest

from openpose_ros.ros.depth import DepthPairing
from ros_helpers import pick_domain_id, require_ros

pytestmark = pytest.mark.ros
DOMAIN_ID = pick_domain_id()


@pytest.fixture
def pairing():
    """(DepthPairing on a node spun in a thread, the colour images it passed on, publish(topic, sec, nanosec))."""
    require_ros()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = rclpy.create_node('depth_pairing_test', context=context)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    colours = []
    depth = DepthPairing(node, Image, 'image', qos, 0.02, colours.append)
    publishers = {'image': node.create_publisher(Image, 'image', qos),
                  'depth/image': node.create_publisher(Image, 'depth/image', qos),
                  'depth/camera_info': node.create_publisher(CameraInfo, 'depth/camera_info', qos)}

    def publish(topic, sec, nanosec):
        msg = (CameraInfo if topic.endswith('info') else Image)()
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        msg.header.frame_id = topic
        publishers[topic].publish(msg)

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinning = threading.Thread(target=executor.spin, daemon=True)
    spinning.start()
    yield depth, colours, publish
    executor.shutdown()
    spinning.join(timeout=5)
    depth.destroy()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def test_a_colour_image_is_paired_with_the_depth_and_camera_info_of_its_stamp(pairing):
    depth, colours, publish = pairing
    assert (depth.colour_topic, depth.depth_topic) == ('/image', '/depth/image')
    for topic in ('image', 'depth/image', 'depth/camera_info'):
        publish(topic, 10, 0)
    for topic, nanosec in (('image', 500_000_000), ('depth/image', 510_000_000), ('depth/camera_info', 510_000_000)):
        publish(topic, 10, nanosec)  # depth 10 ms after the colour: within the 20 ms slop
    stamp = type('Stamp', (), {'sec': 10, 'nanosec': 500_000_000})
    match = depth.match(stamp, wait=10.0)
    assert match is not None
    depth_image, info = match
    assert (depth_image.header.frame_id, info.header.frame_id) == ('depth/image', 'depth/camera_info')
    assert depth_image.header.stamp.nanosec == 510_000_000
    assert depth.match(stamp, wait=0.1) is None, 'a match is handed out once'
    assert [msg.header.stamp.nanosec for msg in colours] == [0, 500_000_000], 'every colour image goes on'


def test_a_colour_image_without_depth_has_no_match_and_a_smaller_slop_pairs_fewer(pairing):
    depth, colours, publish = pairing
    depth.set_slop(0.0)
    publish('image', 20, 0)
    for topic in ('depth/image', 'depth/camera_info'):
        publish(topic, 20, 10_000_000)  # 10 ms apart: equal stamps only now
    stamp = type('Stamp', (), {'sec': 20, 'nanosec': 0})
    assert depth.match(stamp, wait=1.0) is None
    for topic in ('image', 'depth/image', 'depth/camera_info'):
        publish(topic, 20, 500_000_000)
    assert depth.match(type('Stamp', (), {'sec': 20, 'nanosec': 500_000_000}), wait=10.0) is not None
    assert len(colours) == 2
