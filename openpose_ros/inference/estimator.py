"""Image -> network input -> maps -> poses, with one backend (openpose_ros.inference.pipeline adds tracks and
smoothing over a stream).

Free of torch: it runs whatever backend it is given.
"""
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import MappingProxyType
from typing import Any, Dict, List

import cv2
import numpy as np

from openpose_ros.inference.decode import (DecoderConfig, candidate_peaks, group, poses_to_arrays, refine_peaks,
                                           score_limbs, suppress)
from openpose_ros.inference.image import ImageLike, to_bgr8
from openpose_ros.inference.preprocess import (DEFAULT_MAX_ASPECT_RATIO, ChannelValues, Letterbox, check_base_height,
                                               check_max_aspect_ratio, prepare)
from openpose_ros.pose import Pose
from openpose_ros.runtime.backends import Backend

STAGES = ('preprocess', 'network', 'upsample', 'keypoints', 'grouping', 'tracking', 'smoothing')


@contextmanager
def timed(timings: Dict[str, float], stage: str) -> Iterator[None]:
    """Adds the milliseconds its block takes to timings[stage]."""
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1e3


class PoseEstimator:
    """Turns images into poses with one backend; stateless from frame to frame (but for reused buffers).

    `timings` holds the milliseconds each stage took in the last call. Images more than `max_aspect_ratio` times
    wider than high (or higher than wide) raise openpose_ros.inference.image.ImageRejected before any work.
    """

    def __init__(self, backend: Backend, stride: int, base_height: int = 256,
                 img_mean: ChannelValues = (128, 128, 128), img_scale: float = 1 / 256,
                 pad_value: ChannelValues = (0, 0, 0), scales: Sequence[float] = (1.0,),
                 decoder: DecoderConfig = DecoderConfig(), max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO) -> None:
        """`backend` runs the network; `stride` is its output stride; the input is `base_height` pixels high
        (times each of `scales`), normalised as (pixel - img_mean) * img_scale and padded with `pad_value`;
        `decoder` holds the decoder's thresholds."""
        check_base_height(base_height)
        if not scales or min(scales) <= 0:
            raise ValueError(f'scales must be positive numbers, got {scales}')
        self.backend = backend
        self.stride = stride
        self.base_height = base_height
        self.normalisation: Dict[str, Any] = dict(img_mean=img_mean, img_scale=img_scale, pad_value=pad_value)
        self.scales = tuple(scales)
        self.max_aspect_ratio = check_max_aspect_ratio(max_aspect_ratio)
        self.decoder = decoder
        self.timings: Dict[str, float] = {}
        self._inputs: Dict[float, np.ndarray] = {}  # scale -> the network input array, reused from frame to frame

    @property
    def network_inputs(self) -> Mapping[float, np.ndarray]:
        """The network input array of each scale, reused from frame to frame (read-only view)."""
        return MappingProxyType(self._inputs)

    def _timed(self, stage: str) -> AbstractContextManager[None]:
        return timed(self.timings, stage)

    def maps(self, image: ImageLike) -> tuple[np.ndarray, np.ndarray, Letterbox]:
        """Heatmaps (19, H, W) and PAFs (38, H, W) at the network stride, and the geometry of the first scale.

        With several scales, every scale's maps are resampled onto the first scale's grid and averaged.
        """
        self.timings = {}
        image = to_bgr8(image)
        first, *others = self.scales
        averaged, reference, heatmap_channels = self._maps_at(image, first)
        for scale in others:
            maps, box, _ = self._maps_at(image, scale)
            with self._timed('upsample'):
                averaged = averaged + resample(maps, box, reference, self.stride)
        averaged /= len(self.scales)
        return averaged[:heatmap_channels], averaged[heatmap_channels:], reference

    def _maps_at(self, image: np.ndarray, scale: float) -> tuple[np.ndarray, Letterbox, int]:
        """The heatmaps and PAFs of one scale stacked (57, H, W), its geometry, and the number of heatmaps."""
        with self._timed('preprocess'):
            batch, box = prepare(image, round(self.base_height * scale), self.stride, **self.normalisation,
                                 out=self._inputs.get(scale), max_aspect_ratio=self.max_aspect_ratio)
            self._inputs[scale] = batch
        with self._timed('network'):
            heatmaps, pafs = self.backend.run(batch)
        return np.concatenate([heatmaps[0], pafs[0]]), box, heatmaps.shape[1]

    def detect(self, image: ImageLike, upsample_ratio: int = 4) -> List[Pose]:
        """The poses in `image`, in its pixel coordinates, without track ids (id -1 until a tracker gives one)."""
        if upsample_ratio < 1 or upsample_ratio > 16:
            raise ValueError(f'upsample_ratio must be in [1, 16], got {upsample_ratio}')
        heatmaps, pafs, box = self.maps(image)
        return self.decode(heatmaps, pafs, box, upsample_ratio)

    def decode(self, heatmaps: np.ndarray, pafs: np.ndarray, box: Letterbox, upsample_ratio: int = 4) -> List[Pose]:
        """Maps in the network-input geometry `box` -> `Pose` objects in original image coordinates."""
        with self._timed('keypoints'):
            candidates = candidate_peaks(heatmaps, self.decoder)
        with self._timed('upsample'):
            xy, scores = refine_peaks(heatmaps, *candidates, upsample_ratio)
        with self._timed('keypoints'):
            peaks = suppress(xy, scores, candidates[2], self.decoder)
        with self._timed('grouping'):
            poses, scores = group(peaks, *score_limbs(peaks, pafs, self.decoder), config=self.decoder)
            keypoints, keypoint_scores, pose_scores = poses_to_arrays(peaks, poses, scores, self.stride)
            found = keypoints[..., 0] >= 0
            # A keypoint found in the padding left of or above the image sits on its edge, never at x < 0 (missing).
            keypoints[found] = np.maximum(box.to_image(keypoints[found]), 0.0)
            return [Pose(k, c, s) for k, c, s in zip(keypoints, pose_scores, keypoint_scores)]


def resample(maps: np.ndarray, source: Letterbox, target: Letterbox, stride: int) -> np.ndarray:
    """Maps of the geometry `source` resampled onto the map grid of the geometry `target` (bilinear)."""
    # target map pixel -> target input pixel -> image pixel -> source input pixel -> source map pixel
    half = stride / 2 - 0.5
    ratio = source.scale / target.scale
    a = ratio
    b = (half - target.left) * ratio / stride + (source.left - half) / stride
    c = (half - target.top) * ratio / stride + (source.top - half) / stride
    affine = np.array([[a, 0, b], [0, a, c]], np.float32)
    size = (target.width // stride, target.height // stride)
    channels = [cv2.warpAffine(np.ascontiguousarray(maps[i:i + 4].transpose(1, 2, 0)), affine, size,
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
                for i in range(0, len(maps), 4)]
    return np.concatenate([c.reshape(size[1], size[0], -1).transpose(2, 0, 1) for c in channels])
