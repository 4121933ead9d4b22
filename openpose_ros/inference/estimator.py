"""Image -> network input -> maps -> poses, with one backend (openpose_ros.inference.pipeline adds tracks and
smoothing over a stream).

Free of torch: it runs whatever backend it is given.
"""
import time
from contextlib import contextmanager
from types import MappingProxyType
from typing import Dict, List

import cv2
import numpy as np

from openpose_ros.inference.decode import (DecoderConfig, candidate_peaks, group, poses_to_arrays, refine_peaks,
                                           score_limbs, suppress)
from openpose_ros.inference.image import to_bgr8
from openpose_ros.inference.preprocess import (DEFAULT_MAX_ASPECT_RATIO, check_base_height, check_max_aspect_ratio,
                                               prepare)
from openpose_ros.pose import Pose

STAGES = ('preprocess', 'network', 'upsample', 'keypoints', 'grouping', 'tracking', 'smoothing')


@contextmanager
def timed(timings: Dict[str, float], stage: str):
    """Adds the milliseconds its block takes to timings[stage]."""
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1e3


class PoseEstimator:
    """Turns images into poses with one backend; stateless from frame to frame (but for reused buffers).

    `timings` holds the milliseconds each stage took in the last call. Images more than `max_aspect_ratio` times
    wider than high (or higher than wide) raise openpose_ros.inference.image.ImageRejected before any work.
    """

    def __init__(self, backend, stride, base_height=256, img_mean=(128, 128, 128), img_scale=1 / 256,
                 pad_value=(0, 0, 0), scales=(1.0,), decoder=DecoderConfig(),
                 max_aspect_ratio=DEFAULT_MAX_ASPECT_RATIO):
        check_base_height(base_height)
        if not scales or min(scales) <= 0:
            raise ValueError(f'scales must be positive numbers, got {scales}')
        self.backend = backend
        self.stride = stride
        self.base_height = base_height
        self.normalisation = dict(img_mean=img_mean, img_scale=img_scale, pad_value=pad_value)
        self.scales = tuple(scales)
        self.max_aspect_ratio = check_max_aspect_ratio(max_aspect_ratio)
        self.decoder = decoder
        self.timings = {}
        self._inputs = {}  # scale -> the network input array, reused from frame to frame

    @property
    def network_inputs(self):
        """The network input array of each scale, reused from frame to frame (read-only view)."""
        return MappingProxyType(self._inputs)

    def _timed(self, stage):
        return timed(self.timings, stage)

    def maps(self, image):
        """Heatmaps (19, H, W) and PAFs (38, H, W) at the network stride, and the geometry of the first scale.

        With several scales, every scale's maps are resampled onto the first scale's grid and averaged.
        """
        self.timings = {}
        image = to_bgr8(image)
        averaged, reference = None, None
        for scale in self.scales:
            with self._timed('preprocess'):
                batch, box = prepare(image, round(self.base_height * scale), self.stride, **self.normalisation,
                                     out=self._inputs.get(scale), max_aspect_ratio=self.max_aspect_ratio)
                self._inputs[scale] = batch
            with self._timed('network'):
                heatmaps, pafs = self.backend.run(batch)
            maps = np.concatenate([heatmaps[0], pafs[0]])
            if reference is None:
                reference, averaged = box, maps
            else:
                with self._timed('upsample'):
                    averaged = averaged + resample(maps, box, reference, self.stride)
        averaged /= len(self.scales)
        return averaged[:heatmaps.shape[1]], averaged[heatmaps.shape[1]:], reference

    def detect(self, image, upsample_ratio: int = 4) -> List[Pose]:
        """The poses in `image`, in its pixel coordinates, without track ids (id -1 until a tracker gives one)."""
        if upsample_ratio < 1 or upsample_ratio > 16:
            raise ValueError(f'upsample_ratio must be in [1, 16], got {upsample_ratio}')
        heatmaps, pafs, box = self.maps(image)
        return self.decode(heatmaps, pafs, box, upsample_ratio)

    def decode(self, heatmaps, pafs, box, upsample_ratio=4):
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


def resample(maps, source, target, stride):
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
