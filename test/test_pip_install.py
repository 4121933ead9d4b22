"""`pip install .` gives the learner and the command line tools without ROS."""
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(out),
                    str(ROOT)], check=True, cwd=out)
    (path,) = out.glob('openpose_ros-*.whl')
    return path


def test_the_wheel_holds_the_learner_and_the_console_scripts(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith('entry_points.txt'))).decode()
    assert 'openpose_ros/learner.py' in names and 'openpose_ros/network/mobilenet.py' in names
    for script in ('openpose-infer', 'openpose-train', 'openpose-evaluate', 'openpose-bag-eval'):
        assert script in entry_points


def test_the_installed_learner_runs_without_ros(wheel, tmp_path):
    target = tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target', str(target), str(wheel)],
                   check=True)
    env = {key: value for key, value in os.environ.items()
           if key not in ('PYTHONPATH', 'AMENT_PREFIX_PATH', 'LD_LIBRARY_PATH')}
    env['PYTHONPATH'] = str(target)
    code = ('import sys, numpy as np; from openpose_ros import LightweightOpenPoseLearner as L; '
            'l = L(device="cpu").allow_random_weights(); l.infer(np.zeros((64, 64, 3), np.uint8)); '
            'import openpose_ros.learner as m; assert "rclpy" not in sys.modules; print(m.__file__)')
    result = subprocess.run([sys.executable, '-c', code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(target))
