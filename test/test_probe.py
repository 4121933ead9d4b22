"""The probe: its arguments, and a real run against poses and diagnostics published by this process."""
import json
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from openpose_ros.ros.probe import build_parser
from ros_helpers import ros_env
from test_pose_estimation import DOMAIN_ID  # the domain of the client fixture

STATUS = 'pose_estimation: pose estimation'


def test_the_parser_watches_poses_every_10_s_until_stopped():
    args = build_parser().parse_args([])
    assert (args.topic, args.interval, args.duration, args.node) == ('poses', 10.0, None, STATUS)
    args = build_parser().parse_args(['--topic', '/people', '--interval', '0.5', '--duration', '3'])
    assert (args.topic, args.interval, args.duration) == ('/people', 0.5, 3.0)


@pytest.mark.ros
def test_a_line_per_interval_counts_the_poses_their_people_and_the_node_s_diagnostics(client):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    from openpose_ros.msg import Pose2D, Pose2DArray

    probe = subprocess.Popen([sys.executable, '-m', 'openpose_ros.ros.probe', '--topic', '/probe_poses',
                              '--interval', '0.5', '--duration', '2.2'],
                             cwd=ROOT, env=ros_env(DOMAIN_ID), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    status = DiagnosticStatus(name=STATUS, message='ok', values=[KeyValue(key='frames', value='42')])
    try:
        deadline = time.monotonic() + 30
        while probe.poll() is None and time.monotonic() < deadline:
            msg = Pose2DArray(poses=[Pose2D(), Pose2D()])
            msg.header.stamp = client.node.get_clock().now().to_msg()
            client.publish('/probe_poses', msg)  # the first call waits for the probe's subscription
            client.publish('/diagnostics', DiagnosticArray(status=[status]))
            client.spin(0.1)
    finally:
        if probe.poll() is None:
            probe.kill()
    out, err = probe.communicate()
    assert probe.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    # A line every 0.5 s for 2.2 s (how many and when depend on this machine's load only within bounds).
    times = [line['t_s'] for line in lines]
    assert 3 <= len(lines) <= 5 and times == sorted(times) and 0.4 <= times[0] and times[-1] <= 2.6
    last = lines[-1]  # about 10 messages a second here
    assert last['messages'] >= 1 and last['rate_hz'] == pytest.approx(last['messages'] / 0.5)
    assert last['people_mean'] == 2.0 and 0 <= last['age_ms']['p50'] <= last['age_ms']['max'] < 5000
    assert last['diagnostics'] == {'frames': '42', 'message': 'ok'}
