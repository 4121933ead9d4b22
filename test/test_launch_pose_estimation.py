"""launch_testing: pose_estimation.launch.py, as `ros2 launch` finds it, with every launch argument given, and a
real video publisher (`ros2 run openpose_ros video_publisher`) feeding it compressed images of a real photo.

Checks that poses and annotated images arrive with the input images' headers, and that each launch argument
reaches the node: weights, device, backend and input_type as parameters, camera_topic (the node answers the
images published there), namespace (its name and topics), params_file (a value that only that file sets),
use_sim_time, and log_level (debug lines in its output).
"""
import os
import shutil
import tempfile
import unittest

import launch
import launch_testing
import launch_testing.actions
import launch_testing.asserts
import pytest
import yaml

from launch_helpers import TEST_MODEL, Listener, in_domain, include_launch_file, stamps_and_frames, video_publisher
from ros_helpers import pick_domain_id

DOMAIN_ID = pick_domain_id()
NAMESPACE = 'launch_test'
NODE = f'/{NAMESPACE}/pose_estimation'
CAMERA_TOPIC = '/launch_test_camera/image'
FRAME_ID = 'launch_test_camera_frame'
FROM_PARAMS_FILE = {'upsample_ratio': 2, 'annotated_max_rate': 0.0}  # values differing from the defaults
ARGUMENTS = dict(weights=TEST_MODEL, device='cpu', backend='onnx', input_type='compressed',
                 camera_topic=CAMERA_TOPIC, namespace=NAMESPACE, use_sim_time='true', log_level='debug')
WAIT = 120.0  # generous: the node loads its model first, on a busy machine


@pytest.mark.slow
@pytest.mark.launch_test
def generate_test_description():
    folder = tempfile.mkdtemp(prefix='openpose_ros_launch_test_')
    params_file = os.path.join(folder, 'params.yaml')
    with open(params_file, 'w', encoding='utf-8') as stream:
        yaml.safe_dump({'/**': {'ros__parameters': FROM_PARAMS_FILE}}, stream)
    publisher = video_publisher(CAMERA_TOPIC + '/compressed', '--compressed', 'jpeg', '--rate', '5', '--count',
                                '1000', '--frame-id', FRAME_ID, '--wait', str(WAIT))
    description = launch.LaunchDescription([
        in_domain(DOMAIN_ID, [include_launch_file('pose_estimation.launch.py', params_file=params_file,
                                                  **ARGUMENTS), publisher]),
        launch_testing.actions.ReadyToTest(),
    ])
    return description, {'params_folder': folder}


class TestTheLaunchedNode(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        from sensor_msgs.msg import CompressedImage, Image

        from openpose_ros.msg import Pose2DArray
        cls.listener = Listener(DOMAIN_ID)
        cls.inputs = cls.listener.record(CAMERA_TOPIC + '/compressed', CompressedImage)
        cls.listener.record(f'/{NAMESPACE}/poses', Pose2DArray)
        cls.listener.record(f'/{NAMESPACE}/image_annotated', Image)

    @classmethod
    def tearDownClass(cls):
        cls.listener.close()

    def test_poses_and_annotated_images_carry_the_input_headers(self):
        poses = self.listener.wait_for(f'/{NAMESPACE}/poses', 3, WAIT)
        annotated = self.listener.wait_for(f'/{NAMESPACE}/image_annotated', 3, WAIT)
        inputs = set(stamps_and_frames(self.inputs))
        for name, messages in (('poses', poses), ('image_annotated', annotated)):
            headers = stamps_and_frames(messages)
            assert {frame for _, frame in headers} == {FRAME_ID}, name
            # Stamps are those of published images (sim time has no clock here: the node stamps nothing itself).
            assert set(headers) <= inputs, f'{name}: headers that no input image had'
        assert any(len(msg.poses) >= 1 for msg in poses), 'the test model finds people in the photo'
        assert annotated[0].height > 0 and annotated[0].encoding

    def test_every_launch_argument_reaches_the_node(self, proc_output):
        values = self.listener.parameters(NODE, ['weights', 'device', 'backend', 'input_type', 'use_sim_time',
                                                 *FROM_PARAMS_FILE])
        assert values == {'weights': TEST_MODEL, 'device': 'cpu', 'backend': 'onnx', 'input_type': 'compressed',
                          'use_sim_time': True, **FROM_PARAMS_FILE}
        # log_level:=debug: rcl's debug lines appear in the node's output.
        proc_output.assertWaitFor('[DEBUG]', timeout=10)


@launch_testing.post_shutdown_test()
class TestAfterShutdown(unittest.TestCase):

    def test_the_publisher_ended_normally(self, proc_info, params_folder):
        shutil.rmtree(params_folder, ignore_errors=True)
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15],
                                               process='video_publisher')
