"""One frame of a stream of images, the same way everywhere: the node, bag_eval, `infer` and the demo all call
`PoseStream.process`, so live and replay cannot drift apart.

The per-frame rules it owns:
- time that goes back (a bag that restarted, a replayed file) restarts tracking and smoothing;
- tracking runs when tracking or smoothing is on (smoothing follows track ids); untracked poses get id -1;
- poses under `min_pose_score` are tracked (they keep their ids) but not returned for publishing;
- the poses before smoothing are kept on request (COCO AP of the unsmoothed poses);
- the milliseconds of every stage, smoothing included.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from openpose_ros.inference.estimator import PoseEstimator, timed
from openpose_ros.inference.image import ImageLike
from openpose_ros.inference.lifting import Intrinsics, LiftedPoses, lift_poses
from openpose_ros.pose import Pose
from openpose_ros.tracking.smoothing import PoseSmoother
from openpose_ros.tracking.tracker import PoseTracker

MAX_UPSAMPLE_RATIO = 16


@dataclass(frozen=True)
class StreamSettings:
    """The per-frame switches (the node's parameters of the same names)."""

    upsample_ratio: int = 4
    track: bool = True
    smooth: bool = True
    min_pose_score: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.upsample_ratio <= MAX_UPSAMPLE_RATIO:
            raise ValueError(f'upsample_ratio must be in [1, {MAX_UPSAMPLE_RATIO}], got {self.upsample_ratio}')


@dataclass(frozen=True)
class DepthSettings:
    """How keypoints are lifted to 3D (the node's depth_* parameters); see openpose_ros.inference.lifting."""

    min_range: float = 0.1
    max_range: float = 10.0
    window_scale: float = 0.05


@dataclass
class FrameResult:
    """What one frame gives.

    `poses`: to publish (score >= min_pose_score; smoothed when smoothing is on). `unsmoothed`: the same poses
    before smoothing, when the stream keeps them, else None. `timings`: milliseconds per stage. `restarted`: the
    stamp went back, so tracks and filters started again at this frame. `live_track_ids`: the tracker's live
    ids after this frame (empty when tracking is off).
    """

    poses: List[Pose]
    unsmoothed: Optional[List[Pose]]
    timings: Dict[str, float]
    restarted: bool = False
    live_track_ids: Tuple[int, ...] = ()


@dataclass
class PoseStream:
    """The tracked, smoothed poses of one stream of images (a camera, a video, a bag's topic).

    `estimator` may be replaced between frames (a new backend): the stream's state lives in its tracker and
    smoother, and in the last stamp seen. `timings` holds the milliseconds per stage of the last frame.
    """

    estimator: PoseEstimator
    tracker: PoseTracker = field(default_factory=PoseTracker)
    smoother: PoseSmoother = field(default_factory=PoseSmoother)
    keep_unsmoothed: bool = False
    last_stamp: Optional[float] = field(default=None, init=False)
    timings: Dict[str, float] = field(default_factory=dict, init=False)

    def process(self, image: ImageLike, stamp: Optional[float] = None, settings: StreamSettings = StreamSettings()
                ) -> FrameResult:
        """The poses of `image` taken at `stamp` (seconds; by default the monotonic clock).

        Raises openpose_ros.inference.image.ImageRejected for an image it refuses, ValueError for a stamp that
        is not finite.
        """
        stamp = time.monotonic() if stamp is None else float(stamp)
        if not math.isfinite(stamp):  # tracking and smoothing divide by stamp differences
            raise ValueError(f'stamp must be a finite number of seconds, got {stamp}')
        estimator = self.estimator
        poses = estimator.detect(image, settings.upsample_ratio)
        self.timings = timings = dict(estimator.timings)
        restarted = self.last_stamp is not None and stamp < self.last_stamp
        if restarted:
            self.reset()
        self.last_stamp = stamp
        with timed(timings, 'tracking'):
            if settings.track or settings.smooth:
                self.tracker.update(poses, stamp)
        unsmoothed = [pose.copy() for pose in poses] if self.keep_unsmoothed else None
        if settings.smooth:
            with timed(timings, 'smoothing'):
                self.smoother.update(poses, stamp)
        if not settings.track:
            for pose in poses + (unsmoothed or []):
                pose.id = -1
        if settings.min_pose_score > 0:
            kept = [pose.confidence >= settings.min_pose_score for pose in poses]
            poses = [pose for pose, keep in zip(poses, kept) if keep]
            if unsmoothed is not None:
                unsmoothed = [pose for pose, keep in zip(unsmoothed, kept) if keep]
        live = tuple(self.tracker.active_ids) if settings.track else ()
        return FrameResult(poses, unsmoothed, timings, restarted, live)

    def reset(self) -> None:
        """Starts the stream again: forgets tracks, filter states and the last stamp."""
        self.tracker.reset()
        self.smoother.reset()
        self.last_stamp = None


def lift(poses: List[Pose], depth: np.ndarray, intrinsics: Intrinsics, image_shape: Tuple[int, ...],
         settings: DepthSettings = DepthSettings()) -> LiftedPoses:
    """The frame's poses in metres from its aligned depth image (`image_shape`: the colour image's shape).

    Raises ValueError for a depth image or intrinsics it cannot use.
    """
    return lift_poses(poses, depth, intrinsics, image_size=(image_shape[1], image_shape[0]),
                      min_range=settings.min_range, max_range=settings.max_range,
                      window_scale=settings.window_scale)
