"""The report of a bag evaluation: JSON (report.json), a short text summary (report.txt) and PNG plots.

report.json (format 'openpose_ros.bag_eval', version 1):
  input, output, model         what was read (recovered_messages: how many messages of a truncated mcap
                               file could be read, else null), what was written (topics, message counts as
                               read back from the output bag after a write error, poses.json), which model
                               ran with which node parameters (node_settings), warm-up time
  interrupted, error           whether Ctrl-C stopped the run; why the bag could not be read to its end or
                               the outputs could not be written (per_frame: output_log_time_ns of the frames
                               that reached the output bag)
  frames       read (messages of the topic in the time range), processed, rejected, rejected_reasons
               {cause: count} (per_frame has each frame's full reason), dropped (realtime only),
               stamps_from_log_time (frames whose header stamp was zero), stamps_not_increasing, first/last
               stamp, duration_s, frame_rate_hz (of the frames read)
  people       poses (total over processed frames), per_frame {mean, median, min, max}, frames_with_people,
               histogram {people: frames}
  timing       processing_ms percentiles {mean, p50, p90, p95, p99, max} (decoding + inference of one frame,
               as the node's worker would spend it), processing_fps (1000 / mean processing_ms), decode_ms and
               stages_ms (preprocess, network, upsample, keypoints, grouping, tracking, smoothing), wall_s and
               wall_fps (the whole run with reading, drawing and writing)
  tracks       count, length_frames and duration_s {mean, median, min, max}, single_frame, new_ids_per_minute
               (ids first seen after the first processed frame per minute of stamps), id_breaks (a track
               ending and, within 1 s, a new id starting where it ended: a likely change of id of one person),
               person_tracks (tracks joined across those breaks), ids_per_person_track (1.0 = no churn)
  realtime     (with --realtime) rate, input_frame_rate_hz, frames_offered, processed, processed_fraction,
               dropped, age_ms percentiles (arrival of a frame to the publication of its poses, in playback
               time), busy_fraction, recorded_delay_ms (log time - header stamp in the input bag)
  depth        (with a depth topic, else null) topic, info_topic, slop_s and settings (depth_min_range,
               depth_max_range, depth_window_scale) used; of the published frames: frames_with_depth (paired with
               a depth image, so with poses_3d), frames_without_depth (no depth image of a matching stamp, or no
               CameraInfo), depth_rejected (a depth image or CameraInfo that cannot be used), keypoints_found (of
               the frames with depth), keypoints_with_depth, valid_depth_fraction (their ratio; null with none)
  coco         (with annotations) AP, AP50, ... of the published (smoothed) poses, unsmoothed {AP, ...} of the
               same poses before smoothing, annotated_frames, evaluated_frames, not_processed, detections
  per_frame    one entry per frame read (see FrameRecord.as_dict); track_list: one entry per track id
  plots        the PNG files written
"""
import importlib.util
import json
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from openpose_ros.files import write_text

if TYPE_CHECKING:  # evaluate.py imports this module
    from openpose_ros.bag.evaluate import FrameRecord

FORMAT = 'openpose_ros.bag_eval'
VERSION = 1
BREAK_GAP_S = 1.0          # a new id starting this soon after a track ended ...
BREAK_DISTANCE = 0.5       # ... with its box centre within this fraction of the box height: same person
COCO_METRICS = ('AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl')
REPORT_NAME, SUMMARY_NAME = 'report.json', 'report.txt'
PLOT_NAMES = ('people_per_frame.png', 'processing_time.png', 'track_lifetimes.png')


def stats(values, percentiles=False):
    """{count, mean, median, min, max} (with percentiles: {mean, p50, p90, p95, p99, max}) of numbers;
    None for none."""
    values = np.asarray([v for v in values if v is not None], np.float64)
    if values.size == 0:
        return None
    if percentiles:
        p50, p90, p95, p99 = np.percentile(values, (50, 90, 95, 99))
        out = {'mean': values.mean(), 'p50': p50, 'p90': p90, 'p95': p95, 'p99': p99, 'max': values.max()}
    else:
        out = {'mean': values.mean(), 'median': np.median(values), 'min': values.min(), 'max': values.max()}
    return {key: round(float(value), 3) for key, value in out.items()}


def _centre_height(box):
    x, y, width, height = box
    return np.array([x + width / 2, y + height / 2]), max(height, width, 1.0)


def id_breaks(tracks, gap_s=BREAK_GAP_S, distance=BREAK_DISTANCE):
    """Pairs (old id, new id) where a track ended and a new id started soon after at the same place.

    A heuristic for id churn without ground truth: each new id is joined to at most one ended track (the
    latest ending one that qualifies), and each ended track to at most one successor.
    """
    ordered = sorted(tracks.values(), key=lambda t: t['first_stamp_ns'])
    taken, pairs = set(), []
    for new in ordered:
        centre, size = _centre_height(new['first_bbox'])
        best = None
        for old in ordered:
            if old['id'] in taken or old['id'] == new['id']:
                continue
            gap = (new['first_stamp_ns'] - old['last_stamp_ns']) / 1e9
            if not 0 < gap <= gap_s:
                continue
            old_centre, old_size = _centre_height(old['last_bbox'])
            if np.linalg.norm(centre - old_centre) > distance * max(size, old_size):
                continue
            if best is None or old['last_stamp_ns'] > best['last_stamp_ns']:
                best = old
        if best is not None:
            taken.add(best['id'])
            pairs.append((best['id'], new['id']))
    return pairs


def reason_kind(reason):
    """A rejection reason without its details (sizes, lists), as the node's diagnostics count them: frames
    rejected for the same cause share it."""
    return str(reason).split(':')[0].split(' (')[0]


def build_report(records, tracks, meta, wall_s, realtime=None, busy_s=None, stamps_not_increasing=0,
                 interrupted=False, error=None):
    """The report dict (see the module docstring) from the frame records and tracks of a run."""
    processed = [r for r in records if r.status == 'processed']
    report = {'format': FORMAT, 'version': VERSION, **meta, 'interrupted': bool(interrupted), 'error': error,
              'frames': _frames_section(records, realtime is not None, stamps_not_increasing),
              'people': _people_section(processed), 'timing': _timing_section(processed, wall_s),
              'tracks': track_summary(tracks, processed), 'realtime': None, 'coco': None}
    if realtime is not None:
        report['realtime'] = realtime_summary(records, realtime, busy_s)
    if report.get('depth') is not None:
        report['depth'] = dict(report['depth'], **depth_summary(records))
    report['per_frame'] = [r.as_dict() for r in records]
    report['track_list'] = [_track_entry(t) for t in sorted(tracks.values(), key=lambda t: t['id'])]
    return report


def _frames_section(records: list['FrameRecord'], realtime: bool, stamps_not_increasing: int) -> dict:
    by_status = Counter(r.status for r in records)
    reasons: dict[str, int] = {}
    for record in records:
        if record.status == 'rejected':
            kind = reason_kind(record.reason)
            reasons[kind] = reasons.get(kind, 0) + 1
    stamps = [r.stamp_ns for r in records]
    duration_s = (max(stamps) - min(stamps)) / 1e9 if stamps else 0.0
    return {
        'read': len(records), 'processed': by_status['processed'], 'rejected': by_status['rejected'],
        'rejected_reasons': reasons, 'dropped': by_status['dropped'] if realtime else 0,
        'stamps_from_log_time': sum(r.stamp_source == 'log' for r in records),
        'stamps_not_increasing': int(stamps_not_increasing),
        'first_stamp_ns': min(stamps) if stamps else None, 'last_stamp_ns': max(stamps) if stamps else None,
        'duration_s': round(duration_s, 6),
        'frame_rate_hz': round((len(records) - 1) / duration_s, 3) if duration_s > 0 else None,
    }


def _people_section(processed: list['FrameRecord']) -> dict:
    people = [r.people for r in processed]
    histogram: dict[str, int] = {}
    for count in people:
        histogram[str(count)] = histogram.get(str(count), 0) + 1
    return {'poses': int(sum(people)), 'per_frame': stats(people),
            'frames_with_people': sum(1 for p in people if p > 0),
            'histogram': dict(sorted(histogram.items(), key=lambda kv: int(kv[0])))}


def _timing_section(processed: list['FrameRecord'], wall_s: float) -> dict:
    processing = [r.processing_ms for r in processed]
    mean_ms = float(np.mean(processing)) if processing else None
    stage_names = sorted({name for r in processed for name in r.stages_ms})
    return {
        'processing_ms': stats(processing, percentiles=True),
        'processing_fps': round(1e3 / mean_ms, 3) if mean_ms else None,
        'decode_ms': stats([r.decode_ms for r in processed], percentiles=True),
        'infer_ms': stats([r.infer_ms for r in processed], percentiles=True),
        'stages_ms': {name: stats([r.stages_ms.get(name) for r in processed], percentiles=True)
                      for name in stage_names},
        'wall_s': round(wall_s, 3), 'wall_fps': round(len(processed) / wall_s, 3) if wall_s > 0 else None,
    }


def _track_entry(track):
    return {'id': track['id'], 'frames': track['frames'], 'first_index': track['first_index'],
            'last_index': track['last_index'], 'first_stamp_ns': track['first_stamp_ns'],
            'last_stamp_ns': track['last_stamp_ns'],
            'duration_s': round((track['last_stamp_ns'] - track['first_stamp_ns']) / 1e9, 6)}


def track_summary(tracks, processed):
    """The report's `tracks` figures (see the module docstring) of `tracks` ({track id: {'frames', 'first_stamp_ns',
    'last_stamp_ns', ...}}) over the processed FrameRecords `processed`."""
    lengths = [t['frames'] for t in tracks.values()]
    durations = [(t['last_stamp_ns'] - t['first_stamp_ns']) / 1e9 for t in tracks.values()]
    breaks = id_breaks(tracks)
    out = {'count': len(tracks), 'length_frames': stats(lengths), 'duration_s': stats(durations),
           'single_frame': sum(1 for n in lengths if n == 1), 'new_ids_per_minute': None,
           'id_breaks': len(breaks), 'person_tracks': len(tracks) - len(breaks),
           'ids_per_person_track': round(len(tracks) / (len(tracks) - len(breaks)), 3) if tracks else None}
    if processed:
        first, last = processed[0].stamp_ns, max(r.stamp_ns for r in processed)
        minutes = (last - first) / 60e9
        if minutes > 0:
            born_later = sum(1 for t in tracks.values() if t['first_stamp_ns'] > first)
            out['new_ids_per_minute'] = round(born_later / minutes, 3)
    return out


def depth_summary(records):
    """The depth figures of the published frames (see the module docstring)."""
    paired = [r for r in records if r.depth == 'paired']
    found = sum(r.keypoints_found for r in paired)
    valid = sum(r.keypoints_with_depth for r in paired)
    return {'frames_with_depth': len(paired),
            'frames_without_depth': sum(1 for r in records if r.depth == 'unmatched'),
            'depth_rejected': sum(1 for r in records if r.depth == 'rejected'),
            'keypoints_found': found, 'keypoints_with_depth': valid,
            'valid_depth_fraction': round(valid / found, 4) if found else None}


def realtime_summary(records, rate, busy_s):
    """The report's `realtime` figures (see the module docstring) of the FrameRecords of a replay at playback `rate`;
    `busy_s`: the seconds the worker spent processing (None: no busy_fraction)."""
    offered = len(records)
    published = [r for r in records if r.publish_s is not None]
    processed = [r for r in records if r.status == 'processed']
    arrivals = [r.arrival_s for r in records if r.arrival_s is not None]
    span = (max(arrivals) - min(arrivals)) if arrivals else 0.0
    last_publish = max((r.publish_s for r in published), default=0.0)
    return {
        'rate': rate, 'frames_offered': offered,
        'input_frame_rate_hz': round((offered - 1) / span, 3) if span > 0 else None,
        'processed': len(processed), 'processed_fraction': round(len(processed) / offered, 4) if offered else None,
        'dropped': sum(1 for r in records if r.status == 'dropped'),
        'rejected': sum(1 for r in records if r.status == 'rejected'),
        'age_ms': stats([(r.publish_s - r.arrival_s) * 1e3 for r in processed], percentiles=True),
        'busy_fraction': round(busy_s / last_publish, 4) if busy_s is not None and last_publish > 0 else None,
        'recorded_delay_ms': stats([(r.log_time_ns - r.stamp_ns) / 1e6 for r in records
                                    if r.stamp_source == 'header'], percentiles=True),
    }


def coco_metrics(coco, results, annotated_frames, results_path=None):
    """COCO keypoint AP over the annotated frames that were processed (results of the others are absent)."""
    from openpose_ros.evaluation.metrics import evaluate_keypoints, write_results
    annotated_ids = {int(image['id']) for image in coco['images']}
    evaluated = sorted(annotated_frames)
    out = {'annotated_frames': len(annotated_ids), 'evaluated_frames': len(evaluated),
           'not_processed': len(annotated_ids - set(evaluated)), 'detections': len(results)}
    if results_path is not None:
        write_results(results_path, results)
        out['results'] = str(results_path)
    if not evaluated:
        out['error'] = 'no annotated frame was processed (check the frame convention: stamp_ns or frame_index)'
        return out
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        metrics = evaluate_keypoints(coco, results, image_ids=evaluated)
    out.update({name: round(value, 4) for name, value in metrics.items()})
    return out


# --- text -------------------------------------------------------------------------------------------------
def _fmt(value, unit='', digits=1):
    if value is None:
        return 'n/a'
    return f'{value:.{digits}f}{unit}' if isinstance(value, float) else f'{value}{unit}'


def _percent(fraction: float | None) -> str:
    return _fmt(100 * fraction if fraction is not None else None, '%')


def summary_text(report):
    """A short human-readable summary of a report."""
    lines = _heading_lines(report) + _frames_lines(report['frames'], bool(report.get('realtime')))
    lines += [_people_line(report['people']), _processing_line(report['timing'], report['model']),
              _tracks_line(report['tracks'])]
    if report.get('realtime'):
        lines.append(_realtime_line(report['realtime']))
    if report.get('depth'):
        lines.append(_depth_line(report['depth']))
    if report.get('coco'):
        lines.append(_coco_line(report['coco']))
    out = report['output']
    lines.append(f"output bag {out['bag']} ({out['storage']}): "
                 + ', '.join(f'{topic} x{count}' for topic, count in out['messages'].items()))
    lines += [f'warning: {warning}' for warning in report.get('warnings', [])]
    return '\n'.join(lines) + '\n'


def _heading_lines(report: dict) -> list[str]:
    source = report['input']
    lines = [f"bag {source['bag']} ({source['storage']}), topic {source['topic']} "
             f"({source['msgtype'].rsplit('/', 1)[-1]})"]
    if report['interrupted']:
        lines.append('INTERRUPTED: the run was stopped before the end of the bag; figures cover what was read.')
    if report.get('error'):
        lines.append(f"ERROR: {report['error']}")
    return lines


def _frames_lines(f: dict, realtime: bool) -> list[str]:
    lines = [f"frames: {f['read']} read, {f['processed']} processed, {f['rejected']} rejected"
             + (f", {f['dropped']} dropped (realtime)" if realtime else '')
             + f"; {_fmt(f['duration_s'], ' s')} of stamps at {_fmt(f['frame_rate_hz'], ' Hz')}"]
    lines += [f'  rejected x{count}: {reason}' for reason, count in f['rejected_reasons'].items()]
    if f['stamps_from_log_time']:
        lines.append(f"  {f['stamps_from_log_time']} frames had no header stamp: their log time was used")
    return lines


def _people_line(p: dict) -> str:
    per_frame = p['per_frame'] or {}
    return (f"people: {p['poses']} poses, {_fmt(per_frame.get('mean'), digits=2)} per frame "
            f"(max {_fmt(per_frame.get('max'), digits=0)}), {p['frames_with_people']} frames with people")


def _processing_line(t: dict, model: dict) -> str:
    ms = t['processing_ms'] or {}
    return (f"processing: {_fmt(t['processing_fps'], ' FPS')}; per frame p50 {_fmt(ms.get('p50'), ' ms')}, "
            f"p90 {_fmt(ms.get('p90'), ' ms')}, p99 {_fmt(ms.get('p99'), ' ms')}, "
            f"max {_fmt(ms.get('max'), ' ms')} (backend {model.get('backend') or '?'}); "
            f"whole run {_fmt(t['wall_s'], ' s')}, {_fmt(t['wall_fps'], ' FPS')}")


def _tracks_line(k: dict) -> str:
    lengths = k['length_frames'] or {}
    return (f"tracks: {k['count']} ids, length {_fmt(lengths.get('median'), digits=0)} frames median "
            f"(max {_fmt(lengths.get('max'), digits=0)}), {k['single_frame']} single-frame; "
            f"{_fmt(k['new_ids_per_minute'], ' new ids/min')}, {k['id_breaks']} likely id breaks, "
            f"{_fmt(k['ids_per_person_track'], ' ids per person-track', 2)}")


def _realtime_line(rt: dict) -> str:
    age = rt['age_ms'] or {}
    return (f"realtime x{rt['rate']:g}: {rt['processed']}/{rt['frames_offered']} frames processed "
            f"({_percent(rt['processed_fraction'])}) at "
            f"{_fmt(rt['input_frame_rate_hz'], ' Hz')} input; age of published poses p50 "
            f"{_fmt(age.get('p50'), ' ms')}, p90 {_fmt(age.get('p90'), ' ms')}, "
            f"max {_fmt(age.get('max'), ' ms')}")


def _depth_line(depth: dict) -> str:
    return (f"depth {depth['topic']}: {depth['frames_with_depth']} frames with depth, "
            f"{depth['frames_without_depth']} without a matching depth image, {depth['depth_rejected']} "
            f"rejected; {_percent(depth['valid_depth_fraction'])} of the found "
            f"keypoints with valid depth ({depth['keypoints_with_depth']}/{depth['keypoints_found']})")


def _coco_line(coco: dict) -> str:
    if 'AP' not in coco:
        return f"COCO keypoints: {coco.get('error')}"
    raw = coco.get('unsmoothed') or {}
    return (f"COCO keypoints on {coco['evaluated_frames']} annotated frames: AP {coco['AP']:.3f}, "
            f"AP50 {coco['AP50']:.3f}, AR {coco['AR']:.3f}"
            + (f" (unsmoothed: AP {raw['AP']:.3f})" if 'AP' in raw else '')
            + (f" ({coco['not_processed']} annotated frames not processed)" if coco['not_processed'] else ''))


# --- files ------------------------------------------------------------------------------------------------
def _clean(value):
    """JSON cannot hold NaN or infinity: None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def write_report(report, folder):
    """Writes report.json and report.txt into `folder`; returns their paths."""
    folder = Path(folder)
    head = {key: value for key, value in report.items() if key not in ('per_frame', 'track_list')}
    text = json.dumps(_clean(head), indent=1, allow_nan=False)[:-2]
    for key in ('per_frame', 'track_list'):
        rows = ',\n'.join(json.dumps(_clean(row), separators=(',', ':'), allow_nan=False) for row in report[key])
        text += f',\n "{key}": [\n{rows}\n ]'
    text += '\n}\n'
    return (write_text(folder / REPORT_NAME, text),
            write_text(folder / SUMMARY_NAME, summary_text(report)))


def read_report(path):
    """The report.json at `path` as a dict; ValueError when it is not a bag_eval report."""
    report = json.loads(Path(path).read_text(encoding='utf-8'))
    if report.get('format') != FORMAT:
        raise ValueError(f'{path} is not an {FORMAT} report')
    return report


def write_plots(report, records, folder):
    """people_per_frame.png, processing_time.png and track_lifetimes.png in `folder`; [] (with a warning in the
    report) when matplotlib is not installed."""
    if importlib.util.find_spec('matplotlib') is None:
        report.setdefault('warnings', []).append('matplotlib is not installed: no plots (pip install matplotlib)')
        return []
    folder = Path(folder)
    origin = report['frames']['first_stamp_ns'] or 0
    processed = [r for r in records if r.status == 'processed']
    seconds = np.array([(r.stamp_ns - origin) / 1e9 for r in processed])
    return [_plot_people(records, processed, seconds, origin, folder / PLOT_NAMES[0]),
            _plot_processing_time(report, processed, seconds, folder / PLOT_NAMES[1]),
            _plot_track_lifetimes(report['track_list'], origin, folder / PLOT_NAMES[2])]


def _plot_people(records: list['FrameRecord'], processed: list['FrameRecord'], seconds: np.ndarray, origin: int,
                 path: Path) -> Path:
    figure, axis = _figure(3.2)
    axis.step(seconds, [r.people for r in processed], where='post', lw=1)
    lost = [(r.stamp_ns - origin) / 1e9 for r in records if r.status != 'processed']
    if lost:
        axis.plot(lost, np.zeros(len(lost)), '|', color='tab:red', ms=8, label='not processed')
        axis.legend(loc='upper right', fontsize=8)
    axis.set(xlabel='time (s, frame stamps)', ylabel='people', title='People per frame')
    axis.yaxis.get_major_locator().set_params(integer=True)
    return _save(figure, path)


def _plot_processing_time(report: dict, processed: list['FrameRecord'], seconds: np.ndarray, path: Path) -> Path:
    figure, axis = _figure(3.2)
    axis.plot(seconds, [r.processing_ms for r in processed], lw=0.8, label='decode + inference')
    timing = report['timing']['processing_ms']
    if timing:
        for key, style in (('p50', '--'), ('p95', ':')):
            axis.axhline(timing[key], ls=style, color='gray', lw=0.8, label=f'{key} {timing[key]:.1f} ms')
    rate = report['frames']['frame_rate_hz']
    if rate:
        speed = report['realtime']['rate'] if report.get('realtime') else 1.0
        axis.axhline(1e3 / rate / speed, color='tab:red', lw=0.8, label=f'frame period ({1e3 / rate / speed:.1f} ms)')
    axis.set(xlabel='time (s, frame stamps)', ylabel='ms', title='Processing time per frame')
    axis.legend(loc='upper right', fontsize=8)
    return _save(figure, path)


def _plot_track_lifetimes(tracks: list[dict], origin: int, path: Path) -> Path:
    figure, axis = _figure(max(2.5, min(12, 0.12 * len(tracks) + 1.5)))
    for row, track in enumerate(tracks):
        start = (track['first_stamp_ns'] - origin) / 1e9
        axis.plot([start, start + track['duration_s']], [row, row], lw=2, solid_capstyle='butt')
        if track['duration_s'] == 0:
            axis.plot([start], [row], '.', ms=3, color='black')
    if len(tracks) <= 30:
        axis.set_yticks(range(len(tracks)), [str(track['id']) for track in tracks])
    else:
        axis.yaxis.get_major_locator().set_params(integer=True)
    axis.set(xlabel='time (s, frame stamps)', ylabel='track id' if len(tracks) <= 30 else 'track (in order of id)',
             title=f"Track lifetimes ({len(tracks)} ids)")
    return _save(figure, path)


def _figure(height):
    """A 9-inch-wide figure and its axes, drawn by Agg: no pyplot, so neither the process's matplotlib backend
    nor pyplot's list of open figures is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(9, height))
    FigureCanvasAgg(figure)
    return figure, figure.subplots()


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
