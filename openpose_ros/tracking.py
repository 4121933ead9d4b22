"""Track ids across frames: OKS matching against where each track is predicted to be, with a memory.

The reference matches only against the previous frame, so a person missed for one frame comes back with a new
id. Here a track survives `max_missed` frames without a match, and is predicted forward with its velocity so
that people crossing each other keep their ids.
"""
from dataclasses import dataclass, field

import numpy as np

from openpose_ros.keypoints import SIGMAS

EVIDENCE_PRIOR = 2  # shared keypoints at which a match counts half


@dataclass
class _Track:
    id: int
    keypoints: np.ndarray    # (18, 2), -1 where missing
    stamp: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # pixels per second
    missed: int = 0

    def predicted(self, stamp):
        found = self.keypoints[:, 0] >= 0
        moved = self.keypoints.copy()
        moved[found] += self.velocity * (stamp - self.stamp)
        return moved


def similarity(keypoints_a, keypoints_b, tolerance=1.0):
    """Object keypoint similarity of every pose in (P, 18, 2) with every pose in (T, 18, 2): a (P, T) matrix.

    The mean over the keypoints both poses have (at least two), weighted by the evidence, n / (n + 2) for n
    shared keypoints: a two-keypoint fragment of a person cannot look more like the person's track than the
    whole person does, while a partly seen person still matches. Scaled by the larger of their boxes;
    `tolerance` widens COCO's per-keypoint sigmas: between frames people move far more than annotators err.
    """
    found_a, found_b = keypoints_a[..., 0] >= 0, keypoints_b[..., 0] >= 0
    common = found_a[:, None, :] & found_b[None, :, :]
    area = np.maximum(np.maximum(_box_areas(keypoints_a, found_a)[:, None], _box_areas(keypoints_b, found_b)), 1.0)
    distance2 = ((keypoints_a[:, None] - keypoints_b[None, :]) ** 2).sum(axis=-1)
    variances = (2 * tolerance * SIGMAS) ** 2
    oks = np.exp(-distance2 / (2 * area[..., None] * variances)) * common
    shared = common.sum(axis=-1)
    return np.where(shared >= 2, oks.sum(axis=-1) / (shared + EVIDENCE_PRIOR), 0.0)


def _box_areas(keypoints, found):
    """Area of the box around each pose's found keypoints (0 with fewer than two)."""
    low = np.where(found[..., None], keypoints, np.inf).min(axis=1)
    high = np.where(found[..., None], keypoints, -np.inf).max(axis=1)
    extent = np.where(found.sum(axis=1)[:, None] >= 2, high - low, 0.0)
    return extent[:, 0] * extent[:, 1]


def _centroid_shift(old, new):
    common = (old[:, 0] >= 0) & (new[:, 0] >= 0)
    if not common.any():
        return np.zeros(2, np.float32)
    return (new[common] - old[common]).mean(axis=0)


class PoseTracker:
    """Gives each pose of a stream a track id that stays with the same person."""

    def __init__(self, min_similarity=0.3, max_missed=3, tolerance=3.0, velocity_smoothing=0.5):
        if not 0.0 < min_similarity <= 1.0:
            raise ValueError(f'min_similarity must be in (0, 1], got {min_similarity}')
        if max_missed < 0 or tolerance <= 0 or not 0 <= velocity_smoothing < 1:
            raise ValueError('max_missed >= 0, tolerance > 0 and velocity_smoothing in [0, 1) are required')
        self.min_similarity = min_similarity
        self.tolerance = tolerance
        self.max_missed = max_missed
        self.velocity_smoothing = velocity_smoothing
        self.reset()

    def reset(self):
        """Starts a new stream: forgets all tracks; ids start again at 0."""
        self._tracks = []
        self._next_id = 0

    @property
    def active_ids(self):
        return [track.id for track in self._tracks]

    def update(self, poses, stamp):
        """Sets `pose.id` on each pose (objects with `.data` (18, 2)) seen at time `stamp` (seconds)."""
        pairs = self._best_pairs(poses, stamp)
        matched_tracks = set()
        for pose_index, track_index in pairs:
            self._follow(self._tracks[track_index], poses[pose_index], stamp)
            matched_tracks.add(track_index)
        for track_index, track in enumerate(self._tracks):
            if track_index not in matched_tracks:
                track.missed += 1
        self._tracks = [track for track in self._tracks if track.missed <= self.max_missed]
        matched_poses = {pose_index for pose_index, _ in pairs}
        for pose_index, pose in enumerate(poses):
            if pose_index not in matched_poses:
                pose.id = self._next_id
                self._tracks.append(_Track(id=self._next_id, keypoints=pose.data.copy(), stamp=stamp))
                self._next_id += 1
        return poses

    def _best_pairs(self, poses, stamp):
        """Greedy assignment on the similarity matrix, best pair first."""
        if not poses or not self._tracks:
            return []
        predicted = np.stack([track.predicted(stamp) for track in self._tracks])
        scores = similarity(np.stack([pose.data for pose in poses]), predicted, self.tolerance)
        pairs = []
        for flat in np.argsort(-scores, axis=None, kind='stable'):
            pose_index, track_index = divmod(int(flat), len(self._tracks))
            if scores[pose_index, track_index] < self.min_similarity:
                break
            if all(pose_index != p and track_index != t for p, t in pairs):
                pairs.append((pose_index, track_index))
        return pairs

    def _follow(self, track, pose, stamp):
        elapsed = stamp - track.stamp
        if elapsed > 0:
            velocity = _centroid_shift(track.keypoints, pose.data) / elapsed
            track.velocity = self.velocity_smoothing * track.velocity + (1 - self.velocity_smoothing) * velocity
        # Keypoints missing now keep their last position, so that a brief occlusion does not break matching.
        found = pose.data[:, 0] >= 0
        track.keypoints[found] = pose.data[found]
        track.keypoints[~found] = track.predicted(stamp)[~found]
        track.stamp = stamp
        track.missed = 0
        pose.id = track.id
