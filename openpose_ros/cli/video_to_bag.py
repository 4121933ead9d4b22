"""Makes a ROS 2 camera bag from a video file: its frames as sensor_msgs/Image (or CompressedImage), stamped at
the video's frame rate, as a camera driver and `ros2 bag record` would have written them.

    openpose-video-to-bag ../shared/data/video/vtest.avi vtest_bag
    openpose-video-to-bag walk.mp4 walk_bag --storage mcap --compressed --max-frames 300
    ros2 run openpose_ros video_to_bag walk.mp4 walk_bag --topic /camera/color/image_raw

Then `ros2 bag play walk_bag --clock` (with the node on use_sim_time:=true) or `openpose-bag-eval walk_bag`.
Reads the video with OpenCV and writes the bag with rosbags (no ROS 2 installation needed). The output must not
exist; it appears only once complete. Exit status: 0 done, 2 error (the message says what to do).
"""
import argparse
import logging
import sys
from pathlib import Path

from openpose_ros.command_line import exit_status

LOG = logging.getLogger('openpose_ros.video_to_bag')
MAX_FRAMES = 1_000_000  # a bound on the frames read, whatever the video claims


def positive_int(text: str) -> int:
    """An argparse type: a whole number in [1, MAX_FRAMES]."""
    value = int(text)
    if not 1 <= value <= MAX_FRAMES:
        raise argparse.ArgumentTypeError(f'must be in [1, {MAX_FRAMES}]')
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number in (0, 1000] (frames per second)."""
    value = float(text)
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError('must be in (0, 1000]')
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of openpose-video-to-bag (`ros2 run openpose_ros video_to_bag`)."""
    parser = argparse.ArgumentParser(prog='openpose-video-to-bag', description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    parser.add_argument('video', help='a video file that OpenCV reads (.avi, .mp4, ...)')
    parser.add_argument('output', help='the bag to write: a new folder (it must not exist)')
    parser.add_argument('--storage', default='sqlite3', choices=('sqlite3', 'mcap'),
                        help='bag storage (default sqlite3)')
    parser.add_argument('--topic', default='/camera/image_raw',
                        help="image topic (default /camera/image_raw; '/compressed' is appended with --compressed)")
    parser.add_argument('--compressed', action='store_true',
                        help='write JPEG sensor_msgs/CompressedImage instead of raw bgr8 sensor_msgs/Image')
    parser.add_argument('--max-frames', type=positive_int, help=f'stop after this many frames, in [1, {MAX_FRAMES}] '
                        '(default: the whole video)')
    parser.add_argument('--fps', type=positive_float,
                        help="frame rate of the stamps, in (0, 1000] (default: the video's, else 30)")
    parser.add_argument('--step', type=positive_int, default=1, help='keep every STEP-th frame (default 1: all)')
    return parser


def run(args: argparse.Namespace) -> int:
    """Writes the bag of the parsed `args` (atomically: it appears only once complete); returns the exit status 0.
    Raises FileNotFoundError (no video), FileExistsError (the output exists) or ValueError (no frame could be read)."""
    from openpose_ros.files import atomic_path
    from openpose_ros.formats.image_bags import video_to_bag
    video, output = Path(args.video), Path(args.output)
    if not video.is_file():
        raise FileNotFoundError(f'{video}: no such video file')
    if output.exists():
        raise FileExistsError(f'{output} exists: give a new path for the bag')
    with atomic_path(output) as temporary:
        count = video_to_bag(video, temporary, storage=args.storage, topic=args.topic, compressed=args.compressed,
                             max_frames=args.max_frames or MAX_FRAMES, fps=args.fps, step=args.step)
        if count == 0:
            raise ValueError(f'{video}: no frame could be read (is it a video?)')
    LOG.info('%s: %d frames on %s%s (%s)', output, count, args.topic, '/compressed' if args.compressed else '',
             args.storage)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    return exit_status(run, args, LOG, (FileNotFoundError, FileExistsError, ValueError),
                       install_hint='video_to_bag needs rosbags (pip install "openpose_ros[bags]")')


if __name__ == '__main__':
    sys.exit(main())
