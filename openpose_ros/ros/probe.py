"""Watches a Pose2DArray topic and the node's diagnostics; prints one JSON line per interval.

    python -m openpose_ros.ros.probe --topic /poses [--interval 10] [--duration 600]

Each line: seconds since start, messages received in the interval and their rate, the age of the poses
(arrival here minus header stamp: camera-to-poses latency, when the stamps come from this machine's clock) as
percentiles in ms, people per message, and the pose estimation node's last diagnostics (counters, rates).
A stand-in for `ros2 topic hz` / `ros2 topic delay` where ros2cli is not installed; benchmarks/soak.py uses it.
"""
import argparse
import json
import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

from openpose_ros.msg import Pose2DArray


def main(argv=None):
    parser = argparse.ArgumentParser(prog='probe', description=__doc__.split('\n\n')[0])
    parser.add_argument('--topic', default='poses', help="Pose2DArray topic (default 'poses')")
    parser.add_argument('--interval', type=float, default=10.0, help='seconds per printed line (default 10)')
    parser.add_argument('--duration', type=float, help='stop after this many seconds (default: run until Ctrl-C)')
    parser.add_argument('--node', default='pose_estimation: pose estimation',
                        help='diagnostic status name to report (default: the node without namespace)')
    args = parser.parse_args(rclpy.utilities.remove_ros_args(sys.argv)[1:] if argv is None else argv)
    rclpy.init(args=sys.argv if argv is None else None)
    node = rclpy.create_node('pose_probe')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    ages, people, diagnostics = [], [], {}

    def on_poses(msg):
        ages.append((time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)) * 1e3)
        people.append(len(msg.poses))

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name == args.node:
                diagnostics.clear()
                diagnostics.update({kv.key: kv.value for kv in status.values}, message=status.message)

    node.create_subscription(Pose2DArray, args.topic, on_poses, QoSProfile(depth=10,
                                                                           reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    started = time.monotonic()
    next_line = started + args.interval
    try:
        while args.duration is None or time.monotonic() - started < args.duration:
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() >= next_line:
                next_line += args.interval
                values = np.array(ages) if ages else None
                line = {
                    't_s': round(time.monotonic() - started, 1), 'messages': len(ages),
                    'rate_hz': round(len(ages) / args.interval, 2),
                    'age_ms': None if values is None else {
                        'p50': round(float(np.percentile(values, 50)), 1),
                        'p95': round(float(np.percentile(values, 95)), 1), 'max': round(float(values.max()), 1)},
                    'people_mean': round(float(np.mean(people)), 2) if people else None,
                    'diagnostics': dict(diagnostics),
                }
                print(json.dumps(line), flush=True)
                ages.clear()
                people.clear()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
