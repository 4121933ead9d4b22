"""Track ids across frames: OKS matching against where each track is predicted to be, with a memory.

The reference matches only against the previous frame, so a person missed for one frame comes back with a new
id. Here a track survives `max_missed` frames without a match, and is predicted forward with its velocity so
that people crossing each other keep their ids.
"""
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from openpose_ros.keypoints import NUM_KEYPOINTS
from openpose_ros.pose import Pose
from openpose_ros.tracking.oks import box_areas, greedy_pairs, keypoint_similarities

Poses = TypeVar('Poses', bound=Sequence[Pose])

EVIDENCE_PRIOR = 2  # shared keypoints at which a match counts half


def similarity(keypoints_a: np.ndarray, keypoints_b: np.ndarray, tolerance: float = 1.0) -> np.ndarray:
    """Object keypoint similarity of every pose in (P, 18, 2) with every pose in (T, 18, 2): a (P, T) matrix.

    The mean over the keypoints both poses have (at least two), weighted by the evidence, n / (n + 2) for n
    shared keypoints: a two-keypoint fragment of a person cannot look more like the person's track than the
    whole person does, while a partly seen person still matches. Scaled by the larger of their boxes;
    `tolerance` widens COCO's per-keypoint sigmas: between frames people move far more than annotators err.
    """
    shared = ((keypoints_a[:, None, :, 0] >= 0) & (keypoints_b[None, :, :, 0] >= 0)).sum(axis=-1)
    areas = np.maximum(np.maximum(box_areas(keypoints_a)[:, None], box_areas(keypoints_b)), 1.0)
    total = keypoint_similarities(keypoints_a, keypoints_b, areas, tolerance).sum(axis=-1)
    return np.where(shared >= 2, total / (shared + EVIDENCE_PRIOR), 0.0)


def _centroid_shifts(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Mean displacement (n, 2) of the keypoints found in both of each pair of poses (n, 18, 2); 0 if none."""
    common = ((old[..., 0] >= 0) & (new[..., 0] >= 0))[..., None]
    return np.where(common, new - old, 0).sum(axis=1) / np.maximum(common.sum(axis=1), 1)


class PoseTracker:
    """Gives each pose of a stream a track id that stays with the same person."""

    def __init__(self, min_similarity: float = 0.3, max_missed: int = 3, tolerance: float = 3.0,
                 velocity_smoothing: float = 0.5) -> None:
        """Poses match a track when their similarity (with `tolerance`) is at least `min_similarity`; a track
        lives `max_missed` frames without a match; `velocity_smoothing` is the weight of a track's previous
        velocity against the one just measured."""
        if not 0.0 < min_similarity <= 1.0:
            raise ValueError(f'min_similarity must be in (0, 1], got {min_similarity}')
        if max_missed < 0 or tolerance <= 0 or not 0 <= velocity_smoothing < 1:
            raise ValueError('max_missed >= 0, tolerance > 0 and velocity_smoothing in [0, 1) are required')
        self.min_similarity = min_similarity
        self.tolerance = tolerance
        self.max_missed = max_missed
        self.velocity_smoothing = velocity_smoothing
        self.reset()

    def reset(self) -> None:
        """Starts a new stream: forgets all tracks; ids start again at 0."""
        # One row per live track: all tracks are predicted, matched and followed in a few array operations.
        self._ids = np.zeros(0, int)
        self._keypoints = np.zeros((0, NUM_KEYPOINTS, 2), np.float32)  # last seen; -1 where never seen
        self._velocity = np.zeros((0, 2), np.float32)  # pixels per second
        self._stamps = np.zeros(0)
        self._missed = np.zeros(0, int)
        self._next_id = 0

    @property
    def active_ids(self) -> list[int]:
        """The ids of the tracks kept now, those missed in up to max_missed frames included."""
        return self._ids.tolist()

    def update(self, poses: Poses, stamp: float) -> Poses:
        """Sets `pose.id` on each pose seen at time `stamp` (seconds); returns `poses`."""
        current = np.stack([pose.data for pose in poses]) if poses else np.zeros((0, NUM_KEYPOINTS, 2), np.float32)
        pose_rows, track_rows = self._best_pairs(current, stamp)
        self._follow(track_rows, current[pose_rows], stamp)
        for pose_row, track_row in zip(pose_rows, track_rows):
            poses[pose_row].id = int(self._ids[track_row])
        unmatched = np.ones(len(self._ids), bool)
        unmatched[track_rows] = False
        self._missed[unmatched] += 1
        self._keep(self._missed <= self.max_missed)
        self._start(poses, np.setdiff1d(np.arange(len(poses)), pose_rows), current, stamp)
        return poses

    def _predicted(self, stamp: float, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
        """Where the tracks `rows` are expected at `stamp`: their seen keypoints moved with their velocity."""
        elapsed = (stamp - self._stamps[rows]).astype(np.float32)
        keypoints = self._keypoints[rows]
        moved = keypoints + self._velocity[rows][:, None, :] * elapsed[:, None, None]
        return np.where(keypoints[..., :1] >= 0, moved, keypoints)

    def _best_pairs(self, current: np.ndarray, stamp: float) -> tuple[np.ndarray, np.ndarray]:
        """Greedy assignment on the similarity matrix, best pair first: (pose rows, track rows)."""
        if not (len(current) and len(self._ids)):
            return np.zeros(0, int), np.zeros(0, int)
        return greedy_pairs(similarity(current, self._predicted(stamp), self.tolerance), self.min_similarity)

    def _follow(self, rows: np.ndarray, seen: np.ndarray, stamp: float) -> None:
        """Tracks `rows` take the keypoints `seen` at `stamp`, and update their velocities."""
        elapsed = stamp - self._stamps[rows]
        moving = elapsed > 0
        measured = _centroid_shifts(self._keypoints[rows], seen) / np.where(moving, elapsed, 1.0)[:, None]
        smoothed = self.velocity_smoothing * self._velocity[rows] + (1 - self.velocity_smoothing) * measured
        self._velocity[rows] = np.where(moving[:, None], smoothed, self._velocity[rows])
        # Keypoints missing now keep their last position, so that a brief occlusion does not break matching.
        self._keypoints[rows] = np.where(seen[..., :1] >= 0, seen, self._predicted(stamp, rows))
        self._stamps[rows] = stamp
        self._missed[rows] = 0

    def _keep(self, rows: np.ndarray) -> None:
        self._ids, self._keypoints, self._velocity, self._stamps, self._missed = (
            values[rows] for values in (self._ids, self._keypoints, self._velocity, self._stamps, self._missed))

    def _start(self, poses: Sequence[Pose], pose_rows: np.ndarray, current: np.ndarray, stamp: float) -> None:
        """New tracks for the poses `pose_rows`, with new ids."""
        ids = np.arange(self._next_id, self._next_id + len(pose_rows))
        for pose_row, track_id in zip(pose_rows, ids):
            poses[pose_row].id = int(track_id)
        self._next_id += len(pose_rows)
        self._ids = np.concatenate([self._ids, ids])
        self._keypoints = np.concatenate([self._keypoints, current[pose_rows]])
        self._velocity = np.concatenate([self._velocity, np.zeros((len(pose_rows), 2), np.float32)])
        self._stamps = np.concatenate([self._stamps, np.full(len(pose_rows), float(stamp))])
        self._missed = np.concatenate([self._missed, np.zeros(len(pose_rows), int)])
