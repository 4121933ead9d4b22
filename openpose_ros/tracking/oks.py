"""Object keypoint similarity (OKS) of pose sets, and greedy one-to-one matching on it.

The tracker matches poses to tracks with it, and the backend agreement measurement matches one backend's poses
to another's; both score pairs with `keypoint_similarities` and differ only in how they average the keypoints.
"""
import numpy as np

from openpose_ros.keypoints import SIGMAS


def box_areas(keypoints: np.ndarray) -> np.ndarray:
    """Area of the box around the found keypoints of each pose in (N, 18, 2) (-1 where missing); 0 with fewer
    than two."""
    found = keypoints[..., 0] >= 0
    low = np.where(found[..., None], keypoints, np.inf).min(axis=1)
    high = np.where(found[..., None], keypoints, -np.inf).max(axis=1)
    extent = np.where(found.sum(axis=1)[:, None] >= 2, high - low, 0.0)
    return extent[:, 0] * extent[:, 1]


def keypoint_similarities(keypoints_a: np.ndarray, keypoints_b: np.ndarray, areas: np.ndarray | float,
                          tolerance: float = 1.0) -> np.ndarray:
    """COCO's per-keypoint similarity of every pose in (P, 18, 2) with every pose in (T, 18, 2): (P, T, 18), 0
    where either pose misses the keypoint. `areas` (broadcast to (P, T)) is each pair's scale; `tolerance` widens
    COCO's per-keypoint sigmas."""
    common = (keypoints_a[:, None, :, 0] >= 0) & (keypoints_b[None, :, :, 0] >= 0)
    distance2 = ((keypoints_a[:, None] - keypoints_b[None, :]) ** 2).sum(axis=-1)
    variances = (2 * tolerance * SIGMAS) ** 2
    return np.exp(-distance2 / (2 * np.asarray(areas)[..., None] * variances)) * common


def coco_similarity(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """COCO's OKS of each candidate pose (T, 18, 2) to each reference pose (P, 18, 2): a (P, T) matrix.

    The mean over the reference's keypoints (a keypoint the candidate misses scores 0), scaled by the area of
    the reference's keypoint box; 0 for references with fewer than two keypoints.
    """
    found = (reference[..., 0] >= 0).sum(axis=1)[:, None]
    areas = np.maximum(box_areas(reference), 1.0)[:, None]
    total = keypoint_similarities(reference, candidate, areas).sum(axis=-1)
    return np.where(found >= 2, total / np.maximum(found, 1), 0.0)


def greedy_pairs(scores: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs of rows and columns of the (P, T) `scores`, best first, down to `min_score`:
    (rows, columns) as int arrays."""
    rows, columns = [], []
    for flat in np.argsort(-scores, axis=None, kind='stable'):
        row, column = divmod(int(flat), scores.shape[1])
        if scores[row, column] < min_score:
            break
        if row not in rows and column not in columns:
            rows.append(row)
            columns.append(column)
    return np.array(rows, int), np.array(columns, int)
