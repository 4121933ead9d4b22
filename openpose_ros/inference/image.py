"""Images in: validation and conversion of whatever users pass to 8-bit BGR, and a small `Image` wrapper."""
import os
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import ArrayLike

# Bytes-like encoded image data: bytes, bytearray, memoryview or a uint8 numpy array.
BytesLike = bytes | bytearray | memoryview | np.ndarray

# Larger images are refused rather than risking memory exhaustion on a robot.
MAX_PIXELS = 16384 * 16384
# Float pixels are taken as [0, 1]; this much beyond (one 8-bit grey level) is rounding, more is another scale.
FLOAT_TOLERANCE = 1 / 255


class ImageRejected(ValueError):
    """An input image the pipeline refuses. `cause` is a short fixed name of the reason (e.g. 'aspect ratio',
    'truncated JPEG'), for counting refusals by kind; the message says what is wrong with this image."""

    def __init__(self, cause: str, message: str):
        super().__init__(message)
        self.cause = cause


def check_pixel_count(width: int, height: int, what: str = 'the image') -> None:
    """ImageRejected when an image of width x height pixels is empty or larger than MAX_PIXELS."""
    if height <= 0 or width <= 0:
        raise ImageRejected('empty', f'{what} is empty ({width}x{height} pixels)')
    if height * width > MAX_PIXELS:
        raise ImageRejected('too large', f'{what} is too large ({width}x{height}); at most {MAX_PIXELS} pixels '
                                         'are accepted')


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_JPEG_START = b'\xff\xd8'
# JPEG frame headers (SOF0..SOF15, without DHT C4, JPG C8 and DAC CC): they carry the image size.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_SCAN_START = 0xDA
_JPEG_END = b'\xff\xd9'
# Bytes put before a JPEG's end marker to tell a complete scan from a cut one (no 0xFF: no marker among them).
_JPEG_FILLER = (np.arange(1024) % 255).astype(np.uint8)


def _bytes_view(data: BytesLike) -> memoryview:
    """A memoryview of `data`'s bytes; a numpy array's is its `.data` (numpy's stubs type arrays as buffers only
    from Python 3.12 on)."""
    return data.data if isinstance(data, np.ndarray) else memoryview(data)


def compressed_format(data: BytesLike) -> str:
    """'jpeg', 'png' or '' (another or no format), from the first bytes of an encoded image (bytes-like)."""
    data = _bytes_view(data)
    if data[:8] == _PNG_SIGNATURE:
        return 'png'
    if data[:2] == _JPEG_START:
        return 'jpeg'
    return ''


def declared_size(data: BytesLike) -> tuple[int, int] | None:
    """(width, height) that a JPEG or PNG file's header declares, read without decoding; None when `data`
    (bytes-like) is neither, or its header is cut or malformed before the size. Lets a decoder's allocation be
    refused first."""
    data = _bytes_view(data)
    kind = compressed_format(data)
    if kind == 'png':
        # The signature, then the IHDR chunk: length (4), type (4), width (4), height (4), big-endian.
        if len(data) < 24 or data[12:16] != b'IHDR':
            return None
        return int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')
    if kind == 'jpeg':
        return _jpeg_frame_size(data)
    return None


def _jpeg_frame_size(data: memoryview) -> tuple[int, int] | None:
    """The size in the JPEG's first frame header (SOFn), walking the marker segments before the first scan as
    libjpeg does (it skips stray bytes between segments, so this does too)."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF or data[position + 1] == 0xFF:  # a stray byte, or a fill byte before a marker
            position += 1
            continue
        marker = data[position + 1]
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # segments without a length
            position += 2
            continue
        length = int.from_bytes(data[position + 2:position + 4], 'big')
        if marker in _JPEG_FRAME_MARKERS:
            if length < 7 or position + 9 > len(data):
                return None
            height = int.from_bytes(data[position + 5:position + 7], 'big')
            width = int.from_bytes(data[position + 7:position + 9], 'big')
            return width, height
        if marker in (_JPEG_SCAN_START, 0xD8, 0xD9) or length < 2:  # no frame header before the image data
            return None
        position += 2 + length
    return None


def check_declared_size(data: BytesLike, what: str) -> None:
    """ImageRejected when a JPEG or PNG declares an image that check_pixel_count refuses, or no size at all
    (the decoder might find one where this did not), before decoding it."""
    size = declared_size(data)
    if size is None and compressed_format(data):
        raise ImageRejected('corrupt', f'cannot decode {what}: no image size in its header')
    if size is not None:
        try:
            check_pixel_count(*size, what='the image its header declares')
        except ImageRejected as error:
            raise ImageRejected(error.cause, f'cannot decode {what}: {error}') from None


def decode(encoded: np.ndarray, flags: int, what: str, any_format: bool = False) -> np.ndarray:
    """An encoded image (1-D uint8 array) decoded by OpenCV with `flags`; ImageRejected, naming `what`, when it is
    empty, declares more than MAX_PIXELS, is a cut JPEG, or does not decode. Only JPEG and PNG are taken
    unless `any_format`: their headers give the size before decoding; others are decoded under OpenCV's own
    limit (2^30 pixels)."""
    if encoded.size == 0:
        raise ImageRejected('empty', f'empty {what}')
    kind = compressed_format(encoded)
    if not kind and not any_format:
        raise ImageRejected('format', f'cannot decode {what}: neither JPEG nor PNG data (the formats accepted)')
    check_declared_size(encoded, what)
    tail = max(0, encoded.size - 64)
    end = encoded[tail:].tobytes().rfind(_JPEG_END)
    if kind == 'jpeg' and end < 0:
        # OpenCV decodes a cut JPEG into a partly grey image with a warning on stderr only.
        raise ImageRejected('truncated JPEG', f'truncated JPEG: no end-of-image marker in {what}')
    image = cv2.imdecode(encoded, flags)
    if image is None:
        raise ImageRejected('corrupt', f'cannot decode {what}: corrupt or unsupported data')
    if kind == 'jpeg' and _jpeg_cut_short(encoded, tail + end, image, flags):
        raise ImageRejected('truncated JPEG', f'truncated JPEG: its image data ends before the last block '
                                              f'(the rest would be grey) in {what}')
    return image


def _jpeg_cut_short(encoded: np.ndarray, end: int, image: np.ndarray, flags: int) -> bool:
    """True when a JPEG's image data stops before its last block. libjpeg then decodes the missing blocks as
    flat grey (128) and only warns on stderr. Only when the last block is flat grey (rare in photos), the JPEG
    is decoded again with filler bytes put before its end marker (at `end`): a complete scan ignores them, a
    cut one decodes them into the missing blocks, so the two images differ."""
    if image.dtype != np.uint8 or not np.all(image[-8:, -8:] == 128):
        return False
    again = cv2.imdecode(np.concatenate([encoded[:end], _JPEG_FILLER, encoded[end:]]), flags)
    return again is None or not np.array_equal(again, image)


def read_pixels(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file's pixels as OpenCV decodes them, bit depth and channels kept. FileNotFoundError or
    ValueError, naming the file and saying why, when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'no image file at {path}')
    if path.stat().st_size == 0:
        raise ValueError(f'{path} is an empty file')
    return decode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED, str(path), any_format=True)


class Image:
    """An image stored channels-first (C, H, W), as OpenDR's `Image`; `.opencv()` gives (H, W, C) BGR."""

    def __init__(self, data: ArrayLike) -> None:
        """`data`: (H, W), (H, W, C) or, when its first axis has 1, 3 or 4 entries and its last not, (C, H, W)."""
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
    def open(cls, path: str | os.PathLike[str]) -> 'Image':
        """Reads an image file (any format OpenCV reads), keeping its bit depth and channels."""
        return cls(read_pixels(path))

    def numpy(self) -> np.ndarray:
        """The pixels as a (C, H, W) array, not a copy: changing it changes the Image."""
        return self._chw

    def opencv(self) -> np.ndarray:
        """A new (H, W, C) array: the caller may draw on it without changing this Image."""
        return self._hwc().copy()

    def _hwc(self) -> np.ndarray:
        """(H, W, C) view of the pixels, for reading only."""
        return self._chw.transpose(1, 2, 0)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the pixels, channels first: (C, H, W)."""
        return self._chw.shape


# What the pipeline takes as an image (see to_bgr8).
ImageLike = np.ndarray | Image


def to_bgr8(image: ImageLike) -> np.ndarray:
    """Any supported image (numpy HxW, HxWx1/3/4 of uint8/uint16/float, or `Image`) -> contiguous HxWx3 uint8 BGR.

    Raises ImageRejected (a ValueError) with the reason for anything else.
    """
    data = image._hwc() if isinstance(image, Image) else np.asarray(image)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3 or data.shape[2] not in (1, 3, 4):
        raise ImageRejected('shape', f'expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {data.shape}')
    check_pixel_count(data.shape[1], data.shape[0])
    data = _to_uint8(data)
    if data.shape[2] == 1:
        return cv2.cvtColor(data, cv2.COLOR_GRAY2BGR)
    if data.shape[2] == 4:
        return cv2.cvtColor(data, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(data)


def _to_uint8(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.uint8:
        return data
    if data.dtype == np.uint16:
        return (data >> 8).astype(np.uint8)
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)):
            raise ImageRejected('not finite', 'the image contains NaN or infinite values')
        # Floating-point images are [0, 1], OpenCV's convention. Other scales (0-255, -1..1) are refused rather
        # than guessed: a guess could change from frame to frame with the content (a dark 0-255 frame fits [0, 1]).
        low, high = float(data.min()), float(data.max())
        if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
            raise ImageRejected('float range', f'float pixel values must be in [0, 1], got {low:g}..{high:g}; '
                                               'divide 0-255 images by 255, or pass them as uint8')
        return (np.clip(data, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ImageRejected('pixel type', f'unsupported pixel type {data.dtype}; use uint8, uint16 or float in [0, 1]')
