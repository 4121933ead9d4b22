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
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

from openpose_ros.msg import Pose2DArray


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the probe (`python -m openpose_ros.ros.probe`)."""
    parser = argparse.ArgumentParser(prog='probe', description=__doc__.split('\n\n')[0])
    parser.add_argument('--topic', default='poses', help="Pose2DArray topic (default 'poses')")
    parser.add_argument('--interval', type=float, default=10.0, help='seconds per printed line (default 10)')
    parser.add_argument('--duration', type=float, help='stop after this many seconds (default: run until Ctrl-C)')
    parser.add_argument('--node', default='pose_estimation: pose estimation',
                        help='diagnostic status name to report (default: the node without namespace)')
    return parser


@dataclass
class _Window:
    """What arrived since the last printed line: the poses' ages (ms) and people counts, and the last diagnostics
    of the status named `status_name`."""
    status_name: str
    ages: list[float] = field(default_factory=list)
    people: list[int] = field(default_factory=list)
    diagnostics: dict[str, str] = field(default_factory=dict)

    def on_poses(self, msg: Pose2DArray) -> None:
        """Notes the age and people count of a Pose2DArray."""
        self.ages.append((time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)) * 1e3)
        self.people.append(len(msg.poses))

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        """Keeps the values and message of the status named `status_name`."""
        for status in msg.status:
            if status.name == self.status_name:
                self.diagnostics.clear()
                self.diagnostics.update({kv.key: kv.value for kv in status.values}, message=status.message)

    def take_line(self, t_s: float, interval: float) -> dict:
        """The printed line's figures, `t_s` seconds after the start, then a new window."""
        values = np.array(self.ages) if self.ages else None
        line = {
            't_s': round(t_s, 1), 'messages': len(self.ages),
            'rate_hz': round(len(self.ages) / interval, 2),
            'age_ms': None if values is None else {
                'p50': round(float(np.percentile(values, 50)), 1),
                'p95': round(float(np.percentile(values, 95)), 1), 'max': round(float(values.max()), 1)},
            'people_mean': round(float(np.mean(self.people)), 2) if self.people else None,
            'diagnostics': dict(self.diagnostics),
        }
        self.ages.clear()
        self.people.clear()
        return line


def _print_lines(executor: Executor, window: _Window, interval: float, duration: float | None) -> None:
    """Spins, printing one JSON line every `interval` seconds, for `duration` seconds (None: until interrupted)."""
    started = time.monotonic()
    next_line = started + interval
    while duration is None or time.monotonic() - started < duration:
        executor.spin_once(timeout_sec=0.05)
        if time.monotonic() >= next_line:
            next_line += interval
            print(json.dumps(window.take_line(time.monotonic() - started, interval)), flush=True)


def main(argv=None):
    args = build_parser().parse_args(rclpy.utilities.remove_ros_args(sys.argv)[1:] if argv is None else argv)
    rclpy.init(args=sys.argv if argv is None else None)
    node = rclpy.create_node('pose_probe')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    window = _Window(args.node)
    node.create_subscription(Pose2DArray, args.topic, window.on_poses,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, '/diagnostics', window.on_diagnostics, 10)
    try:
        _print_lines(executor, window, args.interval, args.duration)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
