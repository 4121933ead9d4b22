"""Realtime playback of a bag (openpose_ros.bag.realtime): the newest-frame worker drops what arrives while it is
busy, and a bag faster than inference is processed in part."""
import pytest

pytest.importorskip('rosbags')

from conftest import DATA  # noqa: E402
import openpose_ros.messages.typestore as messages  # noqa: E402
from openpose_ros.bag.realtime import NewestFrameWorker  # noqa: E402
from test_bag_evaluate import T0, make_bag, moving_frames, read_bag, run_eval  # noqa: E402
from test_bag_evaluate import learner, model  # noqa: E402,F401  (fixtures: the test model and its learner)


COCO_MINI = DATA / 'coco' / 'coco-mini'


# --- realtime -----------------------------------------------------------------------------------------------
def test_newest_frame_worker_drops_what_arrives_while_busy():
    published, dropped = [], []
    worker = NewestFrameWorker(1.0, lambda item: 0.025, published.append, lambda item, _: dropped.append(item))
    for index in range(6):
        worker.arrive(index, index * 10_000_000)    # every 10 ms, 25 ms of work each
    worker.finish()
    assert [p.item for p in published] == [0, 2, 4, 5] and dropped == [1, 3]
    assert [round(p.age * 1e3, 6) for p in published] == [25, 30, 35, 50]
    slow = NewestFrameWorker(2.0, lambda item: 0.025, published.append)
    for index in range(3):
        slow.arrive(index, index * 100_000_000)     # every 100 ms played at 2x: 50 ms apart, all processed
    assert slow.pending is None and slow.busy == pytest.approx(0.075)


def test_realtime_on_a_bag_faster_than_inference_processes_part_of_it(learner, tmp_path):
    count = 16
    # 500 Hz: 2 ms between frames, far less than one inference.
    frames = [(T0 + i * 2_000_000, T0 + i * 2_000_000, frame) for i, (_, _, frame) in
              enumerate(moving_frames(count))]
    bag = make_bag(tmp_path / 'fast', frames=frames)
    report = run_eval(learner, bag, tmp_path / 'out', realtime=1.0, plots=False).report
    realtime = report['realtime']
    processed = [f for f in report['per_frame'] if f['status'] == 'processed']
    assert 2 <= realtime['processed'] == len(processed) < count / 2
    assert realtime['processed_fraction'] == pytest.approx(len(processed) / count, abs=1e-4)
    assert realtime['dropped'] == count - len(processed) == report['frames']['dropped']
    assert processed[0]['index'] == 0 and processed[-1]['index'] == count - 1   # first and newest are taken
    for frame in processed:
        assert frame['age_ms'] >= frame['processing_ms'] - 1e-3
        assert frame['output_log_time_ns'] > frame['log_time_ns']
    output, _ = read_bag(report['output']['bag'])
    assert [messages.stamp_ns(m.header) for _, m in output['/poses']] == [f['stamp_ns'] for f in processed]
    assert [log for log, _ in output['/poses']] == [f['output_log_time_ns'] for f in processed]
    # The same frames played 10000 times slower (20 s apart): every one is processed, at once.
    slow = run_eval(learner, bag, tmp_path / 'slow', realtime=1e-4, plots=False, annotated='none').report
    assert slow['realtime']['processed'] == count and slow['realtime']['dropped'] == 0
    assert slow['realtime']['age_ms']['max'] == pytest.approx(slow['timing']['processing_ms']['max'], abs=1e-3)
