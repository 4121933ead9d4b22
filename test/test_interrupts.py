"""openpose_ros.interrupts with real signals: sent to this process, and to a child process that reports what
it saw on its standard output."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import ROOT
from openpose_ros.interrupts import StopRequests

# A child that counts "work items" until a stop is requested, then does its "clean stop" (the safe point), which
# a second Ctrl-C during it aborts. It prints each phase so that the test knows when to signal.
CHILD = textwrap.dedent('''
    import signal, sys, time
    from openpose_ros.interrupts import StopRequests

    def noted(signum):
        print('requested', signal.Signals(signum).name, flush=True)

    try:
        with StopRequests(on_request=noted) as stop:
            print('working', flush=True)
            items = 0
            while not stop.requested:
                items += 1
                time.sleep(0.01)
            print('stopping cleanly after', items, 'items', flush=True)
            time.sleep(float(sys.argv[1]))  # the clean stop: closing outputs, writing a checkpoint
            print('stopped cleanly', flush=True)
    except KeyboardInterrupt:
        print('aborted', flush=True)
        sys.exit(130)
    print('handler restored:', signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)
''')


def _start(tmp_path, clean_stop_s):
    script = tmp_path / 'child.py'
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))
    return subprocess.Popen([sys.executable, str(script), str(clean_stop_s)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)


def _expect_line(process, text):
    line = process.stdout.readline()
    assert text in line, (line, process.stderr.read() if process.poll() is not None else '')


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_the_first_signal_lets_the_run_stop_cleanly(tmp_path, signum):
    process = _start(tmp_path, 0.2)
    try:
        _expect_line(process, 'working')
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == f'requested {signal.Signals(signum).name}'
    assert lines[1].startswith('stopping cleanly after ') and int(lines[1].split()[3]) > 0
    assert lines[2:] == ['stopped cleanly', 'handler restored: True']


def test_a_second_ctrl_c_aborts_the_clean_stop_at_once(tmp_path):
    process = _start(tmp_path, 60)
    try:
        _expect_line(process, 'working')
        process.send_signal(signal.SIGINT)
        _expect_line(process, 'requested SIGINT')
        _expect_line(process, 'stopping cleanly after')
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stdout.splitlines() == ['aborted']
    assert time.monotonic() - started < 30  # not the minute of the clean stop


def test_a_second_sigterm_does_not_abort(tmp_path):
    process = _start(tmp_path, 1.0)
    try:
        _expect_line(process, 'working')
        process.send_signal(signal.SIGTERM)
        _expect_line(process, 'requested SIGTERM')
        _expect_line(process, 'stopping cleanly after')
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert stdout.splitlines() == ['requested SIGTERM', 'stopped cleanly', 'handler restored: True']


def _signal_self(signum):
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # Python runs the handler between bytecodes of the main thread: let it come


def test_the_previous_handlers_come_back_in_this_process():
    seen = []

    def previous(signum, _frame):
        seen.append(signum)

    before = {signum: signal.signal(signum, previous) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with StopRequests() as stop:
            assert signal.getsignal(signal.SIGINT) != previous
            _signal_self(signal.SIGTERM)
            assert stop.requested and stop.signum == signal.SIGTERM and seen == []
        _signal_self(signal.SIGINT)
        _signal_self(signal.SIGTERM)
        assert seen == [signal.SIGINT, signal.SIGTERM]
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_only_the_given_signals_are_caught_and_a_request_is_raised_once():
    seen = []
    before = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        with StopRequests(signals=(signal.SIGINT,)) as stop:
            _signal_self(signal.SIGTERM)
            assert not stop.requested and seen == [signal.SIGTERM]
            stop.raise_if_requested()  # nothing requested: returns
            _signal_self(signal.SIGINT)
            assert stop.requested
            with pytest.raises(KeyboardInterrupt):
                stop.raise_if_requested()
            assert not stop.requested  # consumed: the next Ctrl-C asks again rather than aborting
            _signal_self(signal.SIGINT)
            assert stop.requested
            with pytest.raises(KeyboardInterrupt):
                _signal_self(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_nothing_is_installed():
    found = {}

    def run():
        with StopRequests() as stop:
            found['handler'] = signal.getsignal(signal.SIGINT)
            found['requested'] = stop.requested

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert found == {'handler': signal.default_int_handler, 'requested': False}
