"""The newest-frame worker and the frame statistics of the node (openpose_ros.ros.worker), without ROS."""
import threading
import time

import pytest


# --- fast tests of the pieces without ROS --------------------------------------------------------------------
def test_latest_frame_worker_processes_only_the_newest_frame():
    from openpose_ros.ros.worker import LatestFrameWorker

    release, seen = threading.Event(), []

    def handler(item):
        seen.append(item)
        if item == 0:
            release.wait(5)

    worker = LatestFrameWorker(handler)
    worker.start()
    assert not worker.offer(0)
    deadline = time.monotonic() + 5
    while not worker.busy and time.monotonic() < deadline:
        time.sleep(0.001)
    # While 0 is being processed, 1..9 arrive: each replaces the one waiting, 9 is processed next.
    replaced = [worker.offer(item) for item in range(1, 10)]
    assert replaced == [False] + [True] * 8
    release.set()
    deadline = time.monotonic() + 5
    while seen[-1] != 9 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert seen == [0, 9]
    assert worker.stop(timeout=5) == 0


def test_latest_frame_worker_survives_a_failing_frame_and_stops_with_the_waiting_one_dropped():
    from openpose_ros.ros.worker import LatestFrameWorker

    errors, done, gate = [], [], threading.Event()

    def handler(item):
        if item == 'bad':
            raise ValueError('bad frame')
        gate.wait(5)
        done.append(item)

    worker = LatestFrameWorker(handler, on_error=errors.append)
    worker.start()
    worker.offer('bad')
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.001)
    assert [str(e) for e in errors] == ['bad frame']
    worker.offer('good')
    while not worker.busy and time.monotonic() < deadline:
        time.sleep(0.001)
    worker.offer('waiting')
    gate.set()
    assert worker.stop(timeout=5) in (0, 1)  # 'waiting' is dropped unless the worker took it first
    assert done[0] == 'good'


def test_frame_stats_rates_and_latencies_over_the_window():
    from openpose_ros.ros.worker import FrameStats

    now = [100.0]
    stats = FrameStats(window=5.0, clock=lambda: now[0])
    for index in range(60):  # 30 Hz in, every other frame processed at 40 ms latency
        stats.on_received()
        if index % 2:
            stats.on_processed(40.0, 55.0, 30.0, 2)
        else:
            stats.on_dropped()
        now[0] += 1 / 30
    stats.on_rejected('unsupported image encoding', "unsupported image encoding 'yuv422'")
    figures = stats.snapshot()
    assert figures['frames_received'] == 60 and figures['frames_processed'] == 30
    assert figures['frames_dropped'] == 30 and figures['frames_rejected'] == 1
    assert figures['input_rate_hz'] == pytest.approx(30, rel=0.05)
    assert figures['processing_rate_hz'] == pytest.approx(15, rel=0.1)
    assert figures['latency_ms_mean'] == 40.0 and figures['age_ms_max'] == 55.0
    assert figures['poses_per_frame'] == 2 and figures['last_rejection'] == "unsupported image encoding 'yuv422'"
    assert figures['rejected: unsupported image encoding'] == 1
    now[0] += 10  # the window moves on: rates fall to 0, counters stay
    figures = stats.snapshot()
    assert figures['input_rate_hz'] == 0 and figures['latency_ms_mean'] is None
    assert figures['frames_received'] == 60 and figures['seconds_since_last_frame'] == pytest.approx(10 + 1 / 30)


# --- frames that are refused or fail: counted by cause, health levels, bounded logs --------------------------
def test_frame_stats_rates_span_the_frames_not_the_quiet_time_after_them():
    """A run processed at 10 Hz for 3 s, then quiet for 2 s (the end of a video): 10 Hz, not 29 frames / 5 s."""
    from openpose_ros.ros.worker import FrameStats

    now = [50.0]
    stats = FrameStats(window=5.0, clock=lambda: now[0])
    for _ in range(30):
        stats.on_received()
        stats.on_processed(20.0, 30.0, 15.0, 1)
        now[0] += 0.1
    now[0] += 2.0
    figures = stats.snapshot()
    assert figures['processing_rate_hz'] == pytest.approx(10.0, rel=0.01)
    assert figures['input_rate_hz'] == pytest.approx(10.0, rel=0.01)


def test_frame_stats_count_refused_and_failed_frames_by_cause():
    from openpose_ros.ros.worker import FrameStats

    now = [0.0]
    stats = FrameStats(window=5.0, clock=lambda: now[0])
    for index in range(3):
        stats.on_rejected('unsupported image encoding', f"unsupported image encoding 'x{index}'")
    stats.on_rejected('empty image', 'empty image: 0x0 pixels')
    stats.on_failed('InvalidArgument', 'InvalidArgument: wrong dimensions')
    for index in range(40):  # more causes than kept: the rest count as 'other'
        stats.on_rejected(f'cause {index}', 'x')
    figures = stats.snapshot()
    assert figures['rejected: unsupported image encoding'] == 3 and figures['rejected: empty image'] == 1
    assert figures['failed: InvalidArgument'] == 1 and figures['frames_failed'] == 1
    assert figures['last_rejection'] == 'x' and figures['last_failure'] == 'InvalidArgument: wrong dimensions'
    assert figures['frames_rejected'] == 44 and figures['rejected_in_window'] == 44
    assert figures['rejected: other'] == 44 - 4 - (FrameStats.MAX_CAUSES - 2)
    now[0] += 10
    assert stats.snapshot()['rejected_in_window'] == stats.snapshot()['failed_in_window'] == 0
