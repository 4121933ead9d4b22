"""Image -> network input: resize to the base height, normalise, pad to the stride."""
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from openpose_ros.inference.image import ImageRejected

# The network input is base_height high and as wide as the image scaled to that height: a 1x200 strip would
# make it 51200 pixels wide (gigabytes). Images whose longer side exceeds this many times the shorter one are
# refused. 10 lets panoramas through at full resolution (360 degrees around by 36 high is 10:1) and bounds the
# input to 10 times a square frame's (2560x256 at base height 256).
DEFAULT_MAX_ASPECT_RATIO = 10.0
MAX_ASPECT_RATIO_RANGE = (1.0, 32.0)
# Memory grows with the square of base_height: one square frame at 2048 (8 times the published model's 256,
# people a few pixels tall in a 4K frame are found) takes about 1 GiB more than at 256, at 4096 about 4 GiB
# (the test model on torch CPU, maps upsampled 4x). The node, the executables, the estimator and saved models'
# metadata all accept this one range.
BASE_HEIGHT_RANGE = (32, 2048)

# One value for all channels, or one per channel (B, G, R): img_mean and pad_value.
ChannelValues = float | Sequence[float]


@dataclass(frozen=True)
class Letterbox:
    """Where the image sits in the network input: input pixel = image pixel * scale + (left, top)."""
    scale: float
    top: int
    left: int
    height: int  # padded network input size
    width: int

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Network-input pixel coordinates (..., 2) -> original image coordinates."""
        return (points - np.array([self.left, self.top], np.float32)) / self.scale


def letterbox(image_height: int, image_width: int, base_height: int, stride: int
              ) -> tuple[Letterbox, tuple[int, int]]:
    """The reference's geometry: height scaled to base_height; width padded to >= base_height, both to the stride.

    Returns the Letterbox and the (width, height) the image is resized to.
    """
    scale = base_height / image_height
    scaled_height = base_height
    scaled_width = max(1, round(image_width * scale))
    height = math.ceil(base_height / stride) * stride
    width = math.ceil(max(scaled_width, base_height) / stride) * stride
    return Letterbox(scale=scale, top=(height - scaled_height) // 2, left=(width - scaled_width) // 2,
                     height=height, width=width), (scaled_width, scaled_height)


def check_base_height(base_height: int) -> int:
    """`base_height` when it is an integer in BASE_HEIGHT_RANGE, else ValueError."""
    low, high = BASE_HEIGHT_RANGE
    if not isinstance(base_height, numbers.Integral) or isinstance(base_height, bool) \
            or not low <= base_height <= high:
        raise ValueError(f'base_height must be an integer in [{low}, {high}], not {base_height!r}')
    return base_height


def check_max_aspect_ratio(value: float) -> float:
    """`value` as a float when it is a valid max_aspect_ratio, else ValueError."""
    low, high = MAX_ASPECT_RATIO_RANGE
    if not low <= value <= high:
        raise ValueError(f'max_aspect_ratio must be in [{low:g}, {high:g}], got {value!r}')
    return float(value)


def check_aspect_ratio(image_height: int, image_width: int, max_aspect_ratio: float) -> None:
    """ImageRejected when the image's longer side is more than max_aspect_ratio times its shorter side."""
    ratio = max(image_height, image_width) / max(1, min(image_height, image_width))
    if ratio > max_aspect_ratio:
        raise ImageRejected('aspect ratio', f'aspect ratio too large: the image ({image_width}x{image_height}) has '
                                            f'an aspect ratio of {ratio:.3g}, more than the {max_aspect_ratio:g} '
                                            'accepted (max_aspect_ratio)')


def prepare(image_bgr: np.ndarray, base_height: int, stride: int, img_mean: ChannelValues = (128, 128, 128),
            img_scale: float = 1 / 256, pad_value: ChannelValues = (0, 0, 0), out: np.ndarray | None = None,
            max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO) -> tuple[np.ndarray, Letterbox]:
    """8-bit BGR image -> (1, 3, H, W) float32 network input and its Letterbox.

    ImageRejected, before anything is allocated, for an image more than `max_aspect_ratio` times wider than high
    (or higher than wide): the input's width grows with the image's aspect ratio.

    `img_mean` and `pad_value` are per channel (or one value for all). The input is written into `out` when it
    has the right shape, and normalised straight into it: a video's frames reuse one array instead of
    page-faulting fresh megabytes each, which costs more than the arithmetic.
    """
    check_aspect_ratio(image_bgr.shape[0], image_bgr.shape[1], max_aspect_ratio)
    box, scaled_size = letterbox(image_bgr.shape[0], image_bgr.shape[1], base_height, stride)
    scaled = cv2.resize(image_bgr, scaled_size, interpolation=cv2.INTER_LINEAR)
    shape = (1, 3, box.height, box.width)
    tensor = out if out is not None and out.shape == shape and out.dtype == np.float32 else np.empty(shape, np.float32)
    rows = slice(box.top, box.top + scaled_size[1])
    columns = slice(box.left, box.left + scaled_size[0])
    pad = _per_channel(pad_value)[:, None, None]
    tensor[0, :, :rows.start], tensor[0, :, rows.stop:] = pad, pad
    tensor[0, :, :, :columns.start], tensor[0, :, :, columns.stop:] = pad, pad
    window = tensor[0, :, rows, columns]
    for channel, mean in enumerate(_per_channel(img_mean)):
        np.subtract(scaled[:, :, channel], mean, out=window[channel], dtype=np.float32)
    window *= np.float32(img_scale)
    return tensor, box


def _per_channel(values: ChannelValues) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, np.float32), (3,))
