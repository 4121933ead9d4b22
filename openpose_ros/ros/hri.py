"""REP-155 (ROS4HRI) body topics of the pose estimation node (parameter `hri`).

/humans/bodies/tracked (hri_msgs/IdsList) lists the bodies whose track the tracker keeps; per body,
/humans/bodies/<id>/roi (NormalizedRegionOfInterest2D) and /humans/bodies/<id>/skeleton2d (Skeleton2D) carry
its pose in the frames where it is seen, normalised by the image size, with the image's header. A body's
publishers are created when it appears and destroyed when its track ends, so a long run does not pile them up.
"""
from hri_msgs.msg import IdsList, NormalizedPointOfInterest2D, NormalizedRegionOfInterest2D, Skeleton2D

from openpose_ros.bodies import (TRACKED_TOPIC, BodyIds, body_topic, normalized_roi, normalized_skeleton,
                                 skeleton2d_order)
from openpose_ros.keypoints import SKELETON2D_KEYPOINTS

SKELETON2D_ORDER = skeleton2d_order({name: getattr(Skeleton2D, name) for name in SKELETON2D_KEYPOINTS})


def roi_msg(pose, header, width, height):
    xmin, ymin, xmax, ymax, confidence = normalized_roi(pose, width, height)
    return NormalizedRegionOfInterest2D(header=header, xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, c=confidence)


def skeleton2d_msg(pose, header, width, height):
    rows = normalized_skeleton(pose, width, height, SKELETON2D_ORDER)
    return Skeleton2D(header=header, skeleton=[NormalizedPointOfInterest2D(x=float(x), y=float(y), c=float(c))
                                               for x, y, c in rows])


class HriBodies:
    """The REP-155 publishers of one node. Not thread-safe: the node calls it under its output lock."""

    def __init__(self, node, qos):
        self._node = node
        self._qos = qos
        self._ids = BodyIds()
        self._tracked = node.create_publisher(IdsList, TRACKED_TOPIC, qos)
        self._publishers = {}  # body id -> (roi publisher, skeleton2d publisher)

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
        self._tracked.publish(IdsList(header=header, ids=sorted(self._ids.bodies.values())))

    def publish_body_frames(self, centres, header):
        """The REP-155 `body_<id>` TF frames from 3D body centres ({track id: (x, y, z)} in the camera frame).
        Not done yet: it needs 3D from depth; 2D alone gives no position."""
        raise NotImplementedError('body_<id> frames need 3D body centres (from depth)')

    def end_all(self):
        """Ends every body (the tracker restarts: deactivation, or the image time went back)."""
        for body_id in self._ids.clear().values():
            self._destroy(body_id)

    def close(self):
        self.end_all()
        self._node.destroy_publisher(self._tracked)

    def _destroy(self, body_id):
        for publisher in self._publishers.pop(body_id, ()):
            self._node.destroy_publisher(publisher)
