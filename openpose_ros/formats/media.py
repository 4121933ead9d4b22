"""Images and videos on disk: which files are images or videos (by suffix), a folder's images, reading them as
8-bit BGR frames (a video's with its own stamps), writing annotated frames as a video, and the folder of real
images shipped beside the project. Shared by the `infer` executable, the demo, the video publisher and
calibration."""
import logging
import os
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np

from openpose_ros.inference.image import read_pixels, to_bgr8

LOG = logging.getLogger(__name__)
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
VIDEO_SUFFIXES = ('.avi', '.mp4', '.mkv', '.mov', '.webm', '.mpg', '.mpeg', '.m4v', '.wmv', '.flv', '.ts')
VIDEO_OUTPUTS = (('.mp4', 'mp4v'), ('.avi', 'MJPG'))  # (suffix, codec), in order of preference
DATA_VARIABLE = 'OPENPOSE_ROS_DATA'


def is_image_file(path) -> bool:
    """Whether `path` is named as an image (by its suffix, in any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def folder_images(folder) -> List[Path]:
    """The image files of `folder` (not its subfolders), sorted by name."""
    return sorted(path for path in Path(folder).iterdir() if path.is_file() and is_image_file(path))


def default_data_root() -> Optional[Path]:
    """The folder of real images shipped beside the project (../shared/data), or $OPENPOSE_ROS_DATA; None if
    absent."""
    candidates = [os.environ.get(DATA_VARIABLE)] if os.environ.get(DATA_VARIABLE) else []
    candidates.append(Path(__file__).resolve().parents[3] / 'shared' / 'data')
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def read_image(path) -> np.ndarray:
    """An image file -> 8-bit BGR array; ValueError or FileNotFoundError, naming the file and saying why it
    cannot be used."""
    pixels = read_pixels(path)
    try:
        return to_bgr8(pixels)
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from error


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
