"""A launch test that must fail: it waits for poses on a topic where nothing publishes (no node is launched),
with the same launch helpers as the real launch tests. test_launch_harness.py runs it with `launch_test` and
expects the failure, which shows that the launch tests can fail."""
import os
import unittest

import launch
import launch_testing.actions
import pytest

from launch_helpers import Listener, in_domain, video_publisher

DOMAIN_ID = int(os.environ['ROS_DOMAIN_ID'])
SILENT_TOPIC = '/silent/poses'


@pytest.mark.launch_test
def generate_test_description():
    return launch.LaunchDescription([
        in_domain(DOMAIN_ID, [video_publisher('/silent/image', '--rate', '5', '--count', '50', '--wait', '0')]),
        launch_testing.actions.ReadyToTest(),
    ])


class TestSilentTopic(unittest.TestCase):

    def test_poses_arrive(self):
        from openpose_ros.msg import Pose2DArray
        listener = Listener(DOMAIN_ID)
        try:
            listener.record(SILENT_TOPIC, Pose2DArray)
            listener.wait_for(SILENT_TOPIC, 1, timeout=5.0)
        finally:
            listener.close()
