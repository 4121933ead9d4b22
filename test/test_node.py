"""pose_estimation_node's start and end as users meet them: --help, a missing ROS environment, SIGINT (once or
twice, as `ros2 launch` passes a terminal's Ctrl-C on), SIGTERM (also during a stalled download), and lifecycle
transitions and shutdown during a long frame. Real node processes over DDS with the small test model."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from ros_helpers import ROOT, ros_env
from test_pose_estimation import DOMAIN_ID, TWO_PEOPLE, NodeProcess, image_msg, stamp_of

EXIT_WITHIN = 10.0  # seconds from the signal to the end of the process (it used to hang or take a frame's time)


def environment_without_ros():
    """os.environ without the ROS 2 paths that scripts/ros_env.sh adds: only this source tree importable."""
    env = {key: value for key, value in os.environ.items()
           if key not in ('AMENT_PREFIX_PATH', 'LD_LIBRARY_PATH', 'PYTHONPATH', 'ROS_DISTRO')}
    env['PYTHONPATH'] = str(ROOT)
    return env


@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_help_prints_the_usage_without_ros_or_network(flag):
    result = subprocess.run([sys.executable, '-m', 'openpose_ros.ros.node', flag], cwd=ROOT,
                            env=environment_without_ros(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for words in ('usage:', 'poses', 'image_annotated', '/diagnostics', 'README.md', '--params-file'):
        assert words in result.stdout, (words, result.stdout)
    assert result.stderr == '' and 'loading the model' not in result.stdout


def test_the_node_without_the_ros_environment_says_what_to_source():
    result = subprocess.run([sys.executable, '-m', 'openpose_ros.ros.node', '--ros-args', '-p', 'weights:=x'],
                            cwd=ROOT, env=environment_without_ros(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'source scripts/ros_env.sh' in lines[0], result.stderr
    assert 'Traceback' not in result.stderr


def wait_for_poses(client, node, topic_poses, timeout=60):
    client.wait_until(lambda: len(topic_poses) >= 3, timeout, f'poses from {node.name}')


def assert_clean_exit(node, started):
    code, log = node.finish(EXIT_WITHIN + 30)
    seconds = time.monotonic() - started
    assert code == 0, log
    assert 'ERROR' not in log and 'Traceback' not in log, log
    assert seconds < EXIT_WITHIN, f'{seconds:.1f} s to exit:\n{log}'
    return seconds


@pytest.mark.slow
@pytest.mark.ros
def test_sigint_once_or_twice_and_sigterm_end_the_node_cleanly_while_frames_flow(client):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from openpose_ros.msg import Pose2DArray

    ways = {'SIGINT': (signal.SIGINT,), 'SIGINT twice': (signal.SIGINT, signal.SIGINT), 'SIGTERM': (signal.SIGTERM,)}
    nodes = {way: NodeProcess() for way in ways}
    photo = cv2.imread(str(TWO_PEOPLE))
    try:
        for node in nodes.values():
            node.wait_active()
        publishers = [client.node.create_publisher(Image, node.camera_topic, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE)) for node in nodes.values()]
        timer = client.node.create_timer(0.05, lambda: [publisher.publish(image_msg(photo))
                                                        for publisher in publishers])
        for node in nodes.values():
            wait_for_poses(client, node, client.listen(node.poses_topic, Pose2DArray))
        for way, node in nodes.items():
            client.spin(0.3)  # frames in progress
            started = time.monotonic()
            for number in ways[way]:
                node.process.send_signal(number)
                time.sleep(0.2)
            seconds = assert_clean_exit(node, started)
            print(f'\n{way}: exit 0 after {seconds:.1f} s')
        client.node.destroy_timer(timer)
    finally:
        for node in nodes.values():
            node.kill()


@pytest.fixture
def stalled_server():
    """A port on 127.0.0.1 that accepts connections and never answers (a mirror that hangs)."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(8)
    accepted, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(5)
    for connection in accepted:
        connection.close()
    server.close()


@pytest.mark.slow
@pytest.mark.ros
def test_sigterm_during_a_stalled_download_ends_the_node(client, stalled_server, tmp_path):
    port, accepted = stalled_server
    env = ros_env(DOMAIN_ID, XDG_CACHE_HOME=tmp_path / 'cache', OPENPOSE_ROS_MIRROR=f'http://127.0.0.1:{port}')
    node = NodeProcess(weights='download', env=env)
    try:
        deadline = time.monotonic() + 180  # python, torch and rclpy start slowly on a busy machine
        while not accepted and node.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert accepted, f'the node did not connect to the mirror:\n{node.log}'
        time.sleep(0.5)
        started = time.monotonic()
        node.process.send_signal(signal.SIGTERM)
        assert_clean_exit(node, started)
    finally:
        node.kill()


@pytest.mark.slow
@pytest.mark.ros
def test_deactivate_and_shutdown_do_not_wait_for_a_long_frame_and_diagnostics_go_on(client):
    """At base height 2048 a frame of three photos side by side takes seconds: deactivate returns before it ends,
    /diagnostics keeps coming meanwhile, its poses are not published, and SIGINT during such a frame exits at
    once."""
    from diagnostic_msgs.msg import DiagnosticArray

    from openpose_ros.msg import Pose2DArray

    # ONNX Runtime fp32: a frame of many seconds (OpenVINO bf16, auto's choice on CPUs with bf16, is faster)
    node = NodeProcess('-p', 'base_height:=2048', '-p', 'backend:=onnx', '-p', 'diagnostics_period:=0.5')
    node.wait_active()
    try:
        photo = cv2.imread(str(TWO_PEOPLE))
        wide = np.hstack([photo, photo, photo])  # about 6 s a frame on a quiet machine at this base height
        poses = client.listen(node.poses_topic, Pose2DArray)
        diagnostics = client.listen('/diagnostics', DiagnosticArray)
        client.wait_for_publisher(node.poses_topic)

        def ours():
            return [arrival for arrival, msg in diagnostics
                    if any(status.name.startswith(node.name.lstrip('/')) for status in msg.status)]

        frame = image_msg(wide)
        client.publish(node.camera_topic, frame)
        client.diagnostics(node.name, condition=lambda status: status['frame_in_progress'] == 'true')
        started = time.monotonic()
        assert client.change_state(node.name, 'deactivate')
        deactivate_seconds = time.monotonic() - started
        status = client.diagnostics(node.name, after=time.time())
        print(f'\ndeactivate took {deactivate_seconds:.1f} s; state {status["state"]}, '
              f'frame in progress {status["frame_in_progress"]}')
        assert deactivate_seconds < 5.0
        assert status['state'] == 'inactive' and status['frame_in_progress'] == 'true', status
        before = len(ours())
        client.spin(1.5)
        assert len(ours()) - before >= 2, 'diagnostics go on while the frame runs'
        assert stamp_of(frame) not in {stamp_of(msg) for _, msg in poses}

        assert client.change_state(node.name, 'activate')
        frame = image_msg(wide)
        client.publish(node.camera_topic, frame)
        client.diagnostics(node.name, after=time.time(), timeout=120,
                           condition=lambda status: status['frame_in_progress'] == 'true' and status[
                               'state'] == 'active')
        started = time.monotonic()
        node.process.send_signal(signal.SIGINT)
        assert_clean_exit(node, started)
    finally:
        node.kill()
