"""pose_estimation_node with use_depth: colour, an aligned depth image and its CameraInfo over DDS from this
process, poses_3d and skeleton_markers out of a real node process (the test model, a photo it learnt)."""
import time

import cv2
import numpy as np
import pytest

from test_pose_estimation import TWO_PEOPLE, NodeProcess, image_msg, poses_by_stamp, stamp_of

DEPTH_FRAME = 'camera_depth_optical_frame'
DISTANCE = 2.5   # metres: the whole depth image, which has half the colour image's resolution

pytestmark = [pytest.mark.slow, pytest.mark.ros]


@pytest.fixture(scope='module')
def depth_node(client):
    """The node with use_depth, its depth topics left at <namespace>/depth/image and depth/camera_info."""
    node = NodeProcess('-p', 'use_depth:=true', '-p', 'depth_slop:=0.0')
    node.wait_active()
    yield node
    node.kill()


@pytest.fixture(scope='module')
def photo():
    image = cv2.imread(str(TWO_PEOPLE))
    assert image is not None
    return image


def depth_messages(photo, stamp):
    """A 32FC1 depth image at DISTANCE and its CameraInfo (pinhole, no distortion), both at half resolution."""
    from sensor_msgs.msg import CameraInfo, Image

    height, width = photo.shape[0] // 2, photo.shape[1] // 2
    header = image_msg(photo[:1, :1], stamp).header
    header.frame_id = DEPTH_FRAME
    depth = Image(header=header, height=height, width=width, encoding='32FC1', is_bigendian=0, step=width * 4)
    depth.data = np.full((height, width), DISTANCE, np.float32).tobytes()
    info = CameraInfo(header=header, height=height, width=width, distortion_model='plumb_bob')
    info.k = [300.0, 0.0, width / 2 - 0.5, 0.0, 300.0, height / 2 - 0.5, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    return depth, info


def publish_frame(client, node, photo, colour_stamp, depth_stamp):
    depth, info = depth_messages(photo, depth_stamp)
    client.publish(f'{node.namespace}/depth/image', depth)
    client.publish(f'{node.namespace}/depth/camera_info', info)
    client.spin(0.1)
    colour = image_msg(photo, colour_stamp)
    client.publish(node.camera_topic, colour)
    return colour


def test_matching_stamps_give_poses_3d_in_the_depth_frame_and_markers_with_a_lifetime(client, depth_node, photo):
    from openpose_ros.msg import Pose2DArray, Pose3DArray
    from visualization_msgs.msg import MarkerArray

    poses_3d = client.listen(f'{depth_node.namespace}/poses_3d', Pose3DArray)
    poses_2d = client.listen(depth_node.poses_topic, Pose2DArray)
    markers = client.listen(f'{depth_node.namespace}/skeleton_markers', MarkerArray)
    client.wait_for_publisher(f'{depth_node.namespace}/poses_3d')
    client.wait_for_publisher(depth_node.poses_topic)
    now = round(time.time(), 3)
    stamp = stamp_of(publish_frame(client, depth_node, photo, now, now))
    client.wait_until(lambda: stamp in poses_by_stamp(poses_3d), 30, 'poses_3d of the frame')
    msg = poses_by_stamp(poses_3d)[stamp]
    assert msg.header.frame_id == DEPTH_FRAME
    client.wait_until(lambda: stamp in poses_by_stamp(poses_2d), 10, 'the 2D poses of the frame')  # still flow
    assert len(msg.poses) == len(poses_by_stamp(poses_2d)[stamp].poses) >= 1
    valid = [k for pose in msg.poses for k in pose.keypoints if k.valid]
    assert len(valid) >= 10
    assert all(k.position.z == pytest.approx(DISTANCE, abs=1e-3) for k in valid)
    client.wait_until(lambda: any(m.markers for _, m in markers), 10, 'skeleton markers')
    shown = [m for _, array in markers for m in array.markers]
    assert all(m.header.frame_id == DEPTH_FRAME and (m.lifetime.sec, m.lifetime.nanosec) > (0, 0) for m in shown)
    spheres = [m for m in shown if m.type == m.SPHERE_LIST]
    assert sum(len(m.points) for m in spheres) == len(valid)


def test_depth_that_matches_no_colour_frame_gives_no_3d_poses_and_is_counted(client, depth_node, photo):
    from openpose_ros.msg import Pose2DArray, Pose3DArray

    poses_3d = client.listen(f'{depth_node.namespace}/poses_3d', Pose3DArray)
    poses_2d = client.listen(depth_node.poses_topic, Pose2DArray)
    client.wait_for_publisher(f'{depth_node.namespace}/poses_3d')
    before = int(client.diagnostics(depth_node.name)['frames_without_depth'])
    stamps = []
    for _ in range(3):
        now = round(time.time(), 3)
        stamps.append(stamp_of(publish_frame(client, depth_node, photo, now, now - 0.5)))   # depth 0.5 s older
        client.wait_until(lambda: stamps[-1] in poses_by_stamp(poses_2d), 30, 'the 2D poses of the frame')
    client.spin(0.5)
    assert not set(stamps) & set(poses_by_stamp(poses_3d))
    status = client.diagnostics(depth_node.name, after=time.time(),
                                condition=lambda s: int(s['frames_without_depth']) >= before + 3)
    assert int(status['frames_without_depth']) == before + 3
    # A slop that covers the difference, set at run time, pairs the same kind of frame.
    assert client.set_parameters(depth_node.name, depth_slop=0.6) == {'depth_slop': (True, '')}
    client.spin(1.5)             # the colour frames still queued above are now too old to pair with its depth
    now = round(time.time(), 3)
    stamp = stamp_of(publish_frame(client, depth_node, photo, now, now - 0.5))
    client.wait_until(lambda: stamp in poses_by_stamp(poses_3d), 30, 'poses_3d with depth_slop 0.6')
    assert client.set_parameters(depth_node.name, depth_slop=0.0) == {'depth_slop': (True, '')}


def test_depth_pairing_comes_back_after_deactivate_and_activate(client, depth_node, photo):
    from openpose_ros.msg import Pose3DArray

    poses_3d = client.listen(f'{depth_node.namespace}/poses_3d', Pose3DArray)
    assert client.change_state(depth_node.name, 'deactivate')
    client.spin(0.5)
    assert client.node.count_subscribers(f'{depth_node.namespace}/depth/image') == 0     # unsubscribed
    assert client.change_state(depth_node.name, 'activate')
    client.wait_for_publisher(f'{depth_node.namespace}/poses_3d')
    client.wait_for_publisher(depth_node.poses_topic)
    now = round(time.time(), 3)
    stamp = stamp_of(publish_frame(client, depth_node, photo, now, now))
    client.wait_until(lambda: stamp in poses_by_stamp(poses_3d), 30, 'poses_3d after activate')


def test_with_hri_each_tracked_body_gets_a_tf_frame_at_its_3d_centre_with_the_image_stamp(client, photo):
    """REP-155 with depth: a body_<id> transform on /tf per body, in the depth camera's frame, on the image's stamp,
    at the body's 3D centre (every depth pixel is at DISTANCE, so the centre is too)."""
    from hri_msgs.msg import IdsList
    from tf2_msgs.msg import TFMessage

    node = NodeProcess('-p', 'use_depth:=true', '-p', 'depth_slop:=0.0', '-p', 'hri:=true')
    node.wait_active()
    try:
        frames = client.listen('/tf', TFMessage)
        tracked = client.listen('/humans/bodies/tracked', IdsList)
        client.wait_for_publisher('/humans/bodies/tracked')
        now = round(time.time(), 3)
        stamp = stamp_of(publish_frame(client, node, photo, now, now))
        client.wait_until(lambda: any(stamp_of(m.transforms[0]) == stamp for _, m in frames if m.transforms), 30,
                          'body frames on /tf')
        transforms = [t for _, m in frames for t in m.transforms if stamp_of(t) == stamp]
        ids = {body for _, m in tracked if stamp_of(m) == stamp for body in m.ids}
        assert transforms and {t.child_frame_id for t in transforms} <= {f'body_{body}' for body in ids}
        assert all(t.header.frame_id == DEPTH_FRAME for t in transforms)
        assert all(t.transform.translation.z == pytest.approx(DISTANCE, abs=1e-3) for t in transforms)
    finally:
        code, log = node.interrupt()
    assert code == 0, log
