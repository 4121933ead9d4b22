"""The bag_eval executable (openpose_ros.bag.command): runs without the ROS Python packages, reports rejected
frames and bad inputs as clear errors, and leaves a readable output bag on Ctrl-C. Real bags of real frames."""
import json
import os
import re
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest

pytest.importorskip('rosbags')

from conftest import DATA, ROOT, TEST_MODEL  # noqa: E402
import openpose_ros.messages.typestore as messages  # noqa: E402
from openpose_ros.bag.report import read_report  # noqa: E402
from openpose_ros.messages.conversions import bgr_to_image_msg  # noqa: E402
from openpose_ros.messages.types import StoreTypes, header as make_header  # noqa: E402
from test_bag_evaluate import PERIOD, T0, WITHOUT_ROS, make_bag, moving_frames, read_bag, run_cli  # noqa: E402
from test_bag_evaluate import model  # noqa: E402,F401  (fixture: the test model with its ONNX export)
from test_image_input_bounds import photo  # noqa: E402,F401  (fixture: the photo as an array)


COCO_MINI = DATA / 'coco' / 'coco-mini'


def test_bag_eval_runs_without_ros_python_packages(model, tmp_path):
    bag = make_bag(tmp_path / 'camera', compressed=True, count=2)
    done = subprocess.run([*WITHOUT_ROS, str(bag), '--weights', str(model), '-o',
                           str(tmp_path / 'out'), '--quiet', '--no-plots'], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = read_report(tmp_path / 'out' / 'report.json')
    assert report['frames']['processed'] == 2 and report['people']['poses'] >= 3


def test_unknown_encoding_rejects_those_frames_with_the_reason(model, tmp_path, capsys):
    store = messages.typestore()
    good = moving_frames(4)
    from rosbags.rosbag2 import Writer
    with Writer(tmp_path / 'camera', version=9) as writer:
        connection = writer.add_connection('/camera/image_raw', messages.IMAGE, typestore=store)
        for index, (stamp, log, frame) in enumerate(good):
            msg = bgr_to_image_msg(frame, make_header(StoreTypes(store), stamp), types=StoreTypes(store))
            if index % 2:
                msg.encoding = 'yuv422_yuy2'
            writer.write(connection, log, bytes(store.serialize_cdr(msg, messages.IMAGE)))
    status = run_cli(tmp_path / 'camera', '--weights', model, '-o', tmp_path / 'out')
    assert status == 1
    report = read_report(tmp_path / 'out' / 'report.json')
    assert report['frames']['processed'] == 2 and report['frames']['rejected'] == 2
    (reason, count), = report['frames']['rejected_reasons'].items()
    assert count == 2 and "unsupported image encoding 'yuv422_yuy2'" in reason
    assert "rejected x2: unsupported image encoding 'yuv422_yuy2'" in capsys.readouterr().out
    output, _ = read_bag(tmp_path / 'out' / 'camera_poses')
    assert len(output['/poses']) == 2


def test_bags_without_images_and_missing_inputs_are_clear_errors(tmp_path, caplog, monkeypatch):
    store = messages.typestore()
    from rosbags.rosbag2 import Writer
    with Writer(tmp_path / 'chatter', version=9) as writer:
        connection = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=store)
        writer.write(connection, T0, bytes(store.serialize_cdr(store.types['std_msgs/msg/String'](data='hi'),
                                                               'std_msgs/msg/String')))
    assert run_cli(tmp_path / 'chatter', '--weights', TEST_MODEL) == 2
    assert 'holds no image topic' in caplog.text and '/chatter (std_msgs/msg/String)' in caplog.text
    assert run_cli(tmp_path / 'chatter', '--weights', TEST_MODEL, '--topic', '/chatter') == 2
    assert 'holds std_msgs/msg/String, not sensor_msgs/msg/Image' in caplog.text
    caplog.clear()
    bag = make_bag(tmp_path / 'camera', count=1)
    assert run_cli(bag, '-o', tmp_path / 'out') == 2
    assert 'no weights given' in caplog.text and 'download' in caplog.text
    assert run_cli(bag, '--weights', tmp_path / 'nothing.pth', '-o', tmp_path / 'out') == 2
    assert f'no weights at {tmp_path / "nothing.pth"}' in caplog.text
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    monkeypatch.setenv('OPENPOSE_ROS_MIRROR', 'http://127.0.0.1:9/models')   # nothing listens there
    assert run_cli(bag, '--weights', 'download', '-o', tmp_path / 'out') == 2
    assert 'could not download http://127.0.0.1:9/models/checkpoint_iter_370000.pth' in caplog.text
    assert not (tmp_path / 'cache' / 'openpose_ros' / 'checkpoint_iter_370000.pth').exists()
    assert run_cli(tmp_path / 'nobag', '--weights', TEST_MODEL) == 2
    assert f'no bag at {tmp_path / "nobag"}' in caplog.text


@pytest.mark.slow
def test_ctrl_c_leaves_a_readable_output_bag_and_says_so_in_the_report(model, tmp_path):
    count = 100
    frames = moving_frames(1)[0][2]
    bag = make_bag(tmp_path / 'camera', 'mcap', compressed=True,
                   frames=[(T0 + i * PERIOD, T0 + i * PERIOD, frames) for i in range(count)])
    command = [*WITHOUT_ROS, str(bag), '--weights', str(model), '-o', str(tmp_path / 'out'), '--no-plots']
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, PYTHONUNBUFFERED='1'))
    os.set_blocking(process.stderr.fileno(), False)
    seen, deadline = b'', time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        seen += process.stderr.read() or b''
        done = [int(n) for n in re.findall(rb'(\d+)/100 \[', seen)]
        if done and max(done) >= 5:
            break
        time.sleep(0.05)
    assert process.poll() is None, f'finished before it could be interrupted: {seen[-500:]!r}'
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 130, stdout
    report = read_report(tmp_path / 'out' / 'report.json')
    assert report['interrupted'] and 'INTERRUPTED' in stdout.decode()
    output, _ = read_bag(tmp_path / 'out' / 'camera_poses')
    processed = report['frames']['processed']
    assert 5 <= processed < count and len(output['/poses']) == len(output['/image_annotated/compressed']) == processed
    assert [messages.stamp_ns(m.header) for _, m in output['/poses']] == [T0 + i * PERIOD for i in range(processed)]


# --- arguments ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('argument,message', [
    (['--end', 'inf'], 'end must be in [0, 1e+09] seconds'),
    (['--end', '1e300'], 'end must be in [0, 1e+09] seconds'),
    (['--start', '1e300'], 'start must be in [0, 1e+09] seconds'),
    (['--start', '-1'], 'start must be in [0, 1e+09] seconds'),
    (['--realtime', '1e308'], 'realtime playback rate must be in [1e-06, 1e+06]'),
    (['--realtime', 'nan'], 'realtime playback rate must be in [1e-06, 1e+06]'),
    (['--max-aspect-ratio', 'nan'], 'max_aspect_ratio must be a finite number, got nan'),
    (['--base-height', '-1'], 'base_height must be in [0, 2048], got -1'),
    (['--upsample-ratio', '0'], 'upsample_ratio must be in [1, 16], got 0'),
])
def test_out_of_range_times_and_rates_exit_2_with_a_message(model, tmp_path, capsys, argument, message):
    bag = make_bag(tmp_path / 'camera', count=2)
    with pytest.raises(SystemExit) as exit_:
        run_cli(bag, '--weights', model, '-o', tmp_path / 'out', *argument)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_bag_eval_rejects_a_strip_frame_with_the_reason_and_goes_on(tmp_path, photo):
    pytest.importorskip('rosbags')
    from openpose_ros.bag import command as bag_eval
    from openpose_ros.formats.image_bags import write_image_bag

    strip = cv2.cvtColor(np.full((1, 200), 100, np.uint8), cv2.COLOR_GRAY2BGR)
    frames = [(1_000_000_000, strip), (2_000_000_000, photo)]
    write_image_bag(tmp_path / 'camera', frames, encoding='mono8')
    status = bag_eval.main([str(tmp_path / 'camera'), '--weights', str(TEST_MODEL), '--backend', 'torch',
                            '-o', str(tmp_path / 'out'), '--no-plots', '--quiet'])
    assert status == 1
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert report['frames']['processed'] == 1 and report['frames']['rejected'] == 1
    (reason, count), = report['frames']['rejected_reasons'].items()
    assert count == 1 and reason == 'aspect ratio too large'
    assert 'has an aspect ratio of 200' in report['per_frame'][0]['reason']
