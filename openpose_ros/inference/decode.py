"""Network maps -> people: heatmap peaks, PAF limb scores, and grouping into poses (pure numpy).

Compared with the reference decoder this one keeps the strongest peak in a neighbourhood (not the leftmost),
samples the PAFs at their own resolution with bilinear interpolation instead of upsampling all 38 channels,
scores every candidate limb of every type in one vectorised pass, and merges two partial poses when a limb
joins them (so a face found through the ears is not lost when the neck is missing).
"""
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from openpose_ros.keypoints import GROUPING_ORDER, LIMBS, LOOP_LIMBS, NUM_KEYPOINTS

LIMB_KINDS = np.array(LIMBS).T  # (2, limbs): the keypoint types at each limb's ends
GROUPING_RANK = np.argsort(GROUPING_ORDER)  # limb type -> its place in GROUPING_ORDER

# (ys, xs, kinds): candidate peaks in map pixels, as candidate_peaks returns them.
Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]
# (limb types, start peaks, end peaks, scores): the scored connections, as score_limbs returns them.
Connections = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
# (keypoints (N, 18, 2), keypoint scores (N, 18), pose scores (N,)): decoded poses, as poses_to_arrays returns them.
PoseArrays = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class DecoderConfig:
    """Thresholds of the decoder; the defaults are the reference's but for min_keypoints (see the README)."""
    peak_threshold: float = 0.1      # minimum heatmap value of a keypoint
    suppression_radius: float = 1.5  # map pixels: peaks of one type closer merge (the reference: 6 px at x4)
    min_paf_score: float = 0.05      # a limb sample counts when the PAF agrees by more than this
    success_ratio: float = 0.8       # fraction of limb samples that must count
    points_per_limb: int = 10
    min_keypoints: int = 2           # poses with fewer keypoints are dropped (the reference: 3)
    min_pose_score: float = 0.2      # poses whose mean keypoint+limb score is lower are dropped
    max_peaks: int = 100             # strongest candidates kept per keypoint type: bounds the cost on garbage maps

    def __post_init__(self) -> None:
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

    def of_kind(self, kind: int) -> np.ndarray:
        """Indices (into xy, score and kind) of the candidates of keypoint type `kind`."""
        return np.flatnonzero(self.kind == kind)


def candidate_peaks(heatmaps: np.ndarray, config: DecoderConfig = DecoderConfig()) -> Candidates:
    """Local maxima (3x3) of the keypoint heatmaps above the threshold, at their own resolution.

    Returns (ys, xs, kinds), at most `max_peaks` of each kind, strongest first.
    """
    hwc = np.ascontiguousarray(heatmaps[:NUM_KEYPOINTS].transpose(1, 2, 0))
    ceiling = cv2.dilate(hwc, np.ones((3, 3), np.uint8)).reshape(hwc.shape)
    # Pixels under the threshold can never be peaks: raising their ceiling excludes them in the same comparison.
    np.maximum(ceiling, np.nextafter(np.float32(config.peak_threshold), np.float32(1)), out=ceiling)
    flat = np.flatnonzero(hwc >= ceiling)
    ys, rest = np.divmod(flat, hwc.shape[1] * NUM_KEYPOINTS)
    xs, kinds = np.divmod(rest, NUM_KEYPOINTS)
    keep = _strongest_per_kind(kinds, hwc.reshape(-1)[flat], config.max_peaks)
    return ys[keep], xs[keep], kinds[keep]


@lru_cache(maxsize=8)
def _upsampling_grid(ratio: int) -> tuple[np.ndarray, np.ndarray]:
    """Where a map upsampled by `ratio` has its pixels within one pixel of a map pixel (OpenCV's convention:
    upsampled pixel u lies at (u + 0.5) / ratio - 0.5), and the bicubic weights (OpenCV's kernel, a = -0.75)
    that sample a 6-pixel window, centred on its third pixel, there. Returns (offsets (n,), weights (n, 6))."""
    u = np.arange(-2 * ratio, 2 * ratio)
    offsets = (u + 0.5) / ratio - 0.5
    offsets = offsets[np.abs(offsets) <= 1]
    a = -0.75
    weights = np.zeros((len(offsets), 6), np.float32)
    for row, position in enumerate(2 + offsets):
        base = int(np.floor(position))
        for tap in range(base - 1, base + 3):
            d = abs(position - tap)
            weights[row, tap] = ((a + 2) * d - (a + 3)) * d * d + 1 if d <= 1 else ((d - 5) * d + 8) * d * a - 4 * a
    return offsets.astype(np.float32), weights


def refine_peaks(heatmaps: np.ndarray, ys: np.ndarray, xs: np.ndarray, kinds: np.ndarray, ratio: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Upsamples the heatmaps by `ratio` (bicubic) around each candidate only, and moves it to the maximum there.

    The same positions and scores as upsampling whole maps with OpenCV, at a cost that grows with the number of
    peaks rather than the number of pixels. Returns (xy (K, 2) float32 in map pixels, scores (K,)).
    """
    if ratio == 1 or len(ys) == 0:
        return np.stack([xs, ys], axis=1).astype(np.float32), heatmaps[kinds, ys, xs]
    padded = np.pad(heatmaps[:NUM_KEYPOINTS], ((0, 0), (3, 3), (3, 3)), mode='edge')
    window = np.arange(6)
    patches = padded[kinds[:, None, None], (ys + 1)[:, None, None] + window[None, :, None],
                     (xs + 1)[:, None, None] + window[None, None, :]]
    offsets, weights = _upsampling_grid(ratio)
    local = (weights @ patches @ weights.T).reshape(len(ys), -1)
    best = local.argmax(axis=1)
    dy, dx = np.divmod(best, len(offsets))
    xy = np.stack([xs + offsets[dx], ys + offsets[dy]], axis=1).astype(np.float32)
    return xy, local[np.arange(len(ys)), best]


def find_peaks(heatmaps: np.ndarray, ratio: int, config: DecoderConfig = DecoderConfig()) -> Peaks:
    """Keypoint candidates: local maxima refined on the heatmaps upsampled by `ratio`, above the threshold, the
    strongest kept within the suppression radius. Positions are in map pixels (pixel centres at integers)."""
    ys, xs, kinds = candidate_peaks(heatmaps, config)
    xy, scores = refine_peaks(heatmaps, ys, xs, kinds, ratio)
    return suppress(xy, scores, kinds, config)


def suppress(xy: np.ndarray, scores: np.ndarray, kinds: np.ndarray, config: DecoderConfig = DecoderConfig()) -> Peaks:
    """Peaks above the threshold, the strongest of each type kept within the suppression radius."""
    above = scores > config.peak_threshold
    xy, scores, kinds = xy[above], scores[above], kinds[above]
    order = np.lexsort((-scores, kinds))
    xy, scores, kinds = xy[order], scores[order], kinds[order]
    keep = _suppress_neighbours(xy[:, 0], xy[:, 1], kinds, config.suppression_radius)
    return Peaks(xy=xy[keep], score=np.minimum(scores[keep], 1.0).astype(np.float32), kind=kinds[keep])


def _strongest_per_kind(kinds: np.ndarray, scores: np.ndarray, limit: int) -> np.ndarray:
    """Indices sorted by kind, then by score (strongest first), at most `limit` of each kind."""
    order = np.lexsort((-scores, kinds))
    first_of_kind = np.searchsorted(kinds[order], kinds[order], side='left')
    rank = np.arange(len(order)) - first_of_kind
    return order[rank < limit]


def _suppress_neighbours(xs: np.ndarray, ys: np.ndarray, kinds: np.ndarray, radius: float) -> np.ndarray:
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


def score_limbs(peaks: Peaks, pafs: np.ndarray, config: DecoderConfig = DecoderConfig()) -> Connections:
    """Scores every candidate connection of every limb type against the PAFs in one pass.

    Returns (limb, a, b, score) arrays of the connections that pass the reference's tests, where a and b index
    the peaks.
    """
    limb, a, b = candidate_pairs(peaks.kind)
    steps = np.linspace(0.0, 1.0, config.points_per_limb, dtype=np.float32)
    # Exact shortcut: a limb fails when more than `allowed` samples disagree, so a pair whose first
    # `allowed + 1` probes (spread along it) all disagree can be dropped before the full count.
    allowed = config.points_per_limb - (int(config.success_ratio * config.points_per_limb) + 1)
    probes = steps[np.linspace(1, config.points_per_limb - 2, allowed + 1).round().astype(int)]
    hopeful = (_agreement(peaks, pafs, limb, a, b, probes) > config.min_paf_score).any(axis=1)
    limb, a, b = limb[hopeful], a[hopeful], b[hopeful]
    agreement = _agreement(peaks, pafs, limb, a, b, steps)
    valid = agreement > config.min_paf_score
    valid_count = valid.sum(axis=1)
    score = (agreement * valid).sum(axis=1) / np.maximum(valid_count, 1)
    passed = (score > 0) & (valid_count > config.success_ratio * config.points_per_limb)
    return limb[passed], a[passed], b[passed], score[passed].astype(np.float32)


def candidate_pairs(kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (limb type, start peak, end peak) whose peaks have the limb's two keypoint types, limb by limb,
    start peaks outer, in peak order: the pairs of a meshgrid per limb, built in one vectorised pass."""
    by_kind = np.argsort(kinds, kind='stable')
    first = np.searchsorted(kinds[by_kind], np.arange(NUM_KEYPOINTS + 1))
    count = np.diff(first)
    kind_a, kind_b = LIMB_KINDS
    ends_per_start = count[kind_b]
    pairs_per_limb = count[kind_a] * ends_per_start
    limb = np.repeat(np.arange(len(LIMBS)), pairs_per_limb)
    index = np.arange(len(limb)) - np.repeat(np.cumsum(pairs_per_limb) - pairs_per_limb, pairs_per_limb)
    along_a, along_b = np.divmod(index, np.maximum(ends_per_start[limb], 1))
    return limb, by_kind[first[kind_a[limb]] + along_a], by_kind[first[kind_b[limb]] + along_b]


def _agreement(peaks: Peaks, pafs: np.ndarray, limb: np.ndarray, a: np.ndarray, b: np.ndarray, steps: np.ndarray
               ) -> np.ndarray:
    """Dot product of the limb direction a -> b with the PAF at the fractions `steps` along it: (n, len(steps))."""
    vec = peaks.xy[b] - peaks.xy[a]
    unit = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-6)
    points = peaks.xy[a][:, None, :] + steps[None, :, None] * vec[:, None, :]
    field_x, field_y = _bilinear(pafs, points, 2 * limb)
    return field_x * unit[:, :1] + field_y * unit[:, 1:]


def _bilinear(pafs: np.ndarray, points: np.ndarray, x_channels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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

    def sample(index: np.ndarray) -> np.ndarray:
        top = flat[index] * (1 - fx) + flat[index + step_x] * fx
        bottom = flat[index + step_y] * (1 - fx) + flat[index + step_y + step_x] * fx
        return top * (1 - fy) + bottom * fy

    return sample(corner), sample(corner + height * width)


def group(peaks: Peaks, limb: np.ndarray, a: np.ndarray, b: np.ndarray, score: np.ndarray,
          config: DecoderConfig = DecoderConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Greedy grouping of scored connections into poses, limb type by limb type from the neck outwards.

    Returns (P, 18) peak indices (-1 where missing) and each pose's summed keypoint and limb scores.
    """
    peak_scores = peaks.score.tolist()  # plain Python in the loop: numpy scalars cost more than they save
    owner = [-1] * len(peak_scores)
    poses: list[list[int]] = []
    totals: list[float] = []
    limb_counts: list[int] = []
    for limb_type, pa, pb, s in _one_to_one(limb, a, b, score):
        kind_a, kind_b = LIMBS[limb_type]
        pose_a, pose_b = owner[pa], owner[pb]
        if pose_a >= 0 and pose_b >= 0:
            if pose_a != pose_b and _disjoint(poses[pose_a], poses[pose_b]):
                _merge(poses, totals, limb_counts, owner, pose_a, pose_b, s)
            continue
        if pose_a < 0 and pose_b < 0:
            # A loop limb never starts a pose: both its ends were reachable through the tree.
            if limb_type in LOOP_LIMBS:
                continue
            owner[pa] = owner[pb] = len(poses)
            poses.append([-1] * NUM_KEYPOINTS)
            poses[-1][kind_a], poses[-1][kind_b] = pa, pb
            totals.append(peak_scores[pa] + peak_scores[pb] + s)
            limb_counts.append(1)
            continue
        pose, new_peak, new_kind = (pose_a, pb, kind_b) if pose_a >= 0 else (pose_b, pa, kind_a)
        if poses[pose][new_kind] >= 0:
            continue
        poses[pose][new_kind] = new_peak
        owner[new_peak] = pose
        totals[pose] += peak_scores[new_peak] + s
        limb_counts[pose] += 1
    return _filter(poses, totals, limb_counts, config)


def _one_to_one(limb: np.ndarray, a: np.ndarray, b: np.ndarray, score: np.ndarray
                ) -> Iterator[tuple[int, int, int, float]]:
    """Yields (limb type, a, b, score): limb types in GROUPING_ORDER, each type's connections best first, each
    peak used at most once per type."""
    order = np.lexsort((-score, GROUPING_RANK[limb]))
    used: set[int] = set()
    current = None
    for limb_type, pa, pb, s in zip(*(values[order].tolist() for values in (limb, a, b, score))):
        if limb_type != current:
            used, current = set(), limb_type
        if pa not in used and pb not in used:
            used.update((pa, pb))
            yield limb_type, pa, pb, s


def _disjoint(pose_a: list[int], pose_b: list[int]) -> bool:
    return not any(x >= 0 and y >= 0 for x, y in zip(pose_a, pose_b))


def _merge(poses: list[list[int]], totals: list[float], limb_counts: list[int], owner: list[int], keep: int,
           drop: int, limb_score: float) -> None:
    for kind, peak in enumerate(poses[drop]):
        if peak >= 0:
            poses[keep][kind] = peak
            owner[peak] = keep
    totals[keep] += totals[drop] + limb_score
    limb_counts[keep] += limb_counts[drop] + 1
    poses[drop] = [-1] * NUM_KEYPOINTS
    totals[drop], limb_counts[drop] = 0.0, 0


def _filter(poses: list[list[int]], totals: list[float], limb_counts: list[int], config: DecoderConfig
            ) -> tuple[np.ndarray, np.ndarray]:
    if not poses:
        return np.zeros((0, NUM_KEYPOINTS), int), np.zeros(0, np.float32)
    peak_indices = np.array(poses)
    counts = (peak_indices >= 0).sum(axis=1)
    total_scores = np.asarray(totals, np.float32)
    # The reference's test: mean over keypoints of (keypoint + limb) scores.
    mean_score = total_scores / np.maximum(counts, 1)
    keep = (counts >= config.min_keypoints) & (mean_score >= config.min_pose_score)
    return peak_indices[keep], total_scores[keep] / (counts[keep] + np.asarray(limb_counts)[keep])


def poses_to_arrays(peaks: Peaks, poses: np.ndarray, mean_scores: np.ndarray, stride: int) -> PoseArrays:
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


def decode_poses(heatmaps: np.ndarray, pafs: np.ndarray, stride: int = 8, upsample_ratio: int = 4,
                 config: DecoderConfig = DecoderConfig()) -> PoseArrays:
    """Heatmaps (19, H, W) and PAFs (38, H, W) at the network's stride -> poses in network-input pixels,
    as `poses_to_arrays` returns them."""
    peaks = find_peaks(heatmaps, upsample_ratio, config)
    poses, mean_scores = group(peaks, *score_limbs(peaks, pafs, config), config=config)
    return poses_to_arrays(peaks, poses, mean_scores, stride)
