"""Images and videos on disk: which files are images or videos, reading them as 8-bit BGR frames (a video's with
its own stamps), and writing annotated frames as a video. Shared by the `infer` executable and the demo.
"""
import logging
from pathlib import Path
from typing import Iterator, List, Tuple

import cv2
import numpy as np

from openpose_ros.inference.image import read_pixels, to_bgr8
from openpose_ros.runtime.quantize import IMAGE_SUFFIXES

LOG = logging.getLogger(__name__)
VIDEO_SUFFIXES = ('.avi', '.mp4', '.mkv', '.mov', '.webm', '.mpg', '.mpeg', '.m4v', '.wmv', '.flv', '.ts')
VIDEO_OUTPUTS = (('.mp4', 'mp4v'), ('.avi', 'MJPG'))  # (suffix, codec), in order of preference


def read_image(path) -> np.ndarray:
    """An image file -> 8-bit BGR array; ValueError or FileNotFoundError, naming the file and saying why it
    cannot be used."""
    pixels = read_pixels(path)
    try:
        return to_bgr8(pixels)
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from error


def folder_images(folder) -> List[Path]:
    """The image files of a folder (by suffix, not recursive), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def video_frames(capture, fps: float) -> Iterator[Tuple[int, float, np.ndarray]]:
    """Yields (index, stamp in seconds, frame) from an opened capture; stamps from the video's own time stamps
    (CAP_PROP_POS_MSEC), or index / fps when the container gives none that advance."""
    index, previous, from_index = 0, None, False
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        msec = capture.get(cv2.CAP_PROP_POS_MSEC)
        if not from_index and index > 0 and not msec > previous:
            LOG.warning('the video has no usable time stamps from frame %d on; using frame index / %.3g fps',
                        index, fps)
            from_index = True
        stamp = index / fps if from_index else msec / 1000.0
        previous = msec
        yield index, stamp, frame
        index += 1


def annotated_video_name(stem: str, suffix: str) -> str:
    """The name of the annotated video of the video named `stem`."""
    return f'{stem}_poses{suffix}'


def open_writer(output: Path, stem: str, fps: float, size: Tuple[int, int]):
    """An mp4 writer (mp4v), or an avi/MJPG one where mp4 cannot be written; returns (writer, path)."""
    for suffix, codec in VIDEO_OUTPUTS:
        path = Path(output) / annotated_video_name(stem, suffix)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
        if writer.isOpened():
            return writer, path
        writer.release()
        path.unlink(missing_ok=True)
        LOG.warning('cannot write %s video here; trying the next format', suffix)
    raise RuntimeError(f'OpenCV can write neither mp4 nor avi/MJPG video in {output}')
