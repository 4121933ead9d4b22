"""pose_estimation_node: multi-person 2D poses from a camera topic (a ROS 2 lifecycle node).

usage: ros2 run openpose_ros pose_estimation_node [--ros-args --params-file config/pose_estimation.yaml
           -p weights:=/path/to/model -r image:=/camera/image_raw ...]
       python -m openpose_ros.ros.node [--ros-args ...]       (the same, from a source tree)
       pose_estimation_node --help

Subscribes `image` (sensor_msgs/Image) or, with input_type:=compressed, `<image>/compressed`
(sensor_msgs/CompressedImage); publishes `poses` (openpose_ros/Pose2DArray), `image_annotated`
(sensor_msgs/Image, optional and rate-limited), both with the input image's header, and `/diagnostics`.

Parameters: README.md, section "The ROS 2 node" (the parameter table), and config/pose_estimation.yaml, which
lists them all; `python -m openpose_ros.parameters` prints the table. Run it in the environment of
`source scripts/ros_env.sh` (or a sourced ROS 2 workspace with openpose_ros installed).

Exit status: 0 after Ctrl-C (SIGINT, once or twice), SIGTERM or a shutdown; 1 when the model cannot be loaded
at start (the message says why); 2 for invalid parameters or a ROS environment without the openpose_ros
messages.
"""
import sys

EXIT_ENVIRONMENT_ERROR = 2


def _asks_for_help(argv):
    """True when -h or --help comes before any --ros-args (after it, the arguments are ROS's)."""
    own = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    return '-h' in own or '--help' in own


def main(args=None):
    """Runs the node (openpose_ros.ros.pose_estimation) or answers --help. Returns the exit status."""
    argv = sys.argv[1:] if args is None else list(args)
    if _asks_for_help(argv):
        print(__doc__)
        return 0
    try:
        from openpose_ros.ros.pose_estimation import run
    except ImportError as error:  # rclpy or the built messages are not on the paths
        reason = ' '.join(str(error).split())  # one line: some loaders' messages span several
        print(f'pose_estimation_node: error: {reason}: the ROS 2 environment is missing; run '
              '`source scripts/ros_env.sh` (or source your ROS 2 workspace\'s install/setup.bash) first',
              file=sys.stderr)
        return EXIT_ENVIRONMENT_ERROR
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
