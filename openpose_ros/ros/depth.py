"""The node's depth input: colour, depth and CameraInfo paired by stamp (message_filters), for the worker.

The colour subscription feeds the node's usual 2D path on every image; the synchroniser's matches are kept,
keyed by the colour image's stamp, until the worker asks for the one of the frame it processes (the worker
keeps only the newest frame, so most matches are never asked for and age out of a small store).
"""
import threading
from collections import OrderedDict

MATCH_WAIT = 0.1       # seconds the worker waits for the match of its frame (the depth may arrive a bit later)
KEPT_MATCHES = 8       # matches kept: more than the frames that arrive while one is processed
SYNC_QUEUE = 10        # message_filters queue per topic


class DepthPairing:
    """Subscribes colour ('image'), 'depth/image' and 'depth/camera_info' through message_filters, passes every
    colour image to `on_colour`, and keeps the synchroniser's matches for `match(stamp)`."""

    def __init__(self, node, image_type, colour_topic, qos, slop, on_colour):
        import message_filters
        from sensor_msgs.msg import CameraInfo, Image

        self._node = node
        self._filters = [message_filters.Subscriber(node, image_type, colour_topic, qos_profile=qos),
                         message_filters.Subscriber(node, Image, 'depth/image', qos_profile=qos),
                         message_filters.Subscriber(node, CameraInfo, 'depth/camera_info', qos_profile=qos)]
        self._filters[0].registerCallback(on_colour)
        self._sync = message_filters.ApproximateTimeSynchronizer(self._filters, SYNC_QUEUE, _strict_slop(slop))
        self._sync.registerCallback(self._on_match)
        self._matches = OrderedDict()
        self._arrived = threading.Condition()
        self.colour_topic = self._filters[0].sub.topic_name
        self.depth_topic = self._filters[1].sub.topic_name

    def set_slop(self, slop):
        """Sets the largest stamp difference (seconds) of a colour and a depth image paired; 0 pairs equal stamps
        only."""
        from rclpy.duration import Duration
        self._sync.slop = Duration(seconds=_strict_slop(slop))

    def _on_match(self, colour, depth, info):
        with self._arrived:
            self._matches[_stamp_key(colour.header.stamp)] = (depth, info)
            while len(self._matches) > KEPT_MATCHES:
                self._matches.popitem(last=False)
            self._arrived.notify_all()

    def match(self, stamp, wait=MATCH_WAIT):
        """(depth Image, CameraInfo) paired with the colour image of this stamp, or None after `wait` seconds."""
        key = _stamp_key(stamp)
        with self._arrived:
            self._arrived.wait_for(lambda: key in self._matches, timeout=wait)
            return self._matches.pop(key, None)

    def destroy(self):
        """Destroys the colour, depth and CameraInfo subscriptions."""
        for subscriber in self._filters:
            self._node.destroy_subscription(subscriber.sub)
        self._filters = []


def _strict_slop(slop):
    """The synchroniser matches stamps closer than its slop (strictly): 0, equal stamps, is 1 ns."""
    return max(slop, 1e-9)


def _stamp_key(stamp):
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
