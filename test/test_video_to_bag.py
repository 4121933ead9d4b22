"""video_to_bag (openpose-video-to-bag, ros2 run openpose_ros video_to_bag): a real video into a real bag, read
back with the package's bag reader (rosbags)."""
import subprocess
import sys

import pytest

from conftest import VIDEO
from openpose_ros.cli.video_to_bag import main
from openpose_ros.formats.bag_reader import BagInput, decode
from openpose_ros.messages.typestore import COMPRESSED_IMAGE, IMAGE, typestore


def read_back(path):
    with BagInput(path, typestore()) as bag:
        (topic,) = bag.image_topics()
        return topic, [(frame.stamp_ns, decode(frame).shape) for frame in bag.frames(topic)]


@pytest.mark.parametrize('storage, compressed', [('sqlite3', False), ('mcap', True)])
def test_a_video_becomes_a_bag_of_stamped_frames(tmp_path, storage, compressed):
    output = tmp_path / 'walk'
    argv = [str(VIDEO), str(output), '--storage', storage, '--max-frames', '6', '--fps', '10', '--topic', '/cam/image']
    assert main(argv + (['--compressed'] if compressed else [])) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ['walk'], 'no temporary is left beside the bag'
    topic, frames = read_back(output)
    assert topic.name == ('/cam/image/compressed' if compressed else '/cam/image')
    assert topic.msgtype == (COMPRESSED_IMAGE if compressed else IMAGE)
    assert len(frames) == 6
    stamps = [stamp for stamp, _ in frames]
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [100_000_000] * 5, 'stamps at the given rate'
    assert {shape for _, shape in frames} == {(576, 768, 3)}  # vtest.avi's frames


def test_an_existing_output_or_a_missing_video_is_a_one_line_error(tmp_path, caplog):
    existing = tmp_path / 'bag'
    existing.mkdir()
    (existing / 'mine.txt').write_text('user data')
    assert main([str(VIDEO), str(existing)]) == 2
    assert (existing / 'mine.txt').read_text() == 'user data' and len(list(existing.iterdir())) == 1
    assert main([str(tmp_path / 'missing.avi'), str(tmp_path / 'out')]) == 2
    assert not (tmp_path / 'out').exists()
    not_a_video = tmp_path / 'notes.avi'
    not_a_video.write_text('not a video')
    assert main([str(not_a_video), str(tmp_path / 'out')]) == 2
    assert not (tmp_path / 'out').exists()
    errors = [record.getMessage() for record in caplog.records if record.levelname == 'ERROR']
    assert len(errors) == 3 and 'exists' in errors[0] and 'no such video' in errors[1] and 'video' in errors[2]


def test_console_script_has_help():
    run = subprocess.run([sys.executable, '-m', 'openpose_ros.cli.video_to_bag', '--help'], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and '--storage' in run.stdout and 'ros2 bag play' in run.stdout
