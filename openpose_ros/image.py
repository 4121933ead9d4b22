"""Images in: validation and conversion of whatever users pass to 8-bit BGR, and a small `Image` wrapper."""
from pathlib import Path

import cv2
import numpy as np

# Larger images are refused rather than risking memory exhaustion on a robot.
MAX_PIXELS = 16384 * 16384


def read_pixels(path):
    """An image file's pixels as OpenCV decodes them, bit depth and channels kept. FileNotFoundError or
    ValueError, naming the file and saying why, when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'no image file at {path}')
    if path.stat().st_size == 0:
        raise ValueError(f'{path} is an empty file')
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ValueError(f'{path} is not an image OpenCV can decode (corrupt or unsupported format)')
    return data


class Image:
    """An image stored channels-first (C, H, W), as OpenDR's `Image`; `.opencv()` gives (H, W, C) BGR."""

    def __init__(self, data):
        data = np.asarray(data)
        if data.ndim == 3 and data.shape[0] in (1, 3, 4) and data.shape[2] not in (1, 3, 4):
            self._chw = data
        elif data.ndim == 2:
            self._chw = data[None]
        elif data.ndim == 3:
            self._chw = data.transpose(2, 0, 1)
        else:
            raise ValueError(f'an image must have 2 or 3 dimensions, got shape {data.shape}')

    @classmethod
    def open(cls, path):
        """Reads an image file (any format OpenCV reads), keeping its bit depth and channels."""
        return cls(read_pixels(path))

    def numpy(self):
        return self._chw

    def opencv(self):
        return np.ascontiguousarray(self._chw.transpose(1, 2, 0))

    @property
    def shape(self):
        return self._chw.shape


def to_bgr8(image):
    """Any supported image (numpy HxW, HxWx1/3/4 of uint8/uint16/float, or `Image`) -> contiguous HxWx3 uint8 BGR.

    Raises ValueError with the reason for anything else.
    """
    data = image.opencv() if isinstance(image, Image) else np.asarray(image)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3 or data.shape[2] not in (1, 3, 4):
        raise ValueError(f'expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {data.shape}')
    height, width = data.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f'the image is empty ({height}x{width})')
    if height * width > MAX_PIXELS:
        raise ValueError(f'the image is too large ({width}x{height}); at most {MAX_PIXELS} pixels are accepted')
    data = _to_uint8(data)
    if data.shape[2] == 1:
        return cv2.cvtColor(data, cv2.COLOR_GRAY2BGR)
    if data.shape[2] == 4:
        return cv2.cvtColor(data, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(data)


def _to_uint8(data):
    if data.dtype == np.uint8:
        return data
    if data.dtype == np.uint16:
        return (data >> 8).astype(np.uint8)
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)):
            raise ValueError('the image contains NaN or infinite values')
        # Floating-point images are taken as [0, 1], OpenCV's convention.
        return (np.clip(data, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f'unsupported pixel type {data.dtype}; use uint8, uint16 or float in [0, 1]')
