"""The main job without a camera: pose_estimation_node on a real video, through ROS 2, with the results on disk.

    python -m openpose_ros.ros.demo [VIDEO or BAG] --weights MODEL [--output out/demo] [--every-frame]
    make demo [VIDEO=...] [WEIGHTS=...]

Starts three parties that talk over DDS, each as a user would run it: the node (a process, with
config/pose_estimation.yaml), a publisher of the video's frames as sensor_msgs/Image stamped at publication (a
process, openpose_ros.ros.video_publisher) and, in this process, a recorder of the node's `poses` and
`image_annotated`. It writes to --output:

  <video>_poses.mp4   the annotated frames at the video's frame rate (.avi where mp4 cannot be written). In real
                      time (the default) a frame the node skipped because it was busy shows the last annotated
                      one, as a live viewer would have seen it; with --every-frame every frame is processed.
  poses.json          the published poses of every processed frame (openpose_ros.formats.poses_json format), with
                      the frame index and stamp
  summary.json        frames published/processed, processing rate, latency, and the node's last diagnostics

DDS stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST unless set) in the domain ROS_DOMAIN_ID, or when
that is unset a random one in 50..99, so that the demo does not mix with a running robot. Without weights it stops
with the node's message on how to get them (exit status 1).
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from openpose_ros.formats.media import open_writer
from openpose_ros.formats.poses_json import document, frame_record, write_document
from openpose_ros.ros.worker import span_rate

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VIDEO = ROOT.parent / 'shared' / 'data' / 'video' / 'vtest.avi'
DEFAULT_PARAMS = ROOT / 'config' / 'pose_estimation.yaml'
NAMESPACE = '/demo'


def build_parser():
    """The argument parser of the demo (`python -m openpose_ros.ros.demo`, `make demo`)."""
    parser = argparse.ArgumentParser(prog='openpose_ros demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('video', nargs='?', default=str(DEFAULT_VIDEO),
                        help=f'a video file, a ROS 2 bag with one image topic, a folder of images or an image '
                             f'(default {DEFAULT_VIDEO})')
    parser.add_argument('--weights', default='download',
                        help="the node's weights parameter: a saved model folder, a checkpoint file, or 'download' "
                             '(the default: fetches the published model)')
    parser.add_argument('--output', default='out/demo', help='output folder (default out/demo)')
    parser.add_argument('--params-file', default=str(DEFAULT_PARAMS), help='parameter file of the node')
    parser.add_argument('--param', '-p', action='append', default=[], metavar='NAME:=VALUE',
                        help='more node parameters, e.g. -p base_height:=368 (repeatable)')
    parser.add_argument('--rate', type=float, help="frames per second (default: the video's)")
    parser.add_argument('--max-frames', type=int, help='publish at most this many frames')
    parser.add_argument('--every-frame', action='store_true',
                        help='the publisher waits for the poses of each frame before the next (no frame skipped)')
    parser.add_argument('--startup-timeout', type=float, default=180.0,
                        help='seconds to wait for the node to load its model (default 180)')
    return parser


class Recorder:
    """Subscribes to the node's poses, annotated images and diagnostics; keeps them by stamp."""

    def __init__(self, node):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from openpose_ros.msg import Pose2DArray

        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.poses = {}        # (sec, nanosec) -> (list of Pose, arrival time)
        self.annotated = {}    # (sec, nanosec) -> JPEG bytes
        self.diagnostics = None
        self._lock = threading.Lock()
        node.create_subscription(Pose2DArray, f'{NAMESPACE}/poses', self._on_poses, reliable)
        node.create_subscription(Image, f'{NAMESPACE}/image_annotated', self._on_image, reliable)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _on_poses(self, msg):
        from openpose_ros.messages.conversions import msg_to_poses
        with self._lock:
            self.poses[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (msg_to_poses(msg), time.time())

    def _on_image(self, msg):
        from openpose_ros.messages.conversions import image_msg_to_bgr
        ok, encoded = cv2.imencode('.jpg', image_msg_to_bgr(msg), [cv2.IMWRITE_JPEG_QUALITY, 95])
        if ok:
            with self._lock:
                self.annotated[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = encoded.tobytes()

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name == f'{NAMESPACE.strip("/")}/pose_estimation: pose estimation':
                level = status.level[0] if isinstance(status.level, (bytes, bytearray)) else int(status.level)
                self.diagnostics = {'level': level, 'message': status.message,
                                    **{kv.key: kv.value for kv in status.values}}


def _tail(stream, lines, echo):
    for line in stream:
        lines.append(line.rstrip())
        if echo:
            print(f'  node | {line.rstrip()}', file=sys.stderr)


def _stop(process, timeout=20.0):
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def run(args):
    """Runs the demo of the parsed `args`: starts the node and the video publisher, records what the node publishes and
    writes the outputs into --output. Returns the exit status: 0; 1 when the node did not start, the publisher failed or
    nothing was published; 2 when the video is missing."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    video = Path(args.video)
    if not video.exists():
        print(f'demo: error: {video} does not exist', file=sys.stderr)
        return 2
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    env = _ros_environment()
    node, node_log = _start_node(args, env)
    rclpy.init()
    recorder_node = rclpy.create_node('demo_recorder', namespace=NAMESPACE)
    executor = SingleThreadedExecutor()
    executor.add_node(recorder_node)
    recorder = Recorder(recorder_node)
    try:
        if not _node_subscribed(args, node, node_log, recorder_node, executor):
            return 1
        published, seconds = _publish(args, video, env, executor, recorder)
    finally:
        node_status = _stop(node)
        recorder_node.destroy_node()
        rclpy.try_shutdown()
    if published is None:
        return 1
    return _write_outputs(args, video, output, published, recorder, seconds, node_status)


def _ros_environment():
    """The environment of the demo's processes (and of this one): DDS on this machine, in a domain of its own."""
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(50, 99)))
    env['PYTHONUNBUFFERED'] = '1'
    os.environ.update({key: env[key] for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID')})
    print(f'demo: ROS_DOMAIN_ID={env["ROS_DOMAIN_ID"]}, topics under {NAMESPACE} (watch: rviz2 -d '
          f'config/openpose.rviz --ros-args -r /image_annotated:={NAMESPACE}/image_annotated)', file=sys.stderr)
    return env


def _start_node(args, env):
    """The pose estimation node's process, its output echoed and its last lines kept; (process, lines)."""
    command = [sys.executable, '-m', 'openpose_ros.ros.node', '--ros-args', '--params-file', args.params_file,
               '-r', f'__ns:={NAMESPACE}', '-p', f'weights:={args.weights}', '-p', 'annotated_max_rate:=0.0',
               '-p', 'publish_annotated:=true']
    for parameter in args.param:
        command += ['-p', parameter]
    lines = deque(maxlen=200)
    node = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=_tail, args=(node.stdout, lines, True), daemon=True).start()
    return node, lines


def _node_subscribed(args, node, node_log, recorder_node, executor):
    """Waits until the node subscribes to the images, which it does once its model is loaded; False (said why)
    when it ends or times out first."""
    deadline = time.monotonic() + args.startup_timeout
    while recorder_node.count_subscribers(f'{NAMESPACE}/image') == 0:
        if node.poll() is not None:
            time.sleep(0.2)
            errors = [line for line in node_log if 'ERROR' in line or 'error' in line] or list(node_log)[-5:]
            print('demo: the pose estimation node did not start (exit status '
                  f'{node.returncode}):\n  ' + '\n  '.join(errors), file=sys.stderr)
            if args.weights == 'download':
                print('demo: give a model with --weights (make demo WEIGHTS=<model folder or checkpoint>)',
                      file=sys.stderr)
            return False
        if time.monotonic() > deadline:
            print(f'demo: the node did not subscribe within {args.startup_timeout:g} s', file=sys.stderr)
            return False
        executor.spin_once(timeout_sec=0.1)
    return True


def _publish(args, video, env, executor, recorder):
    """Runs the video publisher and records the node's outputs meanwhile, then those of the last frames;
    (the publisher's summary or None when it failed, seconds)."""
    command = [sys.executable, '-m', 'openpose_ros.ros.video_publisher', str(video), '--topic', f'{NAMESPACE}/image',
               '--wait', '30']
    if args.rate:
        command += ['--rate', str(args.rate)]
    if args.max_frames:
        command += ['--count', str(args.max_frames)]
    if args.every_frame:
        command += ['--lockstep', f'{NAMESPACE}/poses']
    publisher = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    started = last_report = time.monotonic()
    try:
        while publisher.poll() is None:
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                print(f'demo: {len(recorder.poses)} frames processed so far', file=sys.stderr)
    finally:
        if publisher.poll() is None:
            _stop(publisher)
    if publisher.returncode != 0:
        print(f'demo: the video publisher failed (exit status {publisher.returncode})', file=sys.stderr)
        return None, time.monotonic() - started
    published = json.loads(publisher.stdout.read().strip().splitlines()[-1])
    last = tuple(published['stamps'][-1]) if published['stamps'] else None
    _spin_while(executor, 10.0, lambda: last is not None and last not in recorder.poses)  # still in the node
    _spin_while(executor, 1.5, lambda: True)  # the last annotated image and one more diagnostics message
    return published, time.monotonic() - started


def _spin_while(executor, seconds, condition):
    end = time.monotonic() + seconds
    while time.monotonic() < end and condition():
        executor.spin_once(timeout_sec=0.05)


def _write_outputs(args, video, output, published, recorder, seconds, node_status):
    """The annotated video, poses.json and summary.json; the exit status (1 when the node published nothing)."""
    stamps = [tuple(stamp) for stamp in published['stamps']]
    fps = published.get('source_fps') or args.rate or 10.0
    video_path, written = _write_annotated_video(output, video.stem, fps, stamps, recorder)
    frames = [frame_record(recorder.poses[stamp][0], frame_seconds(stamp), frame=index)
              for index, stamp in enumerate(stamps) if stamp in recorder.poses]
    results = write_document(output / 'poses.json', document(
        frames, source=str(video), input_type='ros2 topic', weights=args.weights,
        settings={'every_frame': args.every_frame, 'namespace': NAMESPACE}))
    people = sum(len(frame['poses']) for frame in frames)
    ids = {pose['id'] for frame in frames for pose in frame['poses'] if pose['id'] >= 0}
    summary = {
        'video': str(video), 'frames_published': len(stamps), 'frames_processed': len(frames),
        'fraction_processed': round(len(frames) / len(stamps), 3) if stamps else 0.0,
        'poses': people, 'track_ids': len(ids), 'seconds': round(seconds, 1),
        'publish_rate_hz': published['rate_hz'],
        'processed_rate_hz': round(span_rate([frame_seconds(stamp) for stamp in stamps if stamp in recorder.poses]),
                                   2),
        'mean_age_ms': _mean_age(recorder, stamps), 'every_frame': args.every_frame,
        'annotated_video': str(video_path) if video_path else None, 'annotated_frames_written': written,
        'poses_json': str(results), 'node_exit_status': node_status, 'node_diagnostics': recorder.diagnostics,
    }
    (output / 'summary.json').write_text(json.dumps(summary, indent=2))
    print(json.dumps({key: summary[key] for key in summary if key != 'node_diagnostics'}))
    if not frames:
        print('demo: the node published no poses', file=sys.stderr)
        return 1
    return 0


def _write_annotated_video(output, stem, fps, stamps, recorder):
    """The node's annotated images at the video's frame rate, a frame it skipped showing the last annotated one
    (as a live viewer saw it); (path or None, frames written)."""
    writer = path = last = None
    written = 0
    for stamp in stamps:
        encoded = recorder.annotated.get(stamp)
        if encoded is not None:
            last = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
        if last is None:
            continue
        if writer is None:
            writer, path = open_writer(output, stem, fps, (last.shape[1], last.shape[0]))
        writer.write(last)
        written += 1
    if writer is not None:
        writer.release()
    return path, written


def frame_seconds(stamp):
    """A (sec, nanosec) stamp in seconds."""
    return stamp[0] + stamp[1] * 1e-9


def _mean_age(recorder, stamps):
    ages = [(recorder.poses[s][1] - frame_seconds(s)) * 1e3 for s in stamps if s in recorder.poses]
    return round(sum(ages) / len(ages), 1) if ages else None


def main(argv=None):
    return run(build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
