"""REP-155 (ROS4HRI) bodies without rclpy: body ids that follow track ids, the normalised region of interest
and 2D skeleton of a pose, and their hri_msgs messages (IdsList, NormalizedRegionOfInterest2D, Skeleton2D).

The node (openpose_ros.ros.hri) and the bag tools build their messages with these, from a message provider
(openpose_ros.messages.types): rclpy's classes for the node, a bag typestore's for bags.
"""
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

import numpy as np

from openpose_ros.keypoints import KEYPOINT_NAMES, SKELETON2D_KEYPOINTS
from openpose_ros.messages.types import RCLPY_TYPES
from openpose_ros.messages.typestore import HRI_PACKAGE, IDS_LIST, ROI, SKELETON2D

TOPIC_PREFIX = '/humans/bodies'
TRACKED_TOPIC = f'{TOPIC_PREFIX}/tracked'
BODY_TOPICS = ('roi', 'skeleton2d')
ID_LETTERS = 'abcdefghijklmnopqrstuvwxyz'
ID_LENGTH = 5
ID_SPACE = len(ID_LETTERS) ** ID_LENGTH
# Coprime with ID_SPACE (odd, not a multiple of 13): counter -> salt + counter * stride (mod ID_SPACE) is a
# bijection, so the first ID_SPACE (11.9 million) bodies of a run all get different ids, with no set of used ids.
_ID_STRIDE = 7_368_787


def body_topic(body_id: str, leaf: str) -> str:
    """/humans/bodies/<id>/<leaf> (leaf: one of BODY_TOPICS)."""
    return f'{TOPIC_PREFIX}/{body_id}/{leaf}'


def body_frame(body_id: str) -> str:
    """The REP-155 TF frame of a body: body_<id>."""
    return f'body_{body_id}'


def skeleton2d_order(constants: Mapping[str, int]) -> tuple:
    """For each Skeleton2D slot (0..17), the index of the OpenPose keypoint that fills it, matched by name through
    keypoints.SKELETON2D_KEYPOINTS; `constants` are Skeleton2D's keypoint constants ({'NOSE': 0, ...})."""
    order = [None] * len(SKELETON2D_KEYPOINTS)
    for constant, name in SKELETON2D_KEYPOINTS.items():
        order[constants[constant]] = KEYPOINT_NAMES.index(name)
    if None in order:
        raise ValueError(f'Skeleton2D constants do not number 0..{len(order) - 1}: {dict(constants)}')
    return tuple(order)


def normalized_skeleton(pose, width: int, height: int, order: tuple) -> np.ndarray:
    """(18, 3) x / width, y / height, score of the pose's keypoints in Skeleton2D order (`order` from
    skeleton2d_order); a missing keypoint is (0, 0, 0)."""
    points = np.asarray(pose.data, np.float64)[list(order)] / (width, height)
    scores = np.clip(np.asarray(pose.keypoint_scores, np.float64)[list(order)], 0.0, 1.0)
    found = np.asarray(pose.found, bool)[list(order)]
    rows = np.column_stack([np.clip(points, 0.0, 1.0), scores])
    return np.where(found[:, None], rows, 0.0)


def normalized_roi(pose, width: int, height: int) -> tuple:
    """(xmin, ymin, xmax, ymax, c) of the pose's box (openpose_ros.pose.get_bbox) divided by the image size,
    c the pose confidence."""
    x, y, box_width, box_height = pose.bbox
    corners = np.clip(np.array([x / width, y / height, (x + box_width) / width, (y + box_height) / height]), 0, 1)
    return (*(float(value) for value in corners), float(np.clip(pose.confidence, 0.0, 1.0)))


def ids_list_msg(ids, header, types=RCLPY_TYPES):
    """Body ids -> hri_msgs/IdsList, of `types` (rclpy's classes by default, a bag typestore's with StoreTypes)."""
    return types[IDS_LIST](header=header, ids=list(ids))


def roi_msg(pose, header, width: int, height: int, types=RCLPY_TYPES):
    """A pose's box normalised by the image size -> hri_msgs/NormalizedRegionOfInterest2D, of `types`."""
    xmin, ymin, xmax, ymax, confidence = normalized_roi(pose, width, height)
    return types[ROI](header=header, xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, c=confidence)


def skeleton2d_msg(pose, header, width: int, height: int, types=RCLPY_TYPES):
    """A pose normalised by the image size -> hri_msgs/Skeleton2D, keypoints placed by name, of `types`."""
    Skeleton2D, Point = types[SKELETON2D], types[f'{HRI_PACKAGE}/msg/NormalizedPointOfInterest2D']
    rows = normalized_skeleton(pose, width, height, _skeleton2d_order(Skeleton2D))
    return Skeleton2D(header=header, skeleton=[Point(x=float(x), y=float(y), c=float(c)) for x, y, c in rows])


@lru_cache(maxsize=None)
def _skeleton2d_order(skeleton2d_class) -> tuple:
    return skeleton2d_order({name: getattr(skeleton2d_class, name) for name in SKELETON2D_KEYPOINTS})


@dataclass
class FrameBodies:
    """One frame's REP-155 output: the tracked body ids, the (body id, pose) pairs seen, the image size."""
    ids: list
    seen: list
    width: int
    height: int


@dataclass
class BodyChanges:
    """What one frame changed: bodies that appeared and ended, {track id: body id}."""
    started: dict = field(default_factory=dict)
    ended: dict = field(default_factory=dict)


class BodyIds:
    """REP-155 body ids (5 lowercase letters) for track ids: a body id stays with its track while the tracker
    keeps it, and is never given again in this object's life (a per-run random salt and a counter), even when
    the tracker gives the same track number again (after a reset)."""

    def __init__(self, salt: int = None):
        self._salt = secrets.randbelow(ID_SPACE) if salt is None else salt % ID_SPACE
        self._count = 0
        self.bodies = {}  # live track id -> body id

    def _new_id(self):
        number = (self._salt + self._count * _ID_STRIDE) % ID_SPACE
        self._count += 1
        letters = []
        for _ in range(ID_LENGTH):
            number, letter = divmod(number, len(ID_LETTERS))
            letters.append(ID_LETTERS[letter])
        return ''.join(letters)

    def update(self, seen, alive) -> BodyChanges:
        """`seen`: the track ids published in this frame (-1, untracked, is ignored); `alive`: the ids the tracker
        still keeps. A seen track without a body gets one; a body whose track is no longer alive ends."""
        alive = set(alive)
        changes = BodyChanges()
        for track in list(self.bodies):
            if track not in alive:
                changes.ended[track] = self.bodies.pop(track)
        for track in seen:
            if track >= 0 and track not in self.bodies:
                self.bodies[track] = changes.started[track] = self._new_id()
        return changes

    def assign(self, poses, alive) -> tuple:
        """update() with the track ids of `poses`; returns (BodyChanges, [(body id, pose)] of the poses that are
        bodies)."""
        changes = self.update([pose.id for pose in poses], alive)
        return changes, [(self.bodies[pose.id], pose) for pose in poses if pose.id in self.bodies]

    def clear(self) -> dict:
        """Ends every body (the tracker restarts its numbering); returns them, {track id: body id}."""
        ended, self.bodies = self.bodies, {}
        return ended
