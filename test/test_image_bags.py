"""Camera bags from frames and from a real video, read back with the package's bag reader."""
import cv2
import numpy as np
import pytest

from conftest import PHOTO, VIDEO
from openpose_ros.formats.bag_reader import BagInput, decode
from openpose_ros.formats.image_bags import DEFAULT_TOPIC, video_frames, video_to_bag, write_image_bag
from openpose_ros.messages.typestore import COMPRESSED_IMAGE, IMAGE, typestore


def read_back(path):
    with BagInput(path, typestore()) as bag:
        (topic,) = bag.image_topics()
        return topic, [(frame.stamp_ns, frame.log_time_ns, decode(frame)) for frame in bag.frames(topic)]


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_frames_are_written_with_their_stamps_and_pixels(tmp_path, storage):
    photo = cv2.resize(cv2.imread(str(PHOTO)), (160, 120))
    frames = [(1_000_000_000 + i * 50_000_000, np.roll(photo, 10 * i, axis=1)) for i in range(3)]
    assert write_image_bag(tmp_path / 'bag', frames, storage=storage, row_padding=4) == 3
    topic, read = read_back(tmp_path / 'bag')
    assert (topic.name, topic.msgtype) == (DEFAULT_TOPIC, IMAGE)
    assert [(stamp, log) for stamp, log, _ in read] == [(stamp, stamp) for stamp, _ in frames]
    for (_, _, got), (_, want) in zip(read, frames):
        assert np.array_equal(got, want)


def test_compressed_frames_with_their_own_log_times(tmp_path):
    photo = cv2.imread(str(PHOTO))
    frames = [(0, 5_000, photo), (0, 9_000, photo)]  # no header stamps, recorded at the log times
    assert write_image_bag(tmp_path / 'bag', frames, topic='/cam', compressed=True) == 2
    topic, read = read_back(tmp_path / 'bag')
    assert (topic.name, topic.msgtype) == ('/cam/compressed', COMPRESSED_IMAGE)
    assert [log for _, log, _ in read] == [5_000, 9_000]
    assert all(image.shape == photo.shape and np.abs(image.astype(int) - photo).mean() < 5 for _, _, image in read)


def test_video_frames_are_stamped_at_the_rate_every_step_th_one():
    frames = list(video_frames(VIDEO, max_frames=4, fps=10, start_ns=0, step=3))
    assert [stamp for stamp, _ in frames] == [0, 300_000_000, 600_000_000, 900_000_000]
    capture = cv2.VideoCapture(str(VIDEO))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 3)
    ok, fourth = capture.read()
    capture.release()
    assert ok and np.array_equal(frames[1][1], fourth)


def test_a_file_that_is_no_video_is_refused(tmp_path):
    notes = tmp_path / 'notes.avi'
    notes.write_text('not a video')
    with pytest.raises(ValueError, match='notes.avi'):
        list(video_frames(notes))


def test_video_to_bag_writes_the_video_s_frames(tmp_path):
    assert video_to_bag(VIDEO, tmp_path / 'walk', storage='mcap', compressed=True, max_frames=3, fps=5) == 3
    topic, read = read_back(tmp_path / 'walk')
    assert topic.name == DEFAULT_TOPIC + '/compressed'
    assert np.diff([stamp for stamp, _, _ in read]).tolist() == [200_000_000] * 2
    assert {image.shape for _, _, image in read} == {(576, 768, 3)}
