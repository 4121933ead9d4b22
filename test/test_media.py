"""Images and videos on disk: suffixes, a folder's images, reading, a real video's frame stamps, writing video."""
import cv2
import numpy as np
import pytest

from conftest import PHOTO, VIDEO
from openpose_ros.formats.media import (
    DATA_VARIABLE, annotated_video_name, default_data_root, folder_images, is_image_file, open_writer, read_image,
    video_frames)


def test_images_are_known_by_their_suffix_in_any_case():
    assert all(is_image_file(name) for name in ('a.jpg', 'b.JPEG', 'c.png', 'd.Tiff', 'e.webp'))
    assert not any(is_image_file(name) for name in ('vtest.avi', 'notes.txt', 'jpg', 'photo.jpg.part'))


def test_folder_images_are_the_image_files_of_the_folder_sorted_by_name(tmp_path):
    photo = cv2.imread(str(PHOTO))
    for name in ('b.png', 'a.JPG', 'c.jpg'):
        cv2.imwrite(str(tmp_path / name), photo) if name != 'a.JPG' else (tmp_path / name).write_bytes(
            PHOTO.read_bytes())
    (tmp_path / 'notes.txt').write_text('not an image')
    (tmp_path / 'inner').mkdir()
    cv2.imwrite(str(tmp_path / 'inner' / 'd.png'), photo)
    (tmp_path / 'folder.jpg').mkdir()  # named as an image, but a folder
    assert [path.name for path in folder_images(tmp_path)] == ['a.JPG', 'b.png', 'c.jpg']


def test_read_image_gives_bgr8_or_names_the_file_that_cannot_be_used(tmp_path):
    image = read_image(PHOTO)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert np.array_equal(image, cv2.imread(str(PHOTO)))
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(PHOTO.read_bytes()[:200])
    with pytest.raises(ValueError, match='broken.jpg'):
        read_image(broken)
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / 'missing.png')


def test_video_frames_are_stamped_by_the_video_s_own_clock():
    capture = cv2.VideoCapture(str(VIDEO))
    fps = capture.get(cv2.CAP_PROP_FPS)
    try:
        frames = []
        for index, stamp, frame in video_frames(capture, fps):
            frames.append((index, stamp, frame.shape))
            if index == 9:
                break
    finally:
        capture.release()
    assert [index for index, _, _ in frames] == list(range(10))
    assert {shape for _, _, shape in frames} == {(576, 768, 3)}
    stamps = np.array([stamp for _, stamp, _ in frames])
    assert stamps[0] == pytest.approx(0.0, abs=1e-6)
    assert np.diff(stamps) == pytest.approx(1.0 / fps, rel=1e-3)


def test_a_written_annotated_video_reads_back(tmp_path):
    frame = cv2.resize(cv2.imread(str(PHOTO)), (320, 240))
    writer, path = open_writer(tmp_path, 'walk', 10.0, (320, 240))
    try:
        for _ in range(3):
            writer.write(frame)
    finally:
        writer.release()
    assert path.name in (annotated_video_name('walk', '.mp4'), annotated_video_name('walk', '.avi'))
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == (240, 320, 3)


def test_the_data_root_can_be_moved_by_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_VARIABLE, str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv(DATA_VARIABLE)
    beside = default_data_root()  # the shared/data folder beside the project, where there is one
    assert beside is None or (beside / 'video' / VIDEO.name).is_file()
    monkeypatch.setenv(DATA_VARIABLE, str(tmp_path / 'missing'))
    assert default_data_root() == beside, 'a variable naming no folder is passed by'
