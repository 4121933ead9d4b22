"""People in metres: lifts a frame's 2D poses to 3D camera coordinates with an aligned depth image.

Free of ROS: the intrinsics are a small dataclass with CameraInfo's fields (`Intrinsics.from_camera_info` reads
any object that has them). Coordinates follow the optical frame convention: x right, y down, z forward.

Each found keypoint takes a robust depth from a window around it, sampled on a fixed grid whose spacing grows
with the person's size in the image. Holes (0, NaN, inf, outside the range) are ignored, and so are samples far
from the person's own depth (the median of its keypoints' window medians): at a silhouette the window also sees
the background behind the person, which must not pull the keypoint backwards. A keypoint whose window holds too
few accepted samples is invalid: no depth is guessed.
"""
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from openpose_ros.keypoints import NUM_KEYPOINTS
from openpose_ros.pose import Pose

DISTORTION_MODELS = ('plumb_bob', 'rational_polynomial', 'equidistant')
GRID = 7                  # samples per window side: the cost per keypoint is fixed, whatever the person's size
MIN_SUPPORT = 0.2         # fraction of a window's samples that must be accepted for a keypoint to be valid
MAX_WINDOW_RADIUS = 64    # depth pixels: bounds the window of a person that fills the image
ASPECT_TOLERANCE = 0.02   # aligned depth has the colour image's proportions (up to rounding of a smaller size)
_GRID_OFFSETS = np.stack(np.meshgrid(np.linspace(-1, 1, GRID), np.linspace(-1, 1, GRID)), axis=-1).reshape(-1, 2)


@dataclass(frozen=True)
class Intrinsics:
    """A camera's intrinsics as in sensor_msgs/CameraInfo: K (3x3), distortion model and D, the image size."""
    k: np.ndarray
    width: int
    height: int
    distortion_model: str = 'plumb_bob'
    d: np.ndarray = field(default_factory=lambda: np.zeros(5))

    def __post_init__(self) -> None:
        object.__setattr__(self, 'k', np.asarray(self.k, np.float64).reshape(3, 3))
        object.__setattr__(self, 'd', np.asarray(self.d, np.float64).ravel())
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'intrinsics need a positive image size, not {self.width}x{self.height}')
        if self.k[0, 0] <= 0 or self.k[1, 1] <= 0:
            raise ValueError('intrinsics need positive focal lengths (K[0,0], K[1,1]): is the camera calibrated?')
        if self.distorted and self.distortion_model not in DISTORTION_MODELS:
            raise ValueError(f'unsupported distortion model {self.distortion_model!r}: '
                             f'use one of {", ".join(DISTORTION_MODELS)}')

    @classmethod
    def from_camera_info(cls, info: Any) -> 'Intrinsics':
        """From a sensor_msgs/CameraInfo (or anything with its k, d, distortion_model, width and height)."""
        return cls(k=np.asarray(info.k), width=int(info.width), height=int(info.height),
                   distortion_model=str(info.distortion_model), d=np.asarray(info.d))

    @property
    def distorted(self) -> bool:
        """Whether any distortion coefficient (D) is non-zero: pixels are then undistorted before lifting."""
        return bool(np.any(self.d != 0))

    def scaled(self, width: int, height: int) -> 'Intrinsics':
        """The same camera for an image resized to width x height (pixel centres kept; D does not change)."""
        sx, sy = width / self.width, height / self.height
        k = self.k.copy()
        k[0, 0] *= sx
        k[1, 1] *= sy
        k[0, 1] *= sx
        k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
        k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
        return Intrinsics(k, width, height, self.distortion_model, self.d)

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """Normalised image coordinates (x/z, y/z) of pixels (..., 2), undistorted where D is not zero."""
        points = np.asarray(pixels, np.float64).reshape(-1, 1, 2)
        if len(points) == 0:
            return np.zeros(np.shape(pixels), np.float64)
        if not self.distorted:
            fx, fy, cx, cy, skew = self.k[0, 0], self.k[1, 1], self.k[0, 2], self.k[1, 2], self.k[0, 1]
            y = (points[..., 1] - cy) / fy
            x = (points[..., 0] - cx - skew * y) / fx
            normalised = np.stack([x, y], axis=-1)
        elif self.distortion_model == 'equidistant':
            normalised = cv2.fisheye.undistortPoints(points, self.k, self.d[:4])
        else:
            normalised = cv2.undistortPoints(points, self.k, self.d)
        return normalised.reshape(np.shape(pixels))


@dataclass
class LiftedPoses:
    """3D poses of a frame, in metres in the camera's optical frame; NaN where invalid.

    points (N, 18, 3), valid (N, 18), centers (N, 3) (per-axis median of the valid keypoints), center_valid (N,).
    """
    points: np.ndarray
    valid: np.ndarray
    centers: np.ndarray
    center_valid: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


def depth_in_metres(depth: np.ndarray) -> np.ndarray:
    """Depth values as float32 metres with NaN for no depth: uint16 is millimetres, floats are metres."""
    depth = np.asarray(depth)
    if depth.dtype == np.uint16:
        metres = depth.astype(np.float32) * np.float32(0.001)
    elif depth.dtype in (np.float32, np.float64):
        metres = depth.astype(np.float32, copy=True)
    else:
        raise ValueError(f'unsupported depth type {depth.dtype}: use uint16 millimetres or float32 metres')
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def lift_poses(poses: Sequence[Pose] | np.ndarray, depth: np.ndarray, intrinsics: Intrinsics,
               image_size: tuple[int, int] | None = None, min_range: float = 0.1, max_range: float = 10.0,
               window_scale: float = 0.05, depth_tolerance: float = 0.4) -> LiftedPoses:
    """Lifts poses (a list of `Pose`, or keypoints (N, 18, 2) in pixels, -1 where missing) to 3D.

    `depth` is aligned to the colour image (uint16 mm or float metres; 0, NaN and inf are no depth) and may have
    another resolution; `intrinsics` are the depth camera's (its CameraInfo), scaled here to each image's size.
    `image_size` (width, height) is the colour image's, in whose pixels the keypoints are (default: the
    intrinsics' size). Depths outside [min_range, max_range] metres are no depth. The window's side is
    `window_scale` times the person's size (the larger side of its keypoints' box); samples further than
    `depth_tolerance` metres from the person's depth are not taken.
    """
    keypoints = _keypoint_array(poses)
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f'a depth image has one channel, not shape {depth.shape}')
    width, height = image_size if image_size is not None else (intrinsics.width, intrinsics.height)
    _check_proportions(depth.shape, width, height)
    found = keypoints[..., 0] >= 0
    scale = np.array([depth.shape[1] / width, depth.shape[0] / height])
    in_depth = (keypoints + 0.5) * scale - 0.5
    samples = depth_in_metres(_window_samples(depth, in_depth, found, window_scale))   # only what is read
    samples[(samples < min_range) | (samples > max_range)] = np.nan
    z, valid = _robust_depths(samples, found, depth_tolerance)
    rays = intrinsics.scaled(width, height).rays(np.where(found[..., None], keypoints, 0))
    points = np.concatenate([rays * z[..., None], z[..., None]], axis=-1).astype(np.float32)
    points[~valid] = np.nan
    centers = _nan_median(points.transpose(0, 2, 1)) if len(points) else np.zeros((0, 3), np.float32)
    return LiftedPoses(points, valid, centers.astype(np.float32), np.any(valid, axis=1))


def _check_proportions(depth_shape: tuple[int, ...], width: int, height: int) -> None:
    """ValueError unless the depth image has the colour image's proportions, as an aligned one has (a wrong
    image_size, e.g. a channels-first shape, would otherwise make every keypoint silently invalid)."""
    if width < 1 or height < 1 or abs(depth_shape[1] / depth_shape[0] / (width / height) - 1) > ASPECT_TOLERANCE:
        raise ValueError(f'the depth image ({depth_shape[1]}x{depth_shape[0]}) is not aligned to a colour image of '
                         f'{width}x{height}: image_size is the colour image\'s (width, height)')


def _keypoint_array(poses: Sequence[Pose] | np.ndarray) -> np.ndarray:
    keypoints = poses if isinstance(poses, np.ndarray) else [pose.data for pose in poses]
    return np.asarray(keypoints, np.float64).reshape(-1, NUM_KEYPOINTS, 2)


def _window_samples(depth: np.ndarray, centres: np.ndarray, found: np.ndarray, window_scale: float) -> np.ndarray:
    """Raw depth samples (N, 18, GRID*GRID) on each keypoint's window grid; 0 (no depth) outside the image or
    where the keypoint was not found."""
    radius = np.clip(0.5 * window_scale * _person_size(centres, found), 1.0, MAX_WINDOW_RADIUS)
    reach = (radius[:, None, None] * _GRID_OFFSETS).astype(np.float32)                 # (N, G*G, 2)
    centres = centres.astype(np.float32)
    cols = np.rint(centres[:, :, None, 0] + reach[:, None, :, 0]).astype(np.intp)
    rows = np.rint(centres[:, :, None, 1] + reach[:, None, :, 1]).astype(np.intp)
    height, width = depth.shape
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height) & found[..., None]
    flat = rows * width + cols
    flat[~inside] = 0
    samples = np.ravel(depth)[flat]
    samples[~inside] = 0
    return samples


def _person_size(centres: np.ndarray, found: np.ndarray) -> np.ndarray:
    """The larger side of each person's keypoint box, in depth pixels."""
    low = np.where(found[..., None], centres, np.inf).min(axis=1)
    high = np.where(found[..., None], centres, -np.inf).max(axis=1)
    side = np.max(high - low, axis=1)
    return np.where(np.isfinite(side), side, 0.0)


def _robust_depths(samples: np.ndarray, found: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Per keypoint: the median of the samples near its person's depth, and whether enough of them were."""
    window_medians = _nan_median(samples)                                   # (N, 18)
    person = _nan_median(window_medians)                                    # (N,)
    near = np.abs(samples - person[:, None, None]) <= tolerance             # NaN compares False
    accepted = np.where(near, samples, np.nan)
    z = _nan_median(accepted)
    valid = found & (near.sum(axis=-1) >= MIN_SUPPORT * samples.shape[-1]) & np.isfinite(z)
    return np.where(valid, z, np.nan), valid


def _nan_median(values: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (NaN where all are), without nanmedian's per-row loop."""
    rows = np.sort(values, axis=-1).reshape(-1, values.shape[-1])        # NaN sorts last
    count = np.sum(~np.isnan(rows), axis=-1)
    every = np.arange(len(rows))
    low, high = np.maximum((count - 1) // 2, 0), np.minimum(count // 2, values.shape[-1] - 1)
    median = np.where(count > 0, 0.5 * (rows[every, low] + rows[every, high]), np.nan)
    return median.reshape(values.shape[:-1])
