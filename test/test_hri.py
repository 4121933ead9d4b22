"""REP-155 (ROS4HRI) body topics of the node (openpose_ros.ros.hri) over DDS with the test model on moving real
photos."""

import cv2
import numpy as np
import pytest

from openpose_ros.keypoints import KEYPOINT_NAMES, SKELETON2D_KEYPOINTS
from openpose_ros.pose import Pose
from test_bag_evaluate import learner, model  # noqa: F401 (fixtures)


# --- slow: the node over DDS ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.ros
def test_node_publishes_rep155_bodies_that_come_and_go(client, tmp_path):
    from hri_msgs.msg import IdsList, NormalizedRegionOfInterest2D, Skeleton2D

    from openpose_ros.msg import Pose2DArray
    from test_pose_estimation import ONE_PERSON, TWO_PEOPLE, NodeProcess, keypoints_of, poses_by_stamp, stamp_of

    node = NodeProcess('-p', 'hri:=true')
    node.wait_active()
    try:
        poses = client.listen(node.poses_topic, Pose2DArray)
        tracked = client.listen('/humans/bodies/tracked', IdsList)
        seen_bodies = []

        def follow(msg):  # a ROS4HRI client subscribes to each body when it appears in `tracked`
            for body in msg.ids:
                if body not in seen_bodies:
                    seen_bodies.append(body)
                    client.listen(f'/humans/bodies/{body}/roi', NormalizedRegionOfInterest2D)
                    client.listen(f'/humans/bodies/{body}/skeleton2d', Skeleton2D)
        client.node.create_subscription(IdsList, '/humans/bodies/tracked', follow, 100)
        client.wait_for_publisher('/humans/bodies/tracked')
        # Two people, then another photo with one person, then the two again.
        sources = [TWO_PEOPLE] * 12 + [ONE_PERSON] * 12 + [TWO_PEOPLE] * 12
        for index, source in enumerate(sources):  # the frames as a folder of links to the photos
            (tmp_path / f'{index:02d}.jpg').symlink_to(source)
        summary = client.publish_frames(node.camera_topic, source=tmp_path, count=len(sources), rate=10.0,
                                        lockstep=node.poses_topic)
        client.spin(1.0)
        sizes = {tuple(stamp): cv2.imread(str(source)).shape[1::-1]
                 for stamp, source in zip(summary['stamps'], sources)}
        by_stamp = poses_by_stamp(poses)
        tracked_by_stamp = {stamp_of(msg): list(msg.ids) for _, msg in tracked}
        assert set(tracked_by_stamp) == set(sizes), 'one tracked list per frame, with the image stamp'

        constants = {name: getattr(Skeleton2D, name) for name in SKELETON2D_KEYPOINTS}
        track_of = {}
        for body in seen_bodies:
            skeletons = client.received[f'/humans/bodies/{body}/skeleton2d']
            rois = {stamp_of(msg): msg for _, msg in client.received[f'/humans/bodies/{body}/roi']}
            if not skeletons:  # a short-lived fragment's track may end before this subscription connects
                continue
            for _, skeleton in skeletons:
                stamp = stamp_of(skeleton)
                width, height = sizes[stamp]
                assert body in tracked_by_stamp[stamp]
                # The pose of that frame whose keypoints, divided by the image size, are this skeleton.
                matches = []
                for pose, points in zip(by_stamp[stamp].poses, keypoints_of(by_stamp[stamp])):
                    expected = np.zeros((18, 2))
                    for constant, name in SKELETON2D_KEYPOINTS.items():
                        point = points[KEYPOINT_NAMES.index(name)]
                        expected[constants[constant]] = point / (width, height) if point[0] >= 0 else 0
                    got = np.array([(p.x, p.y) for p in skeleton.skeleton])
                    if np.allclose(got, expected, atol=1e-6):
                        matches.append(pose)
                assert len(matches) == 1, f'body {body} at {stamp}: {len(matches)} poses match its skeleton'
                pose = matches[0]
                track_of.setdefault(body, set()).add(pose.track_id)
                roi = rois[stamp]
                box = pose.bbox
                assert (roi.xmin, roi.ymin, roi.xmax, roi.ymax) == pytest.approx(
                    (box.x / width, box.y / height, (box.x + box.width) / width, (box.y + box.height) / height),
                    abs=1e-6)
        print(f'\nbodies: {track_of}\ntracked per frame: {[tracked_by_stamp[tuple(s)] for s in summary["stamps"]]}')
        assert all(len(tracks) == 1 for tracks in track_of.values()), f'a body changed track: {track_of}'
        tracks = [next(iter(t)) for t in track_of.values()]
        assert len(set(tracks)) == len(tracks), 'two bodies for one track'
        first = set(tracked_by_stamp[tuple(summary['stamps'][11])])
        last = set(tracked_by_stamp[tuple(summary['stamps'][-1])])
        assert len(first) >= 2 and len(last) >= 2 and not first & last, \
            f'the people of the first photo leave and come back as new bodies: {first} then {last}'
        assert first | last <= set(track_of), 'the people of the photos have skeletons'

        # The bodies that left have no publishers any more; the node holds exactly the live bodies' ones.
        def body_topics():
            client.spin(1.0)
            return sorted(name for name, _ in client.node.get_publisher_names_and_types_by_node(
                'pose_estimation', node.namespace) if name.startswith('/humans/bodies/'))
        assert body_topics() == sorted(['/humans/bodies/tracked'] + [
            f'/humans/bodies/{body}/{leaf}' for body in last for leaf in ('roi', 'skeleton2d')])
        for body in first:
            assert client.node.count_publishers(f'/humans/bodies/{body}/skeleton2d') == 0
        # Deactivating ends every track (the model is unloaded): the bodies end with them.
        assert client.change_state(node.name, 'deactivate')
        assert body_topics() == ['/humans/bodies/tracked']
    finally:
        node.kill()


@pytest.mark.ros
def test_body_frames_from_3d_centres_go_to_tf_under_the_body_ids(client):
    """The seam for 3D from depth: body_<id> frames at given centres, in the image's frame (over DDS, in this
    process). Kept last: its bodies are published in the client's domain."""
    from std_msgs.msg import Header
    from tf2_msgs.msg import TFMessage

    from openpose_ros.ros.hri import HriBodies
    from openpose_ros.ros.pose_estimation import output_qos

    frames = client.listen('/tf', TFMessage)
    bodies = HriBodies(client.node, output_qos(10))
    try:
        poses = [Pose(np.full((18, 2), 50.0 * (track + 1), np.float32), 0.9, id=track) for track in (3, 4)]
        header = Header(frame_id='camera_optical')
        header.stamp.sec = 42
        bodies.publish(poses, header, 640, 480, alive_tracks=[3, 4])
        ids = bodies.body_ids
        centres = {3: (0.5, -0.2, 2.5), 9: (1.0, 1.0, 1.0)}  # track 9 has no body
        bodies.publish_body_frames(centres, header)  # the first call creates the /tf publisher
        client.wait_until(lambda: bodies.tf_subscription_count() > 0, 10, 'the /tf subscription to match')
        bodies.publish_body_frames(centres, header)
        client.wait_until(lambda: frames, 10, 'a /tf message')
        transforms = frames[-1][1].transforms
        assert [t.child_frame_id for t in transforms] == [f'body_{ids[3]}']
        transform = transforms[0]
        assert transform.header.frame_id == 'camera_optical' and transform.header.stamp.sec == 42
        translation, rotation = transform.transform.translation, transform.transform.rotation
        assert (translation.x, translation.y, translation.z) == pytest.approx((0.5, -0.2, 2.5))
        assert (rotation.x, rotation.y, rotation.z, rotation.w) == (0.0, 0.0, 0.0, 1.0)
    finally:
        bodies.close()
