"""The bag evaluation report's figures: statistics, id breaks, track summary, rejection causes, reading back."""
import json

import pytest

from openpose_ros.bag.report import FORMAT, id_breaks, read_report, reason_kind, stats, track_summary

SECOND = 1_000_000_000


def track(track_id, first_s, last_s, first_bbox, last_bbox, frames=10):
    return {'id': track_id, 'frames': frames, 'first_index': 0, 'last_index': frames - 1,
            'first_stamp_ns': int(first_s * SECOND), 'last_stamp_ns': int(last_s * SECOND),
            'first_bbox': first_bbox, 'last_bbox': last_bbox}


def test_stats_leave_out_missing_values():
    assert stats([]) is None and stats([None]) is None
    assert stats([4, None, 1, 2, 3]) == {'mean': 2.5, 'median': 2.5, 'min': 1.0, 'max': 4.0}
    figures = stats(range(101), percentiles=True)
    assert figures == {'mean': 50.0, 'p50': 50.0, 'p90': 90.0, 'p95': 95.0, 'p99': 99.0, 'max': 100.0}


def test_a_new_id_soon_after_and_where_a_track_ended_is_an_id_break():
    tracks = {1: track(1, 0.0, 2.0, (100, 100, 50, 100), (110, 100, 50, 100)),
              2: track(2, 2.5, 4.0, (115, 105, 50, 100), (120, 100, 50, 100)),   # 0.5 s later, same place: a break
              3: track(3, 2.4, 4.0, (400, 100, 50, 100), (400, 100, 50, 100)),   # same time, elsewhere: a person
              4: track(4, 6.0, 7.0, (120, 100, 50, 100), (120, 100, 50, 100))}   # 2 s after the end: a new person
    assert id_breaks(tracks) == [(1, 2)]
    summary = track_summary(tracks, [])
    assert (summary['count'], summary['id_breaks'], summary['person_tracks']) == (4, 1, 3)
    assert summary['ids_per_person_track'] == round(4 / 3, 3) and summary['single_frame'] == 0
    assert summary['duration_s'] == stats([2.0, 1.5, 1.6, 1.0])


def test_an_ended_track_is_joined_to_one_successor_only():
    tracks = {1: track(1, 0.0, 1.0, (100, 100, 50, 100), (100, 100, 50, 100)),
              2: track(2, 1.2, 2.0, (100, 100, 50, 100), (100, 100, 50, 100)),
              3: track(3, 1.3, 2.0, (105, 100, 50, 100), (105, 100, 50, 100))}
    assert id_breaks(tracks) == [(1, 2)]


def test_rejection_reasons_are_counted_by_their_cause():
    assert reason_kind('image too small: 4x4 (the network needs 8x8)') == 'image too small'
    assert reason_kind('unsupported encoding (yuv422)') == 'unsupported encoding'
    assert reason_kind(ValueError('bad data')) == 'bad data'


def test_read_report_refuses_what_is_not_a_bag_eval_report(tmp_path):
    report = tmp_path / 'report.json'
    report.write_text(json.dumps({'format': FORMAT, 'version': 1, 'frames': {'processed': 3}}))
    assert read_report(report)['frames'] == {'processed': 3}
    other = tmp_path / 'other.json'
    other.write_text(json.dumps({'format': 'something else'}))
    with pytest.raises(ValueError, match='other.json'):
        read_report(other)
