"""Image and video files by name: the suffixes read as images or videos, a folder's images, and the folder of
real images shipped beside the project."""
import os
from pathlib import Path

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
VIDEO_SUFFIXES = ('.avi', '.mp4', '.mkv', '.mov', '.webm', '.mpg', '.mpeg', '.m4v', '.wmv', '.flv', '.ts')
DATA_VARIABLE = 'OPENPOSE_ROS_DATA'


def is_image_file(path) -> bool:
    """Whether `path` is named as an image (by its suffix, in any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def folder_images(folder) -> list:
    """The image files of `folder` (not its subfolders), sorted by name."""
    return sorted(path for path in Path(folder).iterdir() if path.is_file() and is_image_file(path))


def default_data_root():
    """The folder of real images shipped beside the project (../shared/data), or $OPENPOSE_ROS_DATA; None if absent."""
    candidates = [os.environ.get(DATA_VARIABLE)] if os.environ.get(DATA_VARIABLE) else []
    candidates.append(Path(__file__).resolve().parents[3] / 'shared' / 'data')
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None
