"""Image -> network input: resize to the base height, normalise, pad to the stride."""
import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """Where the image sits in the network input: input pixel = image pixel * scale + (left, top)."""
    scale: float
    top: int
    left: int
    height: int  # padded network input size
    width: int

    def to_image(self, points):
        """Network-input pixel coordinates (..., 2) -> original image coordinates."""
        return (points - np.array([self.left, self.top], np.float32)) / self.scale


def letterbox(image_height, image_width, base_height, stride):
    """The reference's geometry: height scaled to base_height; width padded to >= base_height, both to the stride."""
    scale = base_height / image_height
    scaled_height = base_height
    scaled_width = max(1, round(image_width * scale))
    height = math.ceil(base_height / stride) * stride
    width = math.ceil(max(scaled_width, base_height) / stride) * stride
    return Letterbox(scale=scale, top=(height - scaled_height) // 2, left=(width - scaled_width) // 2,
                     height=height, width=width), (scaled_width, scaled_height)


def prepare(image_bgr, base_height, stride, img_mean=(128, 128, 128), img_scale=1 / 256, pad_value=(0, 0, 0)):
    """8-bit BGR image -> (1, 3, H, W) float32 network input and its Letterbox."""
    box, scaled_size = letterbox(image_bgr.shape[0], image_bgr.shape[1], base_height, stride)
    scaled = cv2.resize(image_bgr, scaled_size, interpolation=cv2.INTER_LINEAR)
    tensor = np.empty((1, 3, box.height, box.width), np.float32)
    tensor[0] = np.asarray(pad_value, np.float32)[:, None, None]
    window = tensor[0, :, box.top:box.top + scaled_size[1], box.left:box.left + scaled_size[0]]
    normalised = (scaled.astype(np.float32) - np.asarray(img_mean, np.float32)) * np.float32(img_scale)
    window[...] = normalised.transpose(2, 0, 1)
    return tensor, box
