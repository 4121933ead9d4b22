"""The demo (openpose_ros.ros.demo): the node on a real video through ROS 2, its rate and what it leaves on disk."""
import json
import subprocess
import sys

import cv2
import pytest

from conftest import TEST_MODEL
from ros_helpers import ROOT, SHARED_DATA, pick_domain_id, require_ros, ros_env


@pytest.mark.slow
@pytest.mark.ros
def test_demo_leaves_an_annotated_video_and_the_poses_on_disk(tmp_path):
    """`make demo` on the first frames of the real video, with the test model, every frame processed."""
    from openpose_ros.formats.poses_json import read_document

    require_ros()
    env = ros_env(pick_domain_id())
    result = subprocess.run([sys.executable, '-m', 'openpose_ros.ros.demo', str(SHARED_DATA / 'video' / 'vtest.avi'),
                             '--weights', str(TEST_MODEL), '--output', str(tmp_path), '--max-frames', '15',
                             '--every-frame'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['frames_published'] == summary['frames_processed'] == 15
    assert summary['node_exit_status'] == 0
    capture = cv2.VideoCapture(summary['annotated_video'])
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 15
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (576, 768, 3)
    document = read_document(tmp_path / 'poses.json')
    assert [frame['frame'] for frame in document['frames']] == list(range(15))


def test_the_demo_rate_spans_the_stamps_of_the_processed_frames():
    from openpose_ros.ros.demo import frame_seconds
    from openpose_ros.ros.worker import span_rate

    stamps = [(1700000000 + index // 10, (index % 10) * 100_000_000) for index in range(0, 60, 2)]  # 5 Hz
    assert span_rate([frame_seconds(stamp) for stamp in stamps]) == pytest.approx(5.0)
    assert span_rate([frame_seconds(stamps[0])]) == 0.0
