"""Helpers for tests that use rclpy: the ROS environment check and Python processes talking over DDS.

Tests run in the environment of `source scripts/ros_env.sh`. Each test module picks its own DDS domain
(`pick_domain_id()` at import) and passes `ros_env(domain_id)` to every process it starts, so that tests
running at the same time on one machine do not hear each other, and discovery stays on this machine.
"""
import json
import os
import random
import select
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / 'shared' / 'data'

SETUP_HINT = ('build them with `bash scripts/setup_ros.sh .venv` (part of `make setup`) and run the tests in the '
              'environment of `source scripts/ros_env.sh`')


def pick_domain_id():
    """A DDS domain for one test module, at random in 40..99."""
    return random.SystemRandom().randint(40, 99)


def ros_env(domain_id, **extra):
    """os.environ for a child process: discovery on localhost only, the module's own domain, plus `extra`.

    TEST_TOPIC_SUFFIX, unique per call, lets the processes of one test name their topics apart from any other
    test's that happens to share the domain.
    """
    env = dict(os.environ)
    env['TEST_TOPIC_SUFFIX'] = uuid.uuid4().hex[:12]
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env['PYTHONUNBUFFERED'] = '1'
    env.update({key: str(value) for key, value in extra.items()})
    return env


def require_ros():
    """Fails (never skips) the calling test when rclpy or the built openpose_ros messages cannot be used."""
    try:
        import rclpy  # noqa: F401
        from rclpy.type_support import check_for_type_support
        from sensor_msgs.msg import Image

        from openpose_ros.msg import Pose2DArray
    except ImportError as error:
        pytest.fail(f'rclpy or the openpose_ros messages cannot be imported ({error}): {SETUP_HINT}', pytrace=False)
    try:
        # Loads the C type support libraries, which need LD_LIBRARY_PATH from scripts/ros_env.sh.
        check_for_type_support(Pose2DArray)
        check_for_type_support(Image)
    except Exception as error:  # rclpy raises its own UnsupportedTypeSupport or an ImportError
        pytest.fail(f'the message type support libraries cannot be loaded ({type(error).__name__}: {error}): '
                    f'{SETUP_HINT}', pytrace=False)


def start_python(code, env, cwd=None):
    """Starts `python -c code` (dedented) with pipes for stdout and stderr."""
    return subprocess.Popen([sys.executable, '-c', textwrap.dedent(code)], env=env, cwd=cwd or ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout):
    """Waits for a process from start_python; kills it after `timeout` s. Returns (returncode, stdout, stderr)."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return None, out, err
    return process.returncode, out, err


def last_json_line(out):
    """The last line of stdout that parses as JSON (the child's result), or None."""
    for line in reversed(out.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def run_pair(subscriber_code, publisher_code, env, timeout=60.0):
    """Runs a subscriber process and, once it prints 'ready', a publisher process.

    Returns the subscriber's last JSON line. Fails the test with both processes' output when either fails.
    """
    subscriber = start_python(subscriber_code, env)
    deadline = time.monotonic() + timeout
    # The subscriber prints 'ready' once its subscription exists.
    ready = subscriber.stdout.readline() if select.select([subscriber.stdout], [], [], timeout)[0] else ''
    if ready.strip() != 'ready':
        code, out, err = finish(subscriber, 5)
        pytest.fail(f'subscriber did not start (exit {code}):\n{ready}{out}\n{err}', pytrace=False)
    publisher = start_python(publisher_code, env)
    pub_code, pub_out, pub_err = finish(publisher, max(1.0, deadline - time.monotonic()))
    sub_code, sub_out, sub_err = finish(subscriber, max(5.0, deadline - time.monotonic()))
    report = (f'publisher exit {pub_code}:\n{pub_out}\n{pub_err}\n'
              f'subscriber exit {sub_code}:\n{sub_out}\n{sub_err}')
    if pub_code != 0 or sub_code != 0:
        pytest.fail('DDS processes failed\n' + report, pytrace=False)
    result = last_json_line(sub_out)
    if result is None:
        pytest.fail('subscriber printed no result\n' + report, pytrace=False)
    return result
