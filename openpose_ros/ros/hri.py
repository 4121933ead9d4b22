"""REP-155 (ROS4HRI) body topics of the pose estimation node (parameter `hri`).

/humans/bodies/tracked (hri_msgs/IdsList) lists the bodies whose track the tracker keeps; per body,
/humans/bodies/<id>/roi (NormalizedRegionOfInterest2D) and /humans/bodies/<id>/skeleton2d (Skeleton2D) carry
its pose in the frames where it is seen, normalised by the image size, with the image's header. A body's
publishers are created when it appears and destroyed when its track ends, so a long run does not pile them up.
The `body_<id>` TF frames need 3D body centres (from depth): publish_body_frames takes them.
"""
from geometry_msgs.msg import Transform, TransformStamped, Vector3
from hri_msgs.msg import IdsList, NormalizedRegionOfInterest2D, Skeleton2D
from tf2_msgs.msg import TFMessage

from openpose_ros.messages.bodies import (TRACKED_TOPIC, BodyIds, body_frame, body_topic, ids_list_msg, roi_msg,
                                          skeleton2d_msg)


def body_transform(body_id, centre, header):
    """TransformStamped of the frame body_<id> at `centre` (x, y, z) in header.frame_id, not rotated."""
    x, y, z = (float(value) for value in centre)
    return TransformStamped(header=header, child_frame_id=body_frame(body_id),
                            transform=Transform(translation=Vector3(x=x, y=y, z=z)))


class HriBodies:
    """The REP-155 publishers of one node. Not thread-safe: the node calls it under its output lock."""

    def __init__(self, node, qos):
        self._node = node
        self._qos = qos
        self._ids = BodyIds()
        self._tracked = node.create_publisher(IdsList, TRACKED_TOPIC, qos)
        self._publishers = {}  # body id -> (roi publisher, skeleton2d publisher)
        self._tf = None        # /tf, created with the first body frames

    @property
    def body_ids(self) -> dict:
        """Track id -> body id of the bodies alive now."""
        return dict(self._ids.bodies)

    def tf_subscription_count(self) -> int:
        """Subscribers of the body frames on /tf (0 before the first body frames)."""
        return self._tf.get_subscription_count() if self._tf is not None else 0

    def publish(self, poses, header, width, height, alive_tracks):
        """Publishes the frame's bodies: `poses` are the published poses, `alive_tracks` the tracker's ids."""
        changes, bodies = self._ids.assign(poses, alive_tracks)
        for body_id in changes.ended.values():
            self._destroy(body_id)
        for body_id in changes.started.values():
            self._publishers[body_id] = tuple(self._node.create_publisher(kind, body_topic(body_id, leaf), self._qos)
                                              for kind, leaf in ((NormalizedRegionOfInterest2D, 'roi'),
                                                                 (Skeleton2D, 'skeleton2d')))
        for body_id, pose in bodies:
            roi, skeleton = self._publishers[body_id]
            roi.publish(roi_msg(pose, header, width, height))
            skeleton.publish(skeleton2d_msg(pose, header, width, height))
        self._tracked.publish(ids_list_msg(sorted(self._ids.bodies.values()), header))

    def publish_body_frames(self, centres, header):
        """The REP-155 `body_<id>` TF frames on /tf, for the 3D-from-depth path (2D alone gives no position):
        `centres` {track id: (x, y, z)} in metres in header.frame_id (the camera's); tracks without a body are
        skipped. Position only: the rotation is the camera frame's."""
        if self._tf is None:
            self._tf = self._node.create_publisher(TFMessage, '/tf', 100)
        transforms = [body_transform(self._ids.bodies[track], centre, header)
                      for track, centre in centres.items() if track in self._ids.bodies]
        if transforms:
            self._tf.publish(TFMessage(transforms=transforms))

    def end_all(self):
        """Ends every body (the tracker restarts: deactivation, or the image time went back)."""
        for body_id in self._ids.clear().values():
            self._destroy(body_id)

    def close(self):
        """Ends every body (destroying its publishers) and destroys the node's /humans/bodies/tracked and /tf
        publishers."""
        self.end_all()
        for publisher in (self._tracked, self._tf):
            if publisher is not None:
                self._node.destroy_publisher(publisher)

    def _destroy(self, body_id):
        for publisher in self._publishers.pop(body_id, ()):
            self._node.destroy_publisher(publisher)
