"""The ROS 2 tools of the set-up (scripts/setup_ros_tools.sh): installed from ../shared/vendor where no ROS 2
distribution is sourced, named with how to get them where neither exists, left to a sourced distribution."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ros_helpers import ROOT, pick_domain_id, ros_env

SCRIPT = ROOT / 'scripts' / 'setup_ros_tools.sh'
DOMAIN_ID = pick_domain_id()
VERBS = ('run', 'launch', 'pkg', 'node', 'param', 'lifecycle', 'topic', 'service')


def run_script(venv, env, *arguments):
    return subprocess.run(['bash', str(SCRIPT), str(venv), *arguments], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def bare_venv(tmp_path):
    """A virtual environment with nothing installed (made in a second, without pip)."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=120)
    return venv


def test_without_a_distribution_or_sources_the_set_up_goes_on_and_says_what_is_missing(bare_venv, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != 'ROS_DISTRO'}
    run = run_script(bare_venv, env, str(tmp_path / 'no_vendor'))
    assert run.returncode == 0, run.stderr
    message = ' '.join(run.stderr.split())
    for missing in ('ros2 command', 'launch_testing', 'message_filters', 'hri_msgs', 'tf2_msgs'):
        assert missing in message, message
    assert 'ROS_VENDOR=' in message and 'setup.bash' in message, 'it says how to get them'
    assert not list((bare_venv / 'bin').glob('ros2*')), 'nothing was installed'


def test_with_a_sourced_distribution_nothing_is_built_and_the_missing_packages_are_named(bare_venv):
    run = run_script(bare_venv, {**os.environ, 'ROS_DISTRO': 'jazzy'}, str(ROOT.parent / 'shared' / 'vendor'))
    assert run.returncode == 0, run.stderr
    assert 'sudo apt-get install' in run.stderr and 'ros-jazzy-hri-msgs' in run.stderr, run.stderr
    assert not list((bare_venv / 'bin').glob('ros2*')) and not (bare_venv / 'share').exists()


@pytest.mark.ros
def test_the_tools_are_installed_in_the_virtual_environment():
    venv = Path(sys.prefix)
    if os.environ.get('ROS_DISTRO'):
        pytest.skip('the tools come from the sourced ROS 2 distribution')
    run = run_script(venv, dict(os.environ))  # again: installs nothing, says so at once
    assert run.returncode == 0 and 'installed' in run.stdout, run.stderr
    ros2 = shutil.which('ros2')
    assert ros2 and Path(ros2).parent == venv / 'bin', 'scripts/ros_env.sh puts the ros2 command on PATH'
    help_text = subprocess.run([ros2, '--help'], env=ros_env(DOMAIN_ID), capture_output=True, text=True,
                               timeout=60).stdout
    commands = {line.split()[0] for line in help_text.split('Commands:')[1].splitlines() if line.strip()
                and not line.strip().startswith('Call')}
    assert set(VERBS) <= commands, help_text
    code = ('import launch, launch_ros, launch_testing, launch_testing_ros, rosidl_runtime_py, message_filters;'
            'from composition_interfaces.srv import LoadNode; from hri_msgs.msg import Skeleton2D;'
            'from tf2_msgs.msg import TFMessage; from rclpy.type_support import check_for_type_support;'
            '[check_for_type_support(t) for t in (Skeleton2D, TFMessage, LoadNode)]; print("ok")')
    imports = subprocess.run([sys.executable, '-c', code], env=ros_env(DOMAIN_ID), capture_output=True, text=True,
                             timeout=60)
    assert imports.stdout.strip() == 'ok', imports.stderr
