"""The launch tests can fail: a launch test waiting for poses on a topic that never receives any fails, under
`launch_test` as under the launch_testing pytest plugin."""
import os
import shutil
import subprocess
import sys

import pytest

from ros_helpers import ROOT, pick_domain_id, ros_env

DOMAIN_ID = pick_domain_id()
MUST_FAIL = ROOT / 'test' / 'launch_must_fail' / 'poses_on_a_silent_topic.py'


def python_path():
    return os.pathsep.join([str(ROOT / 'test'), str(ROOT), os.environ.get('PYTHONPATH', '')])


@pytest.mark.slow
@pytest.mark.parametrize('runner', ['launch_test', 'pytest'])
def test_a_launch_test_waiting_on_a_silent_topic_fails(runner, tmp_path):
    if runner == 'launch_test':
        command = [shutil.which('launch_test') or 'launch_test', str(MUST_FAIL)]
    else:  # collected as a test module, as `make test` collects the real launch tests
        shutil.copy(MUST_FAIL, tmp_path / 'test_silent_topic.py')
        command = [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '--rootdir', str(tmp_path), '-c',
                   os.devnull, str(tmp_path / 'test_silent_topic.py')]
    run = subprocess.run(command, env=ros_env(DOMAIN_ID, PYTHONPATH=python_path()), cwd=tmp_path,
                         capture_output=True, text=True, timeout=180)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    # It fails where it should: no message arrived (not an import or launch error).
    assert '0 of 1 messages on /silent/poses' in output, output[-3000:]
