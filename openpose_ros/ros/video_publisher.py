"""Publishes a video, a ROS 2 bag's images, a folder of images or image files as a camera would: sensor_msgs/Image
(or CompressedImage) stamped with the time of publication, at a given rate.

    python -m openpose_ros.ros.video_publisher ../shared/data/video/vtest.avi --topic /camera/image_raw
    python -m openpose_ros.ros.video_publisher photo.jpg --count 300 --rate 30 --motion 20 --compressed png
    python -m openpose_ros.ros.video_publisher recording/ --bag-topic /camera/image_raw     (a bag, re-stamped)

Still images repeat, and `--motion` moves and scales them a little from frame to frame (a person walking across
the view), so that tracking has something to follow. `--lockstep TOPIC` waits after each frame until the poses
of that frame (a Pose2DArray with its stamp) come back on TOPIC: every frame is then processed, whatever the
speed of the model. At the end one JSON line on stdout says what was published: counts, rate and every
frame's stamp [sec, nanosec] (in publication order), so that a caller can match outputs to frames.
"""
import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from openpose_ros.formats.media import folder_images, is_image_file
from openpose_ros.messages.conversions import OUTPUT_ENCODINGS, bgr_to_image_msg, compressed_image_msg
from openpose_ros.messages.types import RCLPY_TYPES, header as make_header


def build_parser():
    """The argument parser of the video publisher (`python -m openpose_ros.ros.video_publisher`)."""
    parser = argparse.ArgumentParser(prog='video_publisher', description=__doc__.split('\n\n')[0])
    parser.add_argument('source', nargs='+', help='a video file, a ROS 2 bag (folder, .db3 or .mcap), a folder of '
                        'images, or image files')
    parser.add_argument('--bag-topic', help="the bag's image topic (default: its only one)")
    parser.add_argument('--topic', default='image', help="topic (default 'image'; give the full "
                        "'.../compressed' name with --compressed)")
    parser.add_argument('--rate', type=float, help="frames per second (default: the video's, else 10)")
    parser.add_argument('--count', type=int, help='publish this many frames (repeating the source as needed); '
                        'default: the source once')
    parser.add_argument('--start', type=int, default=0, help='skip this many frames of the source first')
    parser.add_argument('--encoding', choices=OUTPUT_ENCODINGS, default='bgr8',
                        help='raw image encoding (default bgr8)')
    parser.add_argument('--compressed', choices=('jpeg', 'png'), help='publish sensor_msgs/CompressedImage')
    parser.add_argument('--jpeg-quality', type=int, default=90)
    parser.add_argument('--motion', type=float, default=0.0,
                        help='move still images by up to this many pixels (and scale them by up to 5%%) from '
                             'frame to frame, along a smooth path')
    parser.add_argument('--frame-id', default='camera', help="header.frame_id (default 'camera')")
    parser.add_argument('--reliability', choices=('reliable', 'best_effort'), default='reliable',
                        help='publisher QoS reliability (default reliable, as camera drivers)')
    parser.add_argument('--wait', type=float, default=30.0,
                        help='seconds to wait for a subscriber before the first frame (default 30; 0: do not wait)')
    parser.add_argument('--lockstep', metavar='TOPIC',
                        help="after each frame, wait for the Pose2DArray with that frame's stamp on TOPIC")
    parser.add_argument('--lockstep-timeout', type=float, default=10.0,
                        help='seconds to wait for one frame in --lockstep mode before going on (default 10)')
    parser.add_argument('--no-stamps', action='store_true', help='leave the list of stamps out of the summary '
                        '(long runs)')
    parser.add_argument('--quiet', action='store_true')
    return parser


class FrameSource:
    """Frames (BGR arrays) of a video or of still images, repeated up to `count` frames."""

    def __init__(self, sources, motion=0.0, start=0, bag_topic=None):
        paths = [Path(s) for s in sources]
        for path in paths:
            if not path.exists():
                raise FileNotFoundError(f'{path} does not exist')
        self.video = self.bag = None
        if len(paths) == 1 and is_bag(paths[0]):
            self._open_bag(paths[0], bag_topic)
        elif len(paths) == 1 and paths[0].is_file() and not is_image_file(paths[0]):
            self.video = paths[0]
            capture = cv2.VideoCapture(str(self.video))
            if not capture.isOpened():
                raise ValueError(f'{self.video} cannot be opened as a video')
            self.fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
            self.length = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
            capture.release()
            self.images = None
        else:
            files = []
            for path in paths:
                files += folder_images(path) if path.is_dir() else [path]
            self.images = []
            for file in files:
                image = cv2.imread(str(file), cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f'{file} cannot be read as an image')
                self.images.append(image)
            if not self.images:
                raise ValueError(f'no images in {", ".join(map(str, paths))}')
            self.fps, self.length = 0.0, len(self.images)
        self.motion = motion
        self.start = start

    def _open_bag(self, path, topic):
        try:
            from openpose_ros.messages.typestore import typestore
            from openpose_ros.formats.bag_reader import BagError, BagInput
        except ImportError as error:
            raise ValueError(f'reading bags needs rosbags and openpose_ros.bag ({error})') from error
        try:
            with BagInput(path, typestore()) as bag:
                self.topic = bag.select_topic(topic)
                duration = bag.duration_s
        except BagError as error:
            raise ValueError(str(error)) from error
        self.bag, self.images = path, None
        self.length = self.topic.count
        self.fps = (self.length - 1) / duration if self.length > 1 and duration > 0 else 0.0

    def frames(self, count=None):
        """Yields (index, frame); the source once when count is None, else `count` frames, repeating it."""
        index = 0
        while count is None or index < count:
            produced = 0
            for frame in self._once():
                if count is not None and index >= count:
                    return
                yield index, self._moved(frame, index)
                index += 1
                produced += 1
            if count is None or produced == 0:
                return

    def _once(self):
        if self.bag is not None:
            yield from self._bag_frames()
            return
        if self.images is not None:
            yield from self.images[self.start:] if self.start < len(self.images) else self.images
            return
        capture = cv2.VideoCapture(str(self.video))
        try:
            if self.start:
                capture.set(cv2.CAP_PROP_POS_FRAMES, self.start)
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame
        finally:
            capture.release()

    def _bag_frames(self):
        from openpose_ros.messages.typestore import typestore
        from openpose_ros.formats.bag_reader import BagInput, decode
        with BagInput(self.bag, typestore()) as bag:
            for frame in bag.frames(self.topic):
                if frame.index < self.start:
                    continue
                try:
                    yield decode(frame)
                except ValueError as error:
                    print(f'video_publisher: skipping bag message {frame.index}: {error}', file=sys.stderr)

    def _moved(self, frame, index):
        if not self.motion:
            return frame
        phase = 2 * math.pi * index / 60.0
        dx, dy = self.motion * math.sin(phase), 0.3 * self.motion * math.sin(2 * phase)
        scale = 1.0 + 0.05 * math.sin(phase / 2)
        height, width = frame.shape[:2]
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, scale)
        matrix[:, 2] += (dx, dy)
        return cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)


def is_bag(path):
    """A rosbag2 folder (metadata.yaml or storage files in it) or a .db3 / .mcap file."""
    path = Path(path)
    if path.is_file():
        return path.suffix in ('.db3', '.mcap')
    return path.is_dir() and ((path / 'metadata.yaml').is_file()
                              or any(p.suffix in ('.db3', '.mcap') for p in path.iterdir()))


def run(args):
    """Publishes the frames of the parsed `args` (rclpy initialised) and returns the summary: counts, seconds, rate
    (Hz), lockstep frames missed, the stamps [sec, nanosec]. Raises TimeoutError when no subscriber comes within --wait,
    ValueError for a rate <= 0."""
    source = FrameSource(args.source, args.motion, args.start, args.bag_topic)
    rate = args.rate or source.fps or 10.0
    if rate <= 0:
        raise ValueError('--rate must be > 0')
    node = rclpy.create_node('video_publisher')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    publisher = node.create_publisher(CompressedImage if args.compressed else Image, args.topic,
                                      _publisher_qos(args.reliability))
    answered = _answered_stamps(node, args.lockstep)
    log = (lambda text: None) if args.quiet else (lambda text: print(f'video_publisher: {text}', file=sys.stderr))
    if args.wait > 0:
        _wait_for_subscriber(executor, publisher, args.wait)
    what = source.video or source.bag or f'{len(source.images)} image(s)'
    log(f'publishing {what} on {publisher.topic_name} at {rate:g} Hz'
        + (f', lockstep with {args.lockstep}' if args.lockstep else ''))
    stamps, missed, started = [], 0, time.monotonic()
    next_time = started
    for index, frame in source.frames(args.count):
        if not args.lockstep:
            next_time = _pace(executor, next_time, rate)
        stamp = _publish_frame(node, publisher, frame, args)
        stamps.append(list(stamp))
        if args.lockstep:
            if not _spin_while(executor, lambda: stamp not in answered, args.lockstep_timeout, step=0.01):
                missed += 1
                log(f'frame {index}: no poses after {args.lockstep_timeout:g} s, going on')
            # A frame cannot be dropped by the next one if the next is sent only after this one's answer.
            _spin_until(executor, time.monotonic() + 1.0 / rate)
    seconds = time.monotonic() - started
    node.destroy_node()
    return _summary(args, source, stamps, missed, seconds)


def _publisher_qos(reliability: str) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                      else ReliabilityPolicy.BEST_EFFORT)


def _answered_stamps(node: Node, lockstep_topic: str | None) -> set[tuple[int, int]]:
    """The stamps (sec, nanosec) of the Pose2DArrays that come back on `lockstep_topic`, filled as they arrive
    (stays empty without one)."""
    answered: set[tuple[int, int]] = set()
    if lockstep_topic:
        from openpose_ros.msg import Pose2DArray
        node.create_subscription(Pose2DArray, lockstep_topic,
                                 lambda msg: answered.add((msg.header.stamp.sec, msg.header.stamp.nanosec)),
                                 QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    return answered


def _wait_for_subscriber(executor: Executor, publisher: Publisher, wait_s: float) -> None:
    if not _spin_while(executor, lambda: publisher.get_subscription_count() == 0, wait_s, step=0.05):
        raise TimeoutError(f'no subscriber on {publisher.topic_name} after {wait_s:g} s')
    _spin_until(executor, time.monotonic() + 0.5, step=0.05)  # discovery completes on both sides before the first frame


def _spin_while(executor: Executor, pending: Callable[[], bool], timeout_s: float, step: float) -> bool:
    """Spins while `pending()` holds, for at most `timeout_s`; whether it stopped holding."""
    deadline = time.monotonic() + timeout_s
    while pending() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=step)
    return not pending()


def _spin_until(executor: Executor, end: float, step: float = math.inf) -> None:
    """Spins until the monotonic time `end`, `step` seconds at most at a time."""
    while (remaining := end - time.monotonic()) > 0:
        executor.spin_once(timeout_sec=min(remaining, step))


def _pace(executor: Executor, next_time: float, rate: float) -> float:
    """Spins until `next_time`, this frame's time to go; the next frame's."""
    _spin_until(executor, next_time, step=0.05)
    next_time += 1.0 / rate
    if next_time < time.monotonic() - 1.0:  # far behind (a slow disk): do not burst to catch up
        return time.monotonic()
    return next_time


def _publish_frame(node: Node, publisher: Publisher, frame: np.ndarray, args: argparse.Namespace) -> tuple[int, int]:
    """Publishes `frame` stamped now; its stamp (sec, nanosec)."""
    header = make_header(RCLPY_TYPES, node.get_clock().now().nanoseconds, args.frame_id)
    # format: the codec's name alone ('jpeg', 'png'), as this publisher has always sent it
    msg = (compressed_image_msg(frame, header, args.compressed, args.jpeg_quality, format_name=args.compressed)
           if args.compressed else bgr_to_image_msg(frame, header, args.encoding))
    publisher.publish(msg)
    return header.stamp.sec, header.stamp.nanosec


def _summary(args: argparse.Namespace, source: FrameSource, stamps: list[list[int]], missed: int,
             seconds: float) -> dict:
    return {'published': len(stamps), 'seconds': round(seconds, 3),
            'rate_hz': round(len(stamps) / seconds, 3) if seconds > 0 else None, 'topic': args.topic,
            'lockstep_missed': missed if args.lockstep else None, 'stamps': None if args.no_stamps else stamps,
            'source_fps': source.fps or None}


def main(argv=None):
    args = build_parser().parse_args(rclpy.utilities.remove_ros_args(sys.argv)[1:] if argv is None else argv)
    rclpy.init(args=sys.argv if argv is None else None)
    try:
        summary = run(args)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except (FileNotFoundError, ValueError, TimeoutError) as error:
        print(f'video_publisher: error: {error}', file=sys.stderr)
        return 2
    finally:
        rclpy.try_shutdown()
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
