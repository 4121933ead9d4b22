"""Network maps -> people: heatmap peaks, PAF limb scores, and grouping into poses (pure numpy).

Compared with the reference decoder this one keeps the strongest peak in a neighbourhood (not the leftmost),
samples the PAFs at their own resolution with bilinear interpolation instead of upsampling all 38 channels,
scores every candidate limb of every type in one vectorised pass, and merges two partial poses when a limb
joins them (so a face found through the ears is not lost when the neck is missing).
"""
from dataclasses import dataclass

import cv2
import numpy as np

from openpose_ros.keypoints import GROUPING_ORDER, LIMBS, LOOP_LIMBS, NUM_KEYPOINTS


@dataclass(frozen=True)
class DecoderConfig:
    """Thresholds of the decoder; the defaults are the reference's but for min_keypoints (see the README)."""
    peak_threshold: float = 0.1      # minimum heatmap value of a keypoint
    suppression_radius: float = 1.5  # map pixels: peaks of one type closer than this merge (the reference's 6 px at x4)
    min_paf_score: float = 0.05      # a limb sample counts when the PAF agrees by more than this
    success_ratio: float = 0.8       # fraction of limb samples that must count
    points_per_limb: int = 10
    min_keypoints: int = 2           # poses with fewer keypoints are dropped (the reference: 3)
    min_pose_score: float = 0.2      # poses whose mean keypoint+limb score is lower are dropped
    max_peaks: int = 100             # strongest candidates kept per keypoint type: bounds the cost on garbage maps

    def __post_init__(self):
        for name in ('peak_threshold', 'min_paf_score', 'success_ratio', 'min_pose_score'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {getattr(self, name)}')
        if self.suppression_radius < 0 or self.points_per_limb < 2 or self.min_keypoints < 1 or self.max_peaks < 1:
            raise ValueError('suppression_radius >= 0, points_per_limb >= 2, min_keypoints >= 1 and max_peaks >= 1 '
                             'are required')


@dataclass
class Peaks:
    """All keypoint candidates of an image: position in map pixels, heatmap score, keypoint type."""
    xy: np.ndarray      # (K, 2) float32
    score: np.ndarray   # (K,) float32
    kind: np.ndarray    # (K,) int

    def of_kind(self, kind):
        return np.flatnonzero(self.kind == kind)


def upsample(maps, ratio):
    """(C, H, W) -> (C, H*ratio, W*ratio) with bicubic interpolation (one call for all channels)."""
    if ratio == 1:
        return maps
    hwc = np.ascontiguousarray(maps.transpose(1, 2, 0))
    up = cv2.resize(hwc, None, fx=ratio, fy=ratio, interpolation=cv2.INTER_CUBIC)
    return up.reshape(up.shape[0], up.shape[1], -1).transpose(2, 0, 1)


def find_peaks(heatmaps, ratio, config=DecoderConfig()):
    """Local maxima of the (upsampled) keypoint heatmaps, the strongest kept within the suppression radius.

    Returns peaks in coordinates of the maps before upsampling (pixel centres at integers).
    """
    hwc = np.ascontiguousarray(heatmaps[:NUM_KEYPOINTS].transpose(1, 2, 0))
    ceiling = cv2.dilate(hwc, np.ones((3, 3), np.uint8)).reshape(hwc.shape)
    # Below-threshold pixels can never be peaks: raising their ceiling excludes them in the same comparison.
    np.maximum(ceiling, np.nextafter(np.float32(config.peak_threshold), np.float32(1)), out=ceiling)
    flat = np.flatnonzero(hwc >= ceiling)
    ys, rest = np.divmod(flat, hwc.shape[1] * NUM_KEYPOINTS)
    xs, kinds = np.divmod(rest, NUM_KEYPOINTS)
    scores = hwc.reshape(-1)[flat]
    keep = _strongest_per_kind(kinds, scores, config.max_peaks)
    keep = keep[_suppress_neighbours(xs[keep], ys[keep], kinds[keep], config.suppression_radius * ratio)]
    xy = np.stack([xs[keep], ys[keep]], axis=1).astype(np.float32)
    # Pixel u of a map upsampled by `ratio` sits at (u + 0.5) / ratio - 0.5 of the original map.
    xy = (xy + 0.5) / ratio - 0.5
    return Peaks(xy=xy, score=np.minimum(scores[keep], 1.0).astype(np.float32), kind=kinds[keep])


def _strongest_per_kind(kinds, scores, limit):
    """Indices sorted by kind, then by score (strongest first), at most `limit` of each kind."""
    order = np.lexsort((-scores, kinds))
    first_of_kind = np.searchsorted(kinds[order], kinds[order], side='left')
    rank = np.arange(len(order)) - first_of_kind
    return order[rank < limit]


def _suppress_neighbours(xs, ys, kinds, radius):
    """Greedy non-maximum suppression within each keypoint type, for peaks sorted strongest first per type.

    Returns the indices of the kept peaks.
    """
    dx = xs[:, None] - xs[None, :]
    dy = ys[:, None] - ys[None, :]
    conflicts = np.triu((kinds[:, None] == kinds[None, :]) & (dx * dx + dy * dy < radius * radius), k=1)
    kept = np.ones(len(xs), bool)
    for i in np.flatnonzero(conflicts.any(axis=1)):
        if kept[i]:
            kept[conflicts[i]] = False
    return np.flatnonzero(kept)


def score_limbs(peaks, pafs, config=DecoderConfig()):
    """Scores every candidate connection of every limb type against the PAFs in one pass.

    Returns (limb, a, b, score) arrays of the connections that pass the reference's tests, where a and b index
    the peaks.
    """
    limbs, starts, ends = [], [], []
    for limb, (kind_a, kind_b) in enumerate(LIMBS):
        a, b = np.meshgrid(peaks.of_kind(kind_a), peaks.of_kind(kind_b), indexing='ij')
        limbs.append(np.full(a.size, limb))
        starts.append(a.ravel())
        ends.append(b.ravel())
    limb, a, b = (np.concatenate(parts) for parts in (limbs, starts, ends))
    if limb.size == 0:
        return limb, a, b, np.zeros(0, np.float32)
    vec = peaks.xy[b] - peaks.xy[a]
    length = np.linalg.norm(vec, axis=1, keepdims=True)
    unit = vec / np.maximum(length, 1e-6)
    steps = np.linspace(0.0, 1.0, config.points_per_limb, dtype=np.float32)
    points = peaks.xy[a][:, None, :] + steps[None, :, None] * vec[:, None, :]  # (n, P, 2)
    field_x, field_y = _bilinear(pafs, points, 2 * limb)
    agreement = field_x * unit[:, :1] + field_y * unit[:, 1:]
    valid = agreement > config.min_paf_score
    valid_count = valid.sum(axis=1)
    score = (agreement * valid).sum(axis=1) / np.maximum(valid_count, 1)
    passed = (score > 0) & (valid_count > config.success_ratio * config.points_per_limb)
    return limb[passed], a[passed], b[passed], score[passed].astype(np.float32)


def _bilinear(pafs, points, x_channels):
    """Samples the (x, y) PAF channel pair of each connection at its points (n, P, 2), in map pixels.

    Gathers from the flattened maps with precomputed indices: far cheaper than numpy's broadcast indexing.
    """
    _, height, width = pafs.shape
    flat = pafs.reshape(-1)
    x = np.clip(points[..., 0], 0, width - 1)
    y = np.clip(points[..., 1], 0, height - 1)
    x0 = np.minimum(x.astype(np.int64), max(width - 2, 0))
    y0 = np.minimum(y.astype(np.int64), max(height - 2, 0))
    fx, fy = x - x0, y - y0
    step_x, step_y = int(width > 1), width * int(height > 1)
    corner = (x_channels[:, None] * height + y0) * width + x0

    def sample(index):
        top = flat[index] * (1 - fx) + flat[index + step_x] * fx
        bottom = flat[index + step_y] * (1 - fx) + flat[index + step_y + step_x] * fx
        return top * (1 - fy) + bottom * fy

    return sample(corner), sample(corner + height * width)


def group(peaks, limb, a, b, score, config=DecoderConfig()):
    """Greedy grouping of scored connections into poses, limb type by limb type from the neck outwards.

    Returns (P, 18) peak indices (-1 where missing) and each pose's summed keypoint and limb scores.
    """
    owner = np.full(len(peaks.score), -1)
    poses, totals, limb_counts = [], [], []
    for limb_type in GROUPING_ORDER:
        kind_a, kind_b = LIMBS[limb_type]
        # A loop limb never starts a pose: both its ends were reachable through the tree.
        closes_loop = limb_type in LOOP_LIMBS
        of_type = limb == limb_type
        for pa, pb, s in _one_to_one(a[of_type], b[of_type], score[of_type]):
            pose_a, pose_b = owner[pa], owner[pb]
            if pose_a >= 0 and pose_b >= 0:
                if pose_a != pose_b and _disjoint(poses[pose_a], poses[pose_b]):
                    _merge(poses, totals, limb_counts, owner, pose_a, pose_b, s)
                continue
            if pose_a < 0 and pose_b < 0:
                if closes_loop:
                    continue
                owner[[pa, pb]] = len(poses)
                poses.append(np.full(NUM_KEYPOINTS, -1))
                poses[-1][[kind_a, kind_b]] = pa, pb
                totals.append(peaks.score[pa] + peaks.score[pb] + s)
                limb_counts.append(1)
                continue
            pose, new_peak, new_kind = (pose_a, pb, kind_b) if pose_a >= 0 else (pose_b, pa, kind_a)
            if poses[pose][new_kind] >= 0:
                continue
            poses[pose][new_kind] = new_peak
            owner[new_peak] = pose
            totals[pose] += peaks.score[new_peak] + s
            limb_counts[pose] += 1
    return _filter(poses, totals, limb_counts, config)


def _one_to_one(a, b, score):
    """Connections of one limb type, best first, each peak used at most once."""
    used_a, used_b = set(), set()
    for i in np.argsort(-score, kind='stable'):
        if a[i] not in used_a and b[i] not in used_b:
            used_a.add(a[i])
            used_b.add(b[i])
            yield a[i], b[i], score[i]


def _disjoint(pose_a, pose_b):
    return not np.any((pose_a >= 0) & (pose_b >= 0))


def _merge(poses, totals, limb_counts, owner, keep, drop, limb_score):
    taken = poses[drop] >= 0
    poses[keep][taken] = poses[drop][taken]
    owner[poses[drop][taken]] = keep
    totals[keep] += totals[drop] + limb_score
    limb_counts[keep] += limb_counts[drop] + 1
    poses[drop][:] = -1
    totals[drop], limb_counts[drop] = 0.0, 0


def _filter(poses, totals, limb_counts, config):
    if not poses:
        return np.zeros((0, NUM_KEYPOINTS), int), np.zeros(0, np.float32)
    poses = np.stack(poses)
    counts = (poses >= 0).sum(axis=1)
    totals = np.asarray(totals, np.float32)
    # The reference's test: mean over keypoints of (keypoint + limb) scores.
    mean_score = totals / np.maximum(counts, 1)
    keep = (counts >= config.min_keypoints) & (mean_score >= config.min_pose_score)
    return poses[keep], totals[keep] / (counts[keep] + np.asarray(limb_counts)[keep])


def poses_to_arrays(peaks, poses, mean_scores, stride):
    """Grouped poses -> keypoints (N, 18, 2) in network-input pixels (-1 where missing), keypoint scores (N, 18)
    (0 where missing) and pose scores (N,) in [0, 1], best pose first.

    The pose score is the mean keypoint and limb score, weighted by how much of the body was found.
    """
    found = poses >= 0
    keypoints = np.full(poses.shape + (2,), -1.0, np.float32)
    keypoint_scores = np.zeros(poses.shape, np.float32)
    # Map pixel m is centred on input pixel m * stride + stride / 2 - 0.5 (as the training targets define it).
    keypoints[found] = peaks.xy[poses[found]] * stride + (stride / 2 - 0.5)
    keypoint_scores[found] = peaks.score[poses[found]]
    completeness = found.sum(axis=1) / NUM_KEYPOINTS
    pose_scores = np.clip(mean_scores * np.sqrt(completeness), 0.0, 1.0).astype(np.float32)
    order = np.argsort(-pose_scores, kind='stable')
    return keypoints[order], keypoint_scores[order], pose_scores[order]


def decode_poses(heatmaps, pafs, stride=8, upsample_ratio=4, config=DecoderConfig()):
    """Heatmaps (19, H, W) and PAFs (38, H, W) at the network's stride -> poses in network-input pixels,
    as `poses_to_arrays` returns them."""
    peaks = find_peaks(upsample(heatmaps[:NUM_KEYPOINTS], upsample_ratio), upsample_ratio, config)
    poses, mean_scores = group(peaks, *score_limbs(peaks, pafs, config), config=config)
    return poses_to_arrays(peaks, poses, mean_scores, stride)
