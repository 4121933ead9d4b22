"""The launch files, the parameter file and the rviz configuration.

The launch files run for real under `ros2 launch`, found through the ament index as a user's command finds them
(the launch_testing tests in test_launch_pose_estimation.py check what reaches the node); rviz2, a GUI that
cannot run here, is replaced by a recorder of its command line.
"""
import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

from ros_helpers import pick_domain_id, ros_env

DOMAIN_ID = pick_domain_id()
ROOT = Path(__file__).resolve().parents[1]
RVIZ_CONFIG = ROOT / 'config' / 'openpose.rviz'


# --- tests ---------------------------------------------------------------------------------------------------
FAKE_RVIZ = """#!{python}
# Stands in for rviz2 (a GUI that cannot run here): records its command line, then waits for a signal.
import json, os, signal, sys, time
with open(os.environ['FAKE_RVIZ_ARGS'] + '.tmp', 'w') as stream:
    json.dump(sys.argv[1:], stream)
os.replace(os.environ['FAKE_RVIZ_ARGS'] + '.tmp', os.environ['FAKE_RVIZ_ARGS'])
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(1)
"""


def fake_rviz_prefix(folder):
    """An ament prefix with a package 'rviz2' whose executable 'rviz2' is FAKE_RVIZ."""
    (folder / 'share' / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (folder / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'rviz2').touch()
    executable = folder / 'lib' / 'rviz2' / 'rviz2'
    executable.parent.mkdir(parents=True)
    executable.write_text(FAKE_RVIZ.format(python=sys.executable))
    executable.chmod(0o755)
    return folder


def ros_args_pairs(argv, flag):
    return [argv[i + 1] for i, value in enumerate(argv[:-1]) if value == flag]


@pytest.mark.slow
@pytest.mark.ros
def test_rviz_launch_file_starts_rviz2_with_the_config_in_the_node_namespace(tmp_path):
    """`ros2 launch openpose_ros pose_estimation_rviz.launch.py`, real, with rviz2 replaced by a recorder."""
    from launch_helpers import TEST_MODEL, RosLaunch
    recorded = tmp_path / 'rviz_args.json'
    prefix = fake_rviz_prefix(tmp_path / 'rviz_prefix')
    env = ros_env(DOMAIN_ID, FAKE_RVIZ_ARGS=recorded,
                  AMENT_PREFIX_PATH=os.pathsep.join([str(prefix), os.environ.get('AMENT_PREFIX_PATH', '')]))
    launch = RosLaunch('pose_estimation_rviz.launch.py',
                       ['namespace:=robot', f'weights:={TEST_MODEL}', 'use_sim_time:=true'],
                       env, tmp_path, tmp_path / 'launch.log')
    try:
        deadline = time.monotonic() + 120
        while not recorded.is_file():
            assert launch.process.poll() is None and time.monotonic() < deadline, launch.output()
            time.sleep(0.2)
        argv = json.loads(recorded.read_text())
        parameters = [yaml.safe_load(Path(path).read_text()) for path in ros_args_pairs(argv, '--params-file')]
    finally:
        launch.interrupt()
    (config,) = ros_args_pairs(argv, '-d')
    assert Path(config).is_file() and Path(config).samefile(RVIZ_CONFIG), config
    assert '/image_annotated:=/robot/image_annotated' in ros_args_pairs(argv, '-r')
    assert '__node:=rviz2' in ros_args_pairs(argv, '-r')
    assert [p['/**']['ros__parameters'] for p in parameters] == [{'use_sim_time': True}]


@pytest.mark.slow
@pytest.mark.ros
def test_ctrl_c_on_ros2_launch_ends_the_node_with_status_0_and_no_error(tmp_path):
    """A terminal's Ctrl-C: SIGINT to the process group of `ros2 launch`, then launch's own SIGINT to the node."""
    from launch_helpers import TEST_MODEL, RosLaunch
    launch = RosLaunch('pose_estimation.launch.py', [f'weights:={TEST_MODEL}', 'camera_topic:=/ctrl_c/image'],
                       ros_env(DOMAIN_ID), tmp_path, tmp_path / 'launch.log')
    try:
        launch.wait_for('active: ', timeout=120)
    except AssertionError:
        launch.stop()
        raise
    status = launch.interrupt()
    output = launch.output()
    assert status == 0, f'ros2 launch exit status {status}:\n{output}'
    errors = [line for line in output.splitlines() if '[ERROR]' in line or 'Traceback' in line]
    assert not errors and 'process has finished cleanly' in output, f'the node did not end cleanly:\n{output}'


def test_rviz_config_shows_the_annotated_image():
    config = yaml.safe_load(RVIZ_CONFIG.read_text())
    displays = config['Visualization Manager']['Displays']
    images = [d for d in displays if d['Class'] == 'rviz_default_plugins/Image']
    assert len(images) == 1 and images[0]['Enabled']
    topic = images[0]['Topic']
    assert topic['Value'] == '/image_annotated'
    # Best effort connects to the node's reliable publisher and never holds it back.
    assert topic['Reliability Policy'] == 'Best Effort' and topic['Depth'] >= 1
    assert config['Panels'][0]['Class'] == 'rviz_common/Displays'
    from openpose_ros.ros import pose_estimation  # the node's class, which creates the publisher
    assert "'image_annotated'" in Path(pose_estimation.__file__).read_text()


def test_package_xml_names_the_launch_and_rviz_dependencies():
    text = (ROOT / 'package.xml').read_text()
    for dependency in ('launch_ros', 'rviz2', 'rclpy', 'sensor_msgs', 'diagnostic_msgs'):
        assert f'<exec_depend>{dependency}</exec_depend>' in text
    cmake = (ROOT / 'CMakeLists.txt').read_text()
    assert 'foreach(_dir launch config)' in cmake
