"""pose_estimation_node as users run it: real node processes, real frames over DDS, the small trained test model.

The node runs as `python -m openpose_ros.ros.node --ros-args --params-file config/pose_estimation.yaml
-p weights:=<test model> -r image:=<camera topic>`; frames come from the video publisher process (or, for bad
messages, from this process) and this process listens to what the node publishes, sets its parameters and
changes its lifecycle state through the node's services, as `ros2 param` and `ros2 lifecycle` would.

The test model (test/models/tiny_coco) was trained on a few COCO photos, so the frames are those photos,
moved and scaled a little from frame to frame (the publisher's --motion); 000000442450.jpg shows two people.
"""
import array
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

import cv2
import numpy as np
import pytest

from conftest import TEST_MODEL
from ros_helpers import ROOT, SHARED_DATA, pick_domain_id, ros_env


DOMAIN_ID = pick_domain_id()
PARAMS_FILE = ROOT / 'config' / 'pose_estimation.yaml'
TRAIN_IMAGES = SHARED_DATA / 'coco' / 'coco-mini' / 'train2017'
TWO_PEOPLE = TRAIN_IMAGES / '000000442450.jpg'
ONE_PERSON = TRAIN_IMAGES / '000000030752.jpg'
START_TIMEOUT = 120.0


# --- processes --------------------------------------------------------------------------------------------------
class NodeProcess:
    """pose_estimation_node in its own process, started as users start it; its output kept in `lines`."""

    def __init__(self, *arguments, weights=TEST_MODEL, env=None):
        # A namespace of its own, so that tests sharing a DDS domain never hear each other's nodes.
        self.namespace = '/test_' + uuid.uuid4().hex[:8]
        self.name = f'{self.namespace}/pose_estimation'      # fully qualified
        self.camera_topic = f'{self.namespace}_camera/image_raw'
        self.poses_topic = f'{self.namespace}/poses'
        self.annotated_topic = f'{self.namespace}/image_annotated'
        command = [sys.executable, '-m', 'openpose_ros.ros.node', '--ros-args', '--params-file', str(PARAMS_FILE),
                   '-p', f'weights:={weights}', '-r', f'image:={self.camera_topic}', '-r', f'__ns:={self.namespace}',
                   *arguments]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env or ros_env(DOMAIN_ID),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    @property
    def log(self):
        return '\n'.join(self.lines)

    def wait_for_line(self, text, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process.poll() is not None:
                self._reader.join(2)
                break
            time.sleep(0.05)
        pytest.fail(f'node {self.name}: no line with {text!r} (exit status {self.process.poll()}):\n{self.log}',
                    pytrace=False)

    def wait_active(self):
        try:
            self.wait_for_line(']: active: ')
        except BaseException:
            self.kill()
            raise

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.finish(10)

    def finish(self, timeout=60):
        """Waits for the process to end by itself; returns (exit status, output)."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        return self.process.returncode, self.log

    def interrupt(self, timeout=30):
        """Ctrl-C; returns (exit status, output)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.finish(timeout)

    def rss_mib(self):
        with open(f'/proc/{self.process.pid}/status') as status:
            for line in status:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024
        return None


class Client:
    """This process's view of the graph: subscriptions that record, publishers, parameter and lifecycle calls."""

    def __init__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('test_client_' + uuid.uuid4().hex[:8], context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received = {}     # topic -> list of (arrival time, message)
        self._publishers = {}
        self._subscriptions = {}

    def close(self):
        import rclpy
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def spin(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def wait_until(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f'timed out after {timeout:g} s waiting for {what}', pytrace=False)
            self.executor.spin_once(timeout_sec=0.05)

    def listen(self, topic, kind):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        if topic not in self._subscriptions:
            self.received[topic] = []
            self._subscriptions[topic] = self.node.create_subscription(
                kind, topic, lambda msg: self.received[topic].append((time.time(), msg)),
                QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
        return self.received[topic]

    def publish_frames(self, topic, source=TWO_PEOPLE, count=30, rate=10.0, motion=15.0, lockstep=None, extra=(),
                       timeout=120):
        """Runs the video publisher process, receiving meanwhile; returns the publisher's summary (with the stamps
        of the frames, in order)."""
        command = [sys.executable, '-m', 'openpose_ros.ros.video_publisher', str(source), '--topic', topic,
                   '--count', str(count), '--rate', str(rate), '--motion', str(motion), '--quiet', *extra]
        if lockstep:
            command += ['--lockstep', lockstep]
        publisher = subprocess.Popen(command, cwd=ROOT, env=ros_env(DOMAIN_ID), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while publisher.poll() is None and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
        if publisher.poll() is None:
            publisher.kill()
        out, err = publisher.communicate()
        if publisher.returncode != 0:
            pytest.fail(f'video publisher failed ({publisher.returncode}):\n{out}\n{err}', pytrace=False)
        return json.loads(out.strip().splitlines()[-1])

    def wait_for_publisher(self, topic, timeout=30):
        self.wait_until(lambda: self.node.count_publishers(topic) > 0, timeout, f'a publisher on {topic}')
        self.spin(0.5)

    def publish(self, topic, msg):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        if topic not in self._publishers:
            self._publishers[topic] = self.node.create_publisher(
                type(msg), topic, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
            self.wait_until(lambda: self._publishers[topic].get_subscription_count() > 0, 30,
                            f'a subscriber on {topic}')
            self.spin(0.5)
        self._publishers[topic].publish(msg)

    def call(self, kind, service, request, timeout=30):
        client = self.node.create_client(kind, service)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                pytest.fail(f'service {service} is not available', pytrace=False)
            future = client.call_async(request)
            self.wait_until(future.done, timeout, f'the answer of {service}')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node_name, **values):
        """{name: (successful, reason)} as `ros2 param set` reports it."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()
                                                    for name, value in values.items()])
        response = self.call(SetParameters, f'{node_name}/set_parameters', request)
        return {name: (result.successful, result.reason) for name, result in zip(values, response.results)}

    def change_state(self, node_name, label):
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        transition = {'deactivate': Transition.TRANSITION_DEACTIVATE,
                      'activate': Transition.TRANSITION_ACTIVATE}[label]
        request = ChangeState.Request(transition=Transition(id=transition))
        return self.call(ChangeState, f'{node_name}/change_state', request, timeout=120).success

    def diagnostics(self, node_name, after=0.0, timeout=10.0, condition=lambda status: True):
        """The node's newest DiagnosticStatus (as a dict) received after `after` (time.time()) that fulfils
        `condition`."""
        from diagnostic_msgs.msg import DiagnosticArray
        messages = self.listen('/diagnostics', DiagnosticArray)
        found = []

        def newest():
            for arrival, msg in reversed(messages):
                if arrival < after:
                    break
                for status in msg.status:
                    if status.name == f'{node_name.lstrip("/")}: pose estimation':
                        values = {kv.key: kv.value for kv in status.values}
                        values.update(level=status.level[0] if isinstance(status.level, bytes) else status.level,
                                      message=status.message)
                        if condition(values):
                            found.append(values)
                            return True
            return False
        self.wait_until(newest, timeout, f'diagnostics of {node_name}')
        return found[-1]


def image_msg(image, stamp=None, frame_id='camera', encoding='bgr8'):
    from std_msgs.msg import Header
    from builtin_interfaces.msg import Time

    from openpose_ros.messages.conversions import bgr_to_image_msg
    header = Header(frame_id=frame_id)
    if stamp is not None:
        header.stamp = Time(sec=int(stamp), nanosec=int(round((stamp % 1) * 1e9)))
    else:
        now = time.time()
        header.stamp = Time(sec=int(now), nanosec=int((now % 1) * 1e9))
    return bgr_to_image_msg(image, header, encoding)


def stamp_of(msg):
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def poses_by_stamp(messages):
    return {stamp_of(msg): msg for _, msg in messages}


def keypoints_of(msg):
    return [np.array([(k.x, k.y) if k.valid else (-1.0, -1.0) for k in pose.keypoints]) for pose in msg.poses]


# --- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def raw_node(client):
    """The node on raw images, as users start it (parameter file, test model, camera remapped)."""
    node = NodeProcess()
    node.wait_active()
    yield node
    node.kill()


@pytest.fixture(scope='module')
def compressed_node(client):
    # Also on simulated time (a played bag's /clock), which test_replay_... drives.
    node = NodeProcess('-p', 'input_type:=compressed', '-p', 'use_sim_time:=true')
    node.wait_active()
    yield node
    node.kill()


# --- the node over DDS -----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.ros
def test_node_publishes_tracked_poses_and_annotated_images_with_the_input_headers(client, raw_node):
    from sensor_msgs.msg import Image

    from openpose_ros.msg import Pose2DArray

    poses = client.listen(raw_node.poses_topic, Pose2DArray)
    annotated = client.listen(raw_node.annotated_topic, Image)
    assert (f'raw images on {raw_node.camera_topic} (best_effort, depth 1) -> {raw_node.poses_topic}, '
            f'{raw_node.annotated_topic}') in raw_node.log
    client.wait_for_publisher(raw_node.poses_topic)
    started = time.time()
    summary = client.publish_frames(raw_node.camera_topic, count=40, rate=10.0, lockstep=raw_node.poses_topic)
    client.spin(1.0)
    sent = [tuple(stamp) for stamp in summary['stamps']]
    got = [msg for arrival, msg in poses if arrival >= started]
    assert [stamp_of(msg) for msg in got] == sent, 'every frame gets its poses, in order, with its own stamp'
    assert {msg.header.frame_id for msg in got} == {'camera'}
    images = [msg for arrival, msg in annotated if arrival >= started]
    assert len(images) >= 10, f'{len(images)} annotated images for 40 frames at 10 Hz'
    assert {stamp_of(msg) for msg in images} <= set(sent) and {msg.header.frame_id for msg in images} == {'camera'}
    first = images[0]
    assert (first.width, first.height, first.encoding) == (640, 425, 'bgr8')

    # The people: poses with most of a body (the test model also finds a few 3-keypoint fragments).
    people = [[pose for pose in msg.poses if sum(k.valid for k in pose.keypoints) >= 8] for msg in got]
    counts = [len(frame) for frame in people]
    ids = [pose.track_id for frame in people for pose in frame]
    print(f'\npeople per frame: {counts}\ntheir track ids: {sorted(set(ids))}\nall poses per frame: '
          f'{[len(msg.poses) for msg in got]}')
    assert sum(count == 2 for count in counts) >= 36, f'the photo shows two people: {counts}'
    # Stable ids: the two people keep their two ids through the 40 moving frames.
    assert len(set(ids)) == 2, f'ids change: {[[pose.track_id for pose in frame] for frame in people]}'
    for msg in got:
        for pose in msg.poses:
            assert pose.track_id >= 0 and 0.0 <= pose.score <= 1.0 and len(pose.keypoints) == 18
            valid = [k for k in pose.keypoints if k.valid]
            assert len(valid) >= 2 and all(0 <= k.x < 640 and 0 <= k.y < 425 for k in valid)


@pytest.mark.slow
@pytest.mark.ros
def test_raw_and_compressed_input_give_the_same_poses(client, raw_node, compressed_node):
    from openpose_ros.msg import Pose2DArray

    # Smoothing depends on the stamps, which differ between the two runs: compare the unsmoothed poses.
    for node in (raw_node, compressed_node):
        assert client.set_parameters(node.name, smooth=False) == {'smooth': (True, '')}
    compressed_topic = compressed_node.camera_topic + '/compressed'
    assert f'compressed images on {compressed_topic}' in compressed_node.log
    results = {}
    for node, extra, topic in ((raw_node, (), raw_node.camera_topic),
                               (compressed_node, ('--compressed', 'png'), compressed_topic)):
        poses = client.listen(node.poses_topic, Pose2DArray)
        client.wait_for_publisher(node.poses_topic)
        summary = client.publish_frames(topic, count=12, rate=10.0, lockstep=node.poses_topic, extra=extra)
        client.spin(0.5)
        by_stamp = poses_by_stamp(poses)
        results[node.name] = [by_stamp[tuple(stamp)] for stamp in summary['stamps']]
    for node in (raw_node, compressed_node):
        assert client.set_parameters(node.name, smooth=True) == {'smooth': (True, '')}
    raw, compressed = results[raw_node.name], results[compressed_node.name]
    assert sum(len(msg.poses) for msg in raw) >= 20
    for frame, (a, b) in enumerate(zip(raw, compressed)):
        assert len(a.poses) == len(b.poses), f'frame {frame}'
        for pose_a, pose_b, points_a, points_b in zip(a.poses, b.poses, keypoints_of(a), keypoints_of(b)):
            assert np.array_equal(points_a < 0, points_b < 0)
            assert np.abs(points_a - points_b).max() < 1e-3
            assert abs(pose_a.score - pose_b.score) < 1e-5


@pytest.mark.slow
@pytest.mark.ros
def test_bad_messages_are_rejected_with_a_warning_and_the_node_goes_on(client, raw_node, compressed_node):
    from sensor_msgs.msg import CompressedImage

    from openpose_ros.msg import Pose2DArray

    photo = cv2.imread(str(ONE_PERSON))

    def bad_raw(**changes):
        msg = image_msg(photo)
        for key, value in changes.items():
            setattr(msg, key, value)
        return msg

    truncated = bad_raw()
    truncated.data = array.array('B', bytes(truncated.data)[:1000])
    raw_cases = [
        (bad_raw(encoding='yuv422'), "unsupported image encoding 'yuv422'"),
        (bad_raw(step=100), 'image step 100 is smaller than a row'),
        (truncated, 'image data is truncated'),
        (bad_raw(height=0, width=0, step=0, data=array.array('B')), 'empty image'),
    ]
    jpeg = cv2.imencode('.jpg', photo)[1].tobytes()
    corrupt = bytearray(jpeg)
    corrupt[200:4000] = os.urandom(3800)
    compressed_cases = [
        (CompressedImage(format='jpeg', data=jpeg[:len(jpeg) // 2]), 'truncated JPEG'),
        (CompressedImage(format='jpeg', data=b'\xff\xd8' + os.urandom(5000) + b'\xff\xd9'), 'cannot decode'),
        (CompressedImage(format='jpeg', data=b''), 'empty compressed image'),
    ]
    for node, cases, topic in ((raw_node, raw_cases, raw_node.camera_topic),
                               (compressed_node, compressed_cases, compressed_node.camera_topic + '/compressed')):
        poses = client.listen(node.poses_topic, Pose2DArray)
        client.wait_for_publisher(node.poses_topic)
        before = int(client.diagnostics(node.name)['frames_rejected'])
        for bad, words in cases:
            client.publish(topic, bad)
            client.spin(0.3)  # the idle worker takes the bad frame at once
            # ... and the next good frame is processed.
            if isinstance(bad, CompressedImage):
                next_good = CompressedImage(format='png', data=cv2.imencode('.png', photo)[1].tobytes())
                next_good.header = image_msg(photo).header
            else:
                next_good = image_msg(photo)
            client.publish(topic, next_good)
            client.wait_until(lambda: stamp_of(next_good) in poses_by_stamp(poses), 30,
                              f'poses of the good frame after {words!r}')
            assert len(poses_by_stamp(poses)[stamp_of(next_good)].poses) >= 1
            node.wait_for_line(words, timeout=5)
        status = client.diagnostics(node.name, after=time.time(), condition=lambda s: int(
            s['frames_rejected']) >= before + len(cases))
        assert int(status['frames_rejected']) == before + len(cases)
        assert status['level'] == 1 and 'rejected' in status['message'], status  # WARN
        warnings = [line for line in node.lines if 'rejected an input frame' in line]
        assert len(warnings) >= len(cases) and all('WARN' in line for line in warnings)
        assert node.process.poll() is None


@pytest.mark.slow
@pytest.mark.ros
def test_parameter_changes_take_effect_and_invalid_values_are_refused(client, raw_node):
    from openpose_ros.msg import Pose2DArray

    poses = client.listen(raw_node.poses_topic, Pose2DArray)
    client.wait_for_publisher(raw_node.poses_topic)

    def run(count=12):
        summary = client.publish_frames(raw_node.camera_topic, count=count, rate=10.0, motion=40.0,
                                        lockstep=raw_node.poses_topic)
        client.spin(0.3)
        by_stamp = poses_by_stamp(poses)
        return [by_stamp[tuple(stamp)] for stamp in summary['stamps'] if tuple(stamp) in by_stamp]

    name = raw_node.name
    # A minimum pose score above every person's (the test model scores them 0.5-0.7) removes them; lowering it
    # brings them back.
    assert sum(len(msg.poses) for msg in run(6)) >= 6
    assert client.set_parameters(name, min_pose_score=0.9) == {'min_pose_score': (True, '')}
    assert sum(len(msg.poses) for msg in run(6)) == 0
    assert client.set_parameters(name, min_pose_score=0.0) == {'min_pose_score': (True, '')}
    assert sum(len(msg.poses) for msg in run(6)) >= 6

    # Smoothing: a very low One Euro cutoff makes the keypoints lag far behind the moving person.
    def movement(messages):
        steps = []
        for a, b in zip(messages, messages[1:]):
            for pose_a, points_a in zip(a.poses, keypoints_of(a)):
                for pose_b, points_b in zip(b.poses, keypoints_of(b)):
                    if pose_a.track_id == pose_b.track_id:
                        both = (points_a[:, 0] >= 0) & (points_b[:, 0] >= 0)
                        steps.append(np.linalg.norm(points_a[both] - points_b[both], axis=1).mean())
        assert steps, 'no person tracked across frames'
        return float(np.mean(steps))

    assert client.set_parameters(name, smooth=False) == {'smooth': (True, '')}
    free = movement(run())
    assert client.set_parameters(name, smooth=True, smoothing_min_cutoff=0.01, smoothing_beta=0.0) == {
        'smooth': (True, ''), 'smoothing_min_cutoff': (True, ''), 'smoothing_beta': (True, '')}
    smoothed = movement(run())
    print(f'\nmean keypoint movement per frame: {free:.1f} px unsmoothed, {smoothed:.1f} px with min_cutoff 0.01')
    assert smoothed < 0.5 * free
    assert all(result[0] for result in client.set_parameters(
        name, smoothing_min_cutoff=0.5, smoothing_beta=0.02).values())

    # Refused, with the reason; the node keeps its values.
    refusals = {
        'peak_threshold': (1.5, 'out of range'),      # the descriptor's range, checked by rclpy
        'smoothing_min_cutoff': (0.0, 'in (0, 1000]'),  # an open end, checked by the node
        'backend': ('torch', 'read-only'),
        'base_height': (512, 'read-only'),
        'upsample_ratio': (0, 'out of range'),
        'input_type': ('compressed', 'read-only'),
    }
    for parameter, (value, words) in refusals.items():
        ((successful, reason),) = client.set_parameters(name, **{parameter: value}).values()
        assert not successful and reason, (parameter, reason)
        assert words.lower() in reason.lower(), (parameter, reason)
        print(f'{parameter}:={value!r} refused: {reason}')
    # A whole number for a double is taken, as `ros2 param set ... smoothing_beta 0` sends it (an integer).
    assert client.set_parameters(name, smoothing_beta=0) == {'smoothing_beta': (True, '')}
    assert client.set_parameters(name, smoothing_beta=0.02) == {'smoothing_beta': (True, '')}
    assert sum(len(msg.poses) for msg in run(4)) >= 4


@pytest.mark.slow
@pytest.mark.ros
def test_a_dead_image_topic_gives_a_diagnostics_warning(client, raw_node):
    assert client.set_parameters(raw_node.name, stale_timeout=1.0) == {'stale_timeout': (True, '')}
    status = client.diagnostics(raw_node.name, after=time.time(), timeout=10,
                                condition=lambda s: s['level'] == 1 and 'no image' in s['message'])
    assert raw_node.camera_topic in status['message']
    assert client.set_parameters(raw_node.name, stale_timeout=5.0) == {'stale_timeout': (True, '')}
    for key in ('frames_received', 'frames_processed', 'frames_dropped', 'frames_rejected', 'processing_rate_hz',
                'latency_ms_mean', 'age_ms_mean', 'backend', 'model', 'input_topic'):
        assert key in status
    from openpose_ros.runtime.selection import choose_backend
    assert status['backend'].startswith(choose_backend(TEST_MODEL).name)  # the runtime auto chose, by name
    assert status['model'] == str(TEST_MODEL)


@pytest.mark.slow
@pytest.mark.ros
def test_deactivating_unloads_the_model_and_activating_reloads_it(client, raw_node):
    from openpose_ros.msg import Pose2DArray

    poses = client.listen(raw_node.poses_topic, Pose2DArray)
    active_rss = raw_node.rss_mib()
    assert client.change_state(raw_node.name, 'deactivate')
    status = client.diagnostics(raw_node.name, after=time.time(), condition=lambda s: s['state'] == 'inactive')
    assert status['model_loaded'] == 'false' and status['backend'] == ''
    inactive_rss = raw_node.rss_mib()
    print(f'\nresident memory: {active_rss:.0f} MiB active, {inactive_rss:.0f} MiB inactive (model freed)')
    assert inactive_rss < active_rss
    # Nobody listens to the camera while inactive.
    assert client.node.count_subscribers(raw_node.camera_topic) == 0
    assert client.change_state(raw_node.name, 'activate')
    client.diagnostics(raw_node.name, after=time.time(), condition=lambda s: s['model_loaded'] == 'true')
    summary = client.publish_frames(raw_node.camera_topic, count=3, rate=10.0, lockstep=raw_node.poses_topic)
    client.spin(0.3)
    by_stamp = poses_by_stamp(poses)
    assert all(tuple(stamp) in by_stamp for stamp in summary['stamps'])


@pytest.mark.slow
@pytest.mark.ros
def test_replay_on_simulated_time_gives_the_poses_of_live_frames_with_the_same_stamps(client, compressed_node):
    """Tracking and smoothing run on the images' stamps: the same frames with the same stamp steps give the same
    smoothed, tracked poses, whatever the wall clock did; a bag starting over (time going back) restarts them."""
    from builtin_interfaces.msg import Time
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import Header

    from openpose_ros.msg import Pose2DArray
    from openpose_ros.messages.conversions import compressed_image_msg
    from openpose_ros.ros.video_publisher import FrameSource

    poses = client.listen(compressed_node.poses_topic, Pose2DArray)
    client.wait_for_publisher(compressed_node.poses_topic)
    topic = compressed_node.camera_topic + '/compressed'
    frames = [frame for _, frame in FrameSource([TWO_PEOPLE], motion=30.0).frames(10)]
    runs = []
    for start, pause in ((1000.0, 0.0), (500.0, 0.25)):  # the second run at another wall-clock pace
        run = []
        for index, frame in enumerate(frames):
            stamp = start + 0.1 * index
            time_msg = Time(sec=int(stamp), nanosec=int(round((stamp % 1) * 1e9)))
            client.publish('/clock', Clock(clock=time_msg))
            client.spin(0.05 + pause)
            msg = compressed_image_msg(frame, Header(stamp=time_msg, frame_id='camera'), 'png')
            client.publish(topic, msg)
            client.wait_until(lambda: stamp_of(msg) in poses_by_stamp(poses), 30, f'poses at stamp {stamp}')
            run.append(poses_by_stamp(poses)[stamp_of(msg)])
        runs.append(run)
    assert sum(line.count('image time went back') for line in compressed_node.lines) >= 1
    first, second = runs
    assert sum(len(msg.poses) for msg in first) >= 15
    for a, b in zip(first, second):
        assert [p.track_id for p in a.poses] == [p.track_id for p in b.poses]
        for points_a, points_b in zip(keypoints_of(a), keypoints_of(b)):
            assert np.abs(points_a - points_b).max() < 1e-3
    # The pose age is measured on the node's (simulated) clock.
    status = client.diagnostics(compressed_node.name, after=time.time())
    assert status['age_ms_mean'] and abs(float(status['age_ms_mean'])) < 1000, status


@pytest.mark.slow
@pytest.mark.ros
def test_sigint_shuts_the_node_down_cleanly(raw_node, compressed_node):
    for node in (raw_node, compressed_node):
        code, log = node.interrupt()
        assert code == 0, log
        assert 'Traceback' not in log and '[ERROR]' not in log, log


@pytest.mark.slow
@pytest.mark.ros
def test_a_fast_stream_into_a_slow_model_keeps_the_age_of_processed_frames_bounded(client):
    """30 Hz into a model that needs several times 33 ms per frame: frames are dropped, not queued."""
    from openpose_ros.msg import Pose2DArray

    node = NodeProcess('-p', 'base_height:=640')
    node.wait_active()
    try:
        poses = client.listen(node.poses_topic, Pose2DArray)
        client.wait_for_publisher(node.poses_topic)
        # Warm-up: ONNX Runtime's first runs at a new input size are several times slower than the next ones.
        client.publish_frames(node.camera_topic, count=2, rate=10.0, lockstep=node.poses_topic)
        summary = client.publish_frames(node.camera_topic, count=240, rate=30.0)
        client.spin(2.0)
        status = client.diagnostics(node.name, after=time.time())
    finally:
        code, log = node.interrupt()
    sent = {tuple(stamp) for stamp in summary['stamps']}
    ages = [(arrival - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)) * 1e3
            for arrival, msg in poses if stamp_of(msg) in sent]
    third = max(1, len(ages) // 3)
    figures = {'published': summary['published'], 'publish_rate_hz': summary['rate_hz'], 'processed': len(ages),
               'age_ms_first_third_median': statistics.median(ages[:third]),
               'age_ms_last_third_median': statistics.median(ages[-third:]), 'age_ms_max': max(ages),
               'age_ms_p90': statistics.quantiles(ages, n=10)[-1],
               'inference_ms_max': float(status['inference_ms_max'] or 0), 'frames_dropped': status['frames_dropped'],
               'frames_received': status['frames_received']}
    print('\n' + json.dumps(figures))
    assert code == 0, log
    assert 5 <= len(ages) < 0.75 * summary['published'], 'the model is slower than the stream: frames are dropped'
    assert int(status['frames_dropped']) > 0
    # No queue: a frame is at most one inference old when taken, so its age stays near one to two inferences
    # (a queue would age nearly every frame; one frame held up by the machine's other work is not one).
    inference = max(figures['inference_ms_max'], 1.0)
    assert figures['age_ms_p90'] < 2.5 * inference + 300, figures
    assert figures['age_ms_last_third_median'] < 1.5 * figures['age_ms_first_third_median'] + 150, figures


@pytest.mark.slow
@pytest.mark.ros
def test_missing_weights_and_invalid_parameters_stop_the_node_at_start_with_a_clear_message(client, tmp_path):
    offline = ros_env(DOMAIN_ID, XDG_CACHE_HOME=tmp_path / 'cache', OPENPOSE_ROS_MIRROR=f'file://{tmp_path}/mirror')
    nodes = {
        'missing': NodeProcess(weights=tmp_path / 'no_such_model'),
        'download': NodeProcess(weights='download', env=offline),
        'invalid': NodeProcess('-p', 'backend:=tensorrt'),
    }
    try:
        results = {key: node.finish(60) for key, node in nodes.items()}
    finally:
        for node in nodes.values():
            node.kill()
    code, log = results['missing']
    assert code == 1 and f'no weights at {tmp_path / "no_such_model"}' in log and '"download"' in log, log
    code, log = results['download']
    assert code == 1 and 'weights:=download: the download of the published model failed: could not download' \
        in log, log
    assert f'file://{tmp_path}/mirror/checkpoint_iter_370000.pth' in log and 'OPENPOSE_ROS_MIRROR' in log, log
    code, log = results['invalid']
    assert code == 2 and 'backend must be one of auto, torch, onnx, int8' in log, log
    for code, log in results.values():
        assert 'Traceback' not in log, log
