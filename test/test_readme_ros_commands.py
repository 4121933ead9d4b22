"""The ROS 2 command lines of the README's node section, taken from the README itself and run as typed (in the
environment of `source scripts/ros_env.sh`, from the repository root) against a running node: the README cannot
drift from the tools. Only /path/to/model is replaced, by the test model."""
import re
import subprocess
import time

import pytest

from launch_helpers import TEST_MODEL
from ros_helpers import ROOT, pick_domain_id, ros_env

DOMAIN_ID = pick_domain_id()
SECTION = '## The ROS 2 node'
NODE_STARTS = ('ros2 launch openpose_ros pose_estimation.launch.py', 'ros2 run openpose_ros pose_estimation_node')
FEEDER = 'ros2 run openpose_ros video_publisher'
NOT_RUN = ('ros2 launch openpose_ros pose_estimation_rviz.launch.py',)  # rviz2 is a GUI (test_launch_files.py)
STREAMS = ('ros2 topic echo',)
# What a one-shot command prints on success, where its exit status alone does not say.
SUCCESS_WORDS = {'ros2 node list': '/pose_estimation', 'ros2 param set': 'Set parameter successful',
                 'ros2 lifecycle set': 'Transitioning successful', 'ros2 lifecycle get': 'active'}


def readme_ros_commands():
    """The `ros2 ...` lines of the fenced bash blocks of the README's node section, continuations joined."""
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    section = text[text.index(SECTION):]
    section = section[:section.find('\n## ', len(SECTION))]
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', section, re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'\s+#.*$', '', line).strip()
            if line.startswith('ros2 '):
                commands.append(' '.join(line.split()).replace('/path/to/model', str(TEST_MODEL)))
    return commands


class Commands:
    def __init__(self, tmp_path):
        self.env = ros_env(DOMAIN_ID)
        self.tmp_path = tmp_path
        self.background = []

    def start(self, command):
        log = open(self.tmp_path / f'background{len(self.background)}.log', 'w+', encoding='utf-8')
        process = subprocess.Popen(['bash', '-c', command], env=self.env, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.background.append((process, log))
        return process, log

    def wait_for(self, started, text, timeout=120.0):
        process, log = started
        deadline = time.monotonic() + timeout
        while True:
            log.seek(0)
            output = log.read()
            if text in output:
                return output
            assert process.poll() is None and time.monotonic() < deadline, f'no {text!r}:\n{output}'
            time.sleep(0.2)

    def run(self, command, timeout=60.0):
        run = subprocess.run(['bash', '-c', command], env=self.env, cwd=ROOT, capture_output=True, text=True,
                             timeout=timeout)
        return run.returncode, run.stdout + run.stderr

    def stop_all(self):
        import os
        import signal
        for process, log in reversed(self.background):
            try:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
            log.close()
        self.background.clear()


def test_the_node_section_has_the_commands_a_user_needs():
    commands = readme_ros_commands()
    for start in (*NODE_STARTS, FEEDER, 'ros2 node list', 'ros2 topic echo /poses', 'ros2 param get',
                  'ros2 param set', 'ros2 lifecycle get', 'ros2 lifecycle set'):
        assert any(command.startswith(start) for command in commands), f'the README has no {start!r}'


@pytest.mark.slow
@pytest.mark.ros
def test_the_readme_ros_commands_work_as_typed(tmp_path):
    commands = readme_ros_commands()
    starts = [c for c in commands if c.startswith(NODE_STARTS)]
    feeders = [c for c in commands if c.startswith(FEEDER)]
    streams = [c for c in commands if c.startswith(STREAMS)]
    one_shot = [c for c in commands if c not in starts + feeders + streams and not c.startswith(NOT_RUN)]
    shell = Commands(tmp_path)
    try:
        for index, start in enumerate(starts):
            shell.wait_for(shell.start(start), 'active: ')
            if index == 0:  # everything else against the first way of starting the node
                for feeder in feeders:
                    shell.start(feeder)
                for stream in streams:
                    shell.wait_for(shell.start(stream), 'header:', timeout=60)
                for command in one_shot:
                    status, output = shell.run(command)
                    assert status == 0, f'{command!r} failed ({status}):\n{output}'
                    for prefix, words in SUCCESS_WORDS.items():
                        assert not command.startswith(prefix) or words in output, f'{command!r}:\n{output}'
            else:  # the other ways of starting it give the same node
                status, output = shell.run('ros2 lifecycle get /pose_estimation')
                assert status == 0 and output.startswith('active'), f'{start!r}:\n{output}'
            shell.stop_all()
    finally:
        shell.stop_all()
        shell.run('ros2 daemon stop')  # the daemon that `ros2 node list` and others started for this domain
