"""Offline evaluation of a camera bag: pose estimation on every frame (or on what the live node would have
taken, with `realtime`), an output bag of what the node publishes, and a report.

    from openpose_ros.runtime.loading import load_for_inference
    from openpose_ros.bag import BagEvalOptions, evaluate_bag
    learner, _, backend = load_for_inference('models/openpose_default')
    result = evaluate_bag(learner, BagEvalOptions('camera_bag', 'out/'), backend)
    print(result.report['timing']['processing_fps'])

Tracking and smoothing run on the frames' own stamps (header stamps; the log time where a header stamp is zero),
never on the clock of this machine, so a bag gives the same poses however fast it is processed.
The pipeline is configured like pose_estimation_node: its parameter defaults (openpose_ros.parameters), or the
values of a ROS 2 parameter file (node_settings), applied with the node's own
openpose_ros.runtime.configured_model.apply_settings, so that the output bag holds what the node would publish.
"""
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from openpose_ros.bag import report as reporting
from openpose_ros.bag.realtime import NewestFrameWorker
from openpose_ros.bag.writer import ANNOTATED_MODES, OutputBag, OutputError, check_output_bag, ensure_writable
from openpose_ros.files import refuse_replacing
from openpose_ros.formats.bag_reader import STORAGES, BagError, BagInput, decode
from openpose_ros.formats.coco import poses_to_results
from openpose_ros.formats.poses_json import document, frame_record, write_document
from openpose_ros.inference.image import ImageRejected
from openpose_ros.inference.lifting import Intrinsics
from openpose_ros.inference.pipeline import PoseStream, lift
from openpose_ros.interrupts import StopRequests
from openpose_ros.messages import typestore as messages
from openpose_ros.messages.bodies import BodyIds, FrameBodies
from openpose_ros.messages.conversions import depth_msg_to_array, poses_3d_to_msg
from openpose_ros.messages.types import StoreTypes, with_frame
from openpose_ros.runtime.configured_model import depth_settings, stream_settings

LOG = logging.getLogger(__name__)
POSES_NAME = 'poses.json'
COCO_RESULTS_NAME = 'coco_results.json'
MAX_OFFSET_S = 1e9                  # --start/--end: seconds from the bag start (about 31 years)
REALTIME_RANGE = (1e-6, 1e6)        # --realtime: playback rates (a million times slower or faster)


def check_offset(name: str, value) -> None:
    """ValueError unless `value` (start or end) is None or a number of seconds in [0, MAX_OFFSET_S]."""
    if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_OFFSET_S):
        raise ValueError(f'{name} must be in [0, {MAX_OFFSET_S:g}] seconds from the bag start, got {value}')


def check_realtime(value) -> None:
    """ValueError unless `value` is None or a playback rate in REALTIME_RANGE."""
    low, high = REALTIME_RANGE
    if value is not None and not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f'the realtime playback rate must be in [{low:g}, {high:g}], got {value}')


# --- the node's configuration -------------------------------------------------------------------------------
NODE_NAME = 'pose_estimation'
# The node's parameters that shape what it publishes; the others (model, QoS, diagnostics) do not apply here or
# come from bag_eval's own options.
PIPELINE_PARAMS = ('base_height', 'max_aspect_ratio', 'upsample_ratio', 'peak_threshold', 'min_paf_score',
                   'success_ratio', 'min_keypoints', 'grouping_min_score', 'min_pose_score', 'track',
                   'tracker_max_missed', 'tracker_min_similarity', 'smooth', 'smoothing_min_cutoff', 'smoothing_beta',
                   'smoothing_d_cutoff')
DEPTH_PARAMS = ('depth_min_range', 'depth_max_range', 'depth_window_scale')


def read_params_file(path, node=NODE_NAME):
    """The parameter values a ROS 2 parameter file gives the node: its '/**' section, then the sections named
    after the node (`node`, '/node' or '<namespace>/node'), each under 'ros__parameters'."""
    from openpose_ros.formats.yaml_file import read_yaml
    path = Path(path)
    try:
        document = read_yaml(path)
    except (OSError, ValueError) as error:
        raise ValueError(f'cannot read the parameter file {path}: {error}') from error
    if not isinstance(document, dict):
        raise ValueError(f'{path} is not a ROS 2 parameter file (a mapping of node names)')
    values, found = {}, False
    ordered = sorted(document.items(), key=lambda item: item[0] != '/**')
    for name, section in ordered:
        if name == '/**' or str(name).strip('/').split('/')[-1] == node:
            if not isinstance(section, dict) or not isinstance(section.get('ros__parameters'), dict):
                raise ValueError(f'{path}: section {name!r} has no ros__parameters mapping')
            values.update(section['ros__parameters'])
            found = True
    if not found:
        raise ValueError(f'{path} has no section for the node ({node!r} or \'/**\'); sections: '
                         f'{", ".join(map(str, document))}')
    return values


def node_settings(params_file=None, **overrides):
    """pose_estimation_node's parameter values: its defaults, then those of `params_file` (a ROS 2 parameter
    file), then `overrides` (None values ignored). ValueError with the reasons when a value is refused."""
    import openpose_ros.parameters as params
    settings = params.defaults()
    if params_file is not None:
        settings.update(read_params_file(params_file))
    settings.update({name: value for name, value in overrides.items() if value is not None})
    reasons = params.check_all(settings)
    if reasons:
        where = f' ({params_file})' if params_file else ''
        raise ValueError(f'node parameters refused{where}: ' + '; '.join(reasons))
    return settings


def apply_node_settings(learner, settings):
    """Configures the learner's decoding thresholds, tracker and smoother as the node does. (The base height is
    a model option: load_for_inference(base_height=settings['base_height'] or None).)"""
    from openpose_ros.runtime.configured_model import apply_settings
    apply_settings(learner, settings)


# --- options and results ------------------------------------------------------------------------------------
@dataclass
class BagEvalOptions:
    """bag: input bag (folder, .db3 or .mcap); output: folder for the output bag, report and plots.

    topic: image topic (default: the bag's only one); start/end: seconds from the bag's first message;
    storage: of the output bag, 'same' as the input, 'sqlite3' or 'mcap'; output_bag: its path (default
    <output>/<input name>_poses); namespace: prefix of the output topics; annotated: 'compressed' (JPEG
    CompressedImage), 'raw' (Image) or 'none'; realtime: playback rate for the live-node replay (None: every frame);
    annotations: COCO keypoint file naming frames (see load_frame_annotations); settings: the node's parameter
    values (node_settings(); None: the node's defaults); plots: write PNG plots; progress: a progress bar on
    stderr; overwrite: replace an existing output bag of bag_eval (see writer.check_output_bag).
    depth: lift the poses to 3D when the bag holds a depth topic and its CameraInfo (paired by stamp within the
    settings' depth_slop); depth_topic, depth_info_topic: those topics (default: found as BagInput.select_depth
    finds them).
    """
    bag: str
    output: str
    topic: str = None
    start: float = None
    end: float = None
    storage: str = 'same'
    output_bag: str = None
    namespace: str = ''
    annotated: str = 'compressed'
    realtime: float = None
    annotations: str = None
    settings: dict = None
    plots: bool = True
    progress: bool = True
    overwrite: bool = False
    depth: bool = True
    depth_topic: str = None
    depth_info_topic: str = None

    def validate(self):
        """Raises ValueError, saying why, for an unknown storage or annotated mode, a start or end outside
        [0, MAX_OFFSET_S] seconds or an end not after the start, a realtime rate outside REALTIME_RANGE, or node
        settings that the node would refuse."""
        if self.storage not in ('same',) + STORAGES:
            raise ValueError(f'storage must be same, {" or ".join(STORAGES)}, not {self.storage!r}')
        if self.annotated not in ANNOTATED_MODES:
            raise ValueError(f'annotated must be one of {", ".join(ANNOTATED_MODES)}, not {self.annotated!r}')
        check_offset('start', self.start)
        check_offset('end', self.end)
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f'end ({self.end} s) must come after start ({self.start} s)')
        check_realtime(self.realtime)
        if self.settings is not None:
            import openpose_ros.parameters as params
            reasons = params.check_all(self.settings)
            if reasons:
                raise ValueError('node parameters refused: ' + '; '.join(reasons))


@dataclass
class FrameRecord:
    """What happened to one input frame. status: 'processed', 'rejected' (reason says why) or 'dropped'
    (realtime: superseded while the worker was busy). Times in milliseconds; realtime times in seconds of
    playback from the first frame. depth (with a depth topic, for the published frames): 'paired', 'unmatched'
    or 'rejected', depth_reason why not paired; keypoints_found and keypoints_with_depth of a paired frame."""
    index: int
    log_time_ns: int
    stamp_ns: int
    stamp_source: str
    status: str = 'processed'
    reason: str = None
    width: int = None
    height: int = None
    decode_ms: float = None
    infer_ms: float = None
    processing_ms: float = None
    stages_ms: dict = field(default_factory=dict)
    people: int = 0
    ids: list = field(default_factory=list)
    arrival_s: float = None
    start_s: float = None
    publish_s: float = None
    output_log_time_ns: int = None
    depth: str = None
    depth_reason: str = None
    keypoints_found: int = None
    keypoints_with_depth: int = None

    def as_dict(self):
        """The frame's entry in report.json's per_frame, with only the fields that apply to it: the timings of a
        processed frame, the depth figures with a depth topic, the playback times in a realtime replay. Milliseconds are
        rounded to 3 decimals, playback seconds to 6."""
        out = {'index': self.index, 'stamp_ns': self.stamp_ns, 'log_time_ns': self.log_time_ns,
               'stamp_source': self.stamp_source, 'status': self.status}
        if self.reason:
            out['reason'] = self.reason
        if self.status == 'processed':
            out.update(width=self.width, height=self.height, people=self.people, ids=list(self.ids),
                       decode_ms=_round(self.decode_ms), infer_ms=_round(self.infer_ms),
                       processing_ms=_round(self.processing_ms),
                       stages_ms={k: _round(v) for k, v in self.stages_ms.items()},
                       output_log_time_ns=self.output_log_time_ns)
        if self.depth is not None:
            out.update(depth=self.depth, depth_reason=self.depth_reason, keypoints_found=self.keypoints_found,
                       keypoints_with_depth=self.keypoints_with_depth)
        if self.arrival_s is not None:
            out['arrival_s'] = _round(self.arrival_s, 6)
            if self.publish_s is not None:
                out.update(start_s=_round(self.start_s, 6), publish_s=_round(self.publish_s, 6),
                           age_ms=_round((self.publish_s - self.arrival_s) * 1e3))
        return out


def _round(value, digits=3):
    return None if value is None else round(float(value), digits)


@dataclass
class BagEvalResult:
    """What evaluate_bag returns: the report (the content of report.json), the paths of report.json, report.txt, the
    output bag and the plots, and whether Ctrl-C stopped the run. `error` stays None: a run that fails raises instead,
    once the report is written."""
    report: dict
    report_path: Path
    summary_path: Path
    output_bag: Path
    plots: list
    interrupted: bool = False
    error: str = None


# --- COCO annotations of frames -------------------------------------------------------------------------
def load_frame_annotations(path):
    """A COCO keypoint annotation file whose images are frames of the bag -> (COCO dict, {stamp_ns: image id},
    {frame index: image id}).

    An image names its frame by `stamp_ns` (the frame's stamp in integer nanoseconds: its header stamp, or its
    log time where the header stamp is zero), else by `frame_index` (0-based position of the message in the
    image topic, counted from the bag's first message), else its `id` is the frame index.
    """
    path = Path(path)
    try:
        coco = json.loads(path.read_text(encoding='utf-8'))
        images = coco['images']
        coco['annotations']
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f'{path} is not a COCO annotation file ({type(error).__name__}: {error})') from error
    by_stamp, by_index = {}, {}
    for image in images:
        if 'stamp_ns' in image:
            by_stamp[int(image['stamp_ns'])] = int(image['id'])
        else:
            by_index[int(image.get('frame_index', image['id']))] = int(image['id'])
    return coco, by_stamp, by_index


# --- interruption ---------------------------------------------------------------------------------------------
def _say_stopping(_signum: int) -> None:
    """The first Ctrl-C or SIGTERM lets the current frame finish, so that the outputs are closed cleanly."""
    LOG.warning('stopping after this frame; the output bag and the report will be closed '
                '(Ctrl-C again to abort at once)')


# --- the run ----------------------------------------------------------------------------------------------
class _Run:
    """State of one evaluation: the records, the tracks, the output bag."""

    def __init__(self, learner, options, settings, out, store, annotations):
        self.learner, self.options, self.settings, self.out, self.store = learner, options, settings, out, store
        self.records = []
        self.tracks = {}
        self.coco_results, self.coco_unsmoothed = [], []
        self.pose_records = []       # openpose_ros.formats.poses_json frame records of the processed frames
        self.annotations = annotations
        self.annotated_frames = {}   # image id -> frame index of the processed annotated frames
        self.previous_stamp = None
        self.stamps_not_increasing = 0
        self.pending_output = None
        self.warmup_ms = None
        self.stream = PoseStream(learner.estimator, learner.tracker, learner.smoother,
                                 keep_unsmoothed=annotations is not None)
        self.stream.reset()  # a new stream: the learner's tracker and smoother forget what came before
        self.stream_settings = stream_settings(settings)
        self.bodies = BodyIds() if settings['hri'] else None  # REP-155 body ids, as the node gives them
        self.types = StoreTypes(store)
        self.depth_settings = depth_settings(settings)

    def record(self, frame, status='processed'):
        record = FrameRecord(frame.index, frame.log_time_ns, frame.stamp_ns, frame.stamp_source, status)
        self.records.append(record)
        return record

    def process(self, frame, record):
        """Decodes and infers one frame into `record`; returns the seconds it took (what the node's worker
        would spend on it: decoding and inference, not the drawing and writing of the outputs)."""
        record.status = 'processed'
        started = time.perf_counter()
        try:
            image = decode(frame)
        except ValueError as error:
            record.status, record.reason = 'rejected', str(error)
            return time.perf_counter() - started
        decoded = time.perf_counter()
        try:
            if self.warmup_ms is None:
                # A running node is warm: the first inference (allocations, kernel selection) is not timed, and
                # it neither tracks nor smooths.
                self.stream.estimator.detect(image, self.stream_settings.upsample_ratio)
                self.warmup_ms = (time.perf_counter() - decoded) * 1e3
            infer_started = time.perf_counter()
            result = self.stream.process(image, frame.stamp_ns / 1e9, self.stream_settings)
        except ValueError as error:
            record.status = 'rejected'
            # A refused image (e.g. beyond max_aspect_ratio) is reported under its own cause, as the node does.
            record.reason = str(error) if isinstance(error, ImageRejected) else f'inference refused the image: {error}'
            return time.perf_counter() - started
        poses, unsmoothed, stages = result.poses, result.unsmoothed, result.timings
        done = time.perf_counter()
        record.decode_ms, record.infer_ms = (decoded - started) * 1e3, (done - infer_started) * 1e3
        record.processing_ms = record.decode_ms + record.infer_ms
        record.stages_ms = stages
        record.height, record.width = image.shape[:2]
        record.people, record.ids = len(poses), [int(p.id) for p in poses]
        if self.previous_stamp is not None and frame.stamp_ns <= self.previous_stamp:
            self.stamps_not_increasing += 1
        self.previous_stamp = frame.stamp_ns
        self._follow_tracks(record, poses)
        self._collect_coco(record, poses, unsmoothed)
        self.pose_records.append(frame_record(poses, frame.stamp_ns / 1e9, frame=frame.index, width=record.width,
                                              height=record.height))
        self.pending_output = (frame, record, poses, image, self._frame_bodies(poses, image, result.live_track_ids))
        return record.processing_ms / 1e3

    def _frame_bodies(self, poses, image, live_track_ids):
        """The frame's REP-155 bodies (None without hri): as the node, a body lives as long as its track."""
        if self.bodies is None:
            return None
        _, seen = self.bodies.assign(poses, live_track_ids)
        height, width = image.shape[:2]
        return FrameBodies(sorted(self.bodies.bodies.values()), seen, width, height)

    def publish(self, log_time_ns):
        """Writes the last processed frame's messages to the output bag at `log_time_ns`."""
        if self.pending_output is None:
            return
        frame, record, poses, image, bodies = self.pending_output
        self.pending_output = None
        annotated = None
        if self.out.annotated != 'none':
            from openpose_ros.pose import draw
            annotated = draw(np.array(image, copy=True), poses, track=self.settings['track'])
        poses_3d = self._lift(frame, record, poses, image.shape) if self.out.depth else None
        self.out.write(frame.header, poses, annotated, log_time_ns, bodies, poses_3d)
        record.output_log_time_ns = int(log_time_ns)

    def _lift(self, frame, record, poses, image_shape):
        """The frame's Pose3DArray, as the node's: the colour image's stamp, the CameraInfo's frame_id. None for
        a frame without a matching depth image, or with one that cannot be used (the record says which)."""
        if frame.depth is None:
            record.depth, record.depth_reason = 'unmatched', frame.depth_note
            return None
        try:
            lifted = lift(poses, depth_msg_to_array(frame.depth), Intrinsics.from_camera_info(frame.camera_info),
                          image_shape, self.depth_settings)
        except ValueError as error:
            record.depth, record.depth_reason = 'rejected', f'depth not used: {error}'
            return None
        record.depth = 'paired'
        record.keypoints_found = int(sum(int(pose.found.sum()) for pose in poses))
        record.keypoints_with_depth = int(lifted.valid.sum())
        header = with_frame(self.types, frame.header, frame.camera_info.header.frame_id)
        return poses_3d_to_msg(poses, lifted, header, self.types)

    def _follow_tracks(self, record, poses):
        for pose in poses:
            if pose.id < 0:
                continue
            track = self.tracks.get(pose.id)
            box = [float(v) for v in pose.bbox]
            if track is None:
                self.tracks[pose.id] = track = {
                    'id': int(pose.id), 'first_index': record.index, 'first_stamp_ns': record.stamp_ns,
                    'frames': 0, 'first_bbox': box}
            track['frames'] += 1
            track['last_index'], track['last_stamp_ns'], track['last_bbox'] = record.index, record.stamp_ns, box

    def _collect_coco(self, record, poses, unsmoothed):
        if self.annotations is None:
            return
        _, by_stamp, by_index = self.annotations
        image_id = by_stamp.get(record.stamp_ns, by_index.get(record.index))
        if image_id is None:
            return
        self.annotated_frames[image_id] = record.index
        self.coco_results += poses_to_results(image_id, poses)
        self.coco_unsmoothed += poses_to_results(image_id, unsmoothed)


def _progress(iterable, total, enabled):
    if not enabled:
        return iterable
    from tqdm import tqdm
    # Into a log file (not a terminal) every redraw would be a line: a few a second are enough there.
    interval = 0.1 if sys.stderr.isatty() else 1.0
    return tqdm(iterable, total=total, unit='frame', file=sys.stderr, dynamic_ncols=True, leave=True,
                mininterval=interval)


def output_bag_path(options: 'BagEvalOptions') -> Path:
    """Where the run described by `options` writes its output bag: output_bag, else <output>/<bag name>_poses."""
    if options.output_bag:
        return Path(options.output_bag)
    bag = Path(options.bag)
    name = bag.resolve().name
    return Path(options.output) / f'{name.rsplit(".", 1)[0] if bag.is_file() else name}_poses'


def output_files(options: 'BagEvalOptions') -> list:
    """The files the run described by `options` writes into its output folder, beside the output bag."""
    names = [reporting.REPORT_NAME, reporting.SUMMARY_NAME, POSES_NAME]
    names += list(reporting.PLOT_NAMES) if options.plots else []
    names += [COCO_RESULTS_NAME] if options.annotations else []
    return [Path(options.output) / name for name in names]


def refuse_outputs_in_the_input(options: 'BagEvalOptions') -> None:
    """ValueError when the output folder or the output bag is the input bag folder or lies inside it."""
    bag = Path(options.bag).resolve()
    if not bag.is_dir():
        return
    for what, path in (('output folder', options.output), ('output bag', output_bag_path(options))):
        resolved = Path(path).resolve()
        if resolved == bag or bag in resolved.parents:
            raise ValueError(f'the {what} {path} is inside the input bag {options.bag}; choose an output outside '
                             f'it')


def check_outputs(options: 'BagEvalOptions') -> None:
    """Before any work: ValueError for outputs inside the input bag, FileExistsError for an output file or bag
    that may not be replaced, OutputError for an output folder that cannot be written."""
    refuse_outputs_in_the_input(options)
    check_output_bag(output_bag_path(options), options.overwrite)
    if not options.overwrite:
        refuse_replacing(output_files(options), hint='pass --overwrite to replace the outputs of an earlier run')
    ensure_writable(options.output)


def evaluate_bag(learner, options, backend_name='', model_info=None):
    """Runs the evaluation described by `options` (BagEvalOptions) with `learner`; returns BagEvalResult.

    Raises BagError for a bag that cannot be used and OutputError for outputs that cannot be written (after
    closing the output bag and writing the report of what was done when it happens mid-way), ValueError for
    bad options, FileExistsError for an existing output bag (unless overwrite, and then only one of bag_eval).
    """
    options.validate()
    settings = options.settings if options.settings is not None else node_settings()
    store = messages.typestore(hri=settings['hri'])
    annotations = load_frame_annotations(options.annotations) if options.annotations else None
    with BagInput(options.bag, store) as source:
        for warning in source.warnings:
            LOG.warning('%s', warning)
        topic = source.select_topic(options.topic)
        depth = source.select_depth(topic, options.depth_topic, options.depth_info_topic, settings['depth_slop']) \
            if options.depth else None
        start_ns = source.start_ns + round(options.start * 1e9) if options.start is not None else None
        end_ns = source.start_ns + round(options.end * 1e9) if options.end is not None else None
        storage = source.storage if options.storage == 'same' else options.storage
        apply_node_settings(learner, settings)  # a value the learner refuses is refused before any output exists
        check_outputs(options)
        out = OutputBag(output_bag_path(options), storage, store, options.namespace, options.annotated,
                        options.overwrite, hri=settings['hri'], depth=depth is not None)
        run = _Run(learner, options, settings, out, store, annotations)
        worker = _realtime_worker(run, options.realtime) if options.realtime is not None else None
        started = time.perf_counter()
        frames = source.frames(topic, start_ns, end_ns, depth)
        total = topic.count if start_ns is None and end_ns is None else None
        interrupted, errors, crash = _play(frames, total, run, worker, options.progress)
        wall_s = time.perf_counter() - started
        meta = _run_meta(source, topic, depth, out, options, settings, learner, run, backend_name, model_info)
    report = reporting.build_report(run.records, run.tracks, meta, wall_s=wall_s, realtime=options.realtime,
                                    busy_s=worker.busy if worker else None,
                                    stamps_not_increasing=run.stamps_not_increasing,
                                    interrupted=interrupted, error='; '.join(map(str, errors)) or None)
    errors += _write_secondary_outputs(report, run, options, settings, backend_name, learner, annotations)
    return _finish(report, errors, crash, options, out.path, interrupted)


def _realtime_worker(run, rate):
    """The node's newest-frame worker on the bag's clock at `rate`, processing and publishing through `run`."""
    worker = None

    def process(item):
        return run.process(*item)

    def published(event):
        frame, record = event.item
        record.start_s, record.publish_s = event.start, event.publish
        if record.status == 'processed':
            run.publish(worker.bag_time_ns(event.publish))

    def dropped(item, _arrival):
        item[1].reason = 'superseded by a newer frame while the worker was busy'

    worker = NewestFrameWorker(rate, process, published, dropped)
    return worker


def _play(frames, total, run, worker, progress):
    """Feeds the bag's frames to the run (directly, or to the real-time worker) until the end, a stop request or
    an error, and closes the output bag. Returns (interrupted, errors, the unexpected exception or None)."""
    interrupted, errors, crash = False, [], None
    try:
        with StopRequests(on_request=_say_stopping) as stop:
            for frame in _progress(frames, total, progress):
                _feed(frame, run, worker)
                if stop.requested:
                    interrupted = True
                    break
            if worker is not None:
                _drain(worker, interrupted)
    except (BagError, OutputError) as broken:
        errors.append(broken)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as unexpected:  # reported, then raised again once the outputs are closed
        errors.append(RuntimeError(f'{type(unexpected).__name__}: {unexpected}'))
        crash = unexpected
    finally:
        frames.close()
        errors += _close_output(run)
    return interrupted, errors, crash


def _feed(frame, run, worker):
    if worker is None:
        run.process(frame, run.record(frame))
        run.publish(frame.log_time_ns)
    else:
        record = run.record(frame, status='dropped')
        record.arrival_s = worker.arrival_of(frame.log_time_ns)
        worker.arrive((frame, record), frame.log_time_ns)


def _drain(worker, interrupted):
    """Lets the worker finish its frames, or drops the one still waiting when the run was interrupted."""
    if not interrupted:
        worker.finish()
        return
    waiting = worker.discard_pending()
    if waiting is not None:
        waiting[0][1].reason = 'not processed: the run was interrupted'


def _close_output(run):
    """Closes the output bag; returns the OutputError of a bag that could not be finished (its records then say
    which frames it lost)."""
    out = run.out
    try:
        out.close()
    except OutputError as unfinished:
        # What the bag holds is what was read back: the frames after those were lost with its end.
        published = [record for record in run.records if record.output_log_time_ns is not None]
        for record in published[out.counts[out.topics['poses']]:]:
            record.output_log_time_ns = None
        return [unfinished]
    return []


def _run_meta(source, topic, depth, out, options, settings, learner, run, backend_name, model_info):
    """The report's description of the input, the output, the model and the depth pairing."""
    return {
        'input': {'bag': str(options.bag), 'storage': source.storage, 'topic': topic.name,
                  'msgtype': topic.msgtype, 'messages_on_topic': topic.count,
                  'bag_start_ns': source.start_ns, 'bag_duration_s': round(source.duration_s, 6),
                  'start_s': options.start, 'end_s': options.end,
                  'recovered_messages': source.recovered_messages},
        'output': {'bag': str(out.path), 'storage': out.storage, 'topics': dict(out.topics),
                   'messages': dict(out.counts), 'annotated': options.annotated},
        'model': dict(model_info or {}, backend=backend_name, base_height=learner.base_height,
                      device=learner.device, warmup_ms=_round(run.warmup_ms),
                      node_settings={name: settings[name] for name in PIPELINE_PARAMS}),
        'depth': None if depth is None else {
            'topic': depth.image, 'info_topic': depth.info, 'slop_s': settings['depth_slop'],
            'settings': {name: settings[name] for name in DEPTH_PARAMS}},
        'warnings': list(source.warnings),
    }


def _finish(report, errors, crash, options, output_bag, interrupted):
    """Writes the report; raises what went wrong (after the report), else returns the BagEvalResult."""
    report['error'] = '; '.join(map(str, errors)) or None
    output = Path(options.output)
    try:
        report_path, summary_path = reporting.write_report(report, output)
    except OSError as failed:
        raise OutputError(f'the report could not be written into {output} ({failed.strerror or failed}); '
                          f'{_progress_note(report)}' + (f'; {report["error"]}' if errors else '')) from failed
    if crash is not None:
        raise crash
    if errors:
        raise type(errors[0])(f'{report["error"]}. The report ({report_path}) covers the run until then: '
                              f'{_progress_note(report)}')
    return BagEvalResult(report, report_path, summary_path, output_bag, [Path(p) for p in report['plots']],
                         interrupted)


def _progress_note(report):
    """How far a run got: frames processed, frames in the output bag and the stamp of the last one."""
    written = [frame['stamp_ns'] for frame in report['per_frame'] if frame.get('output_log_time_ns') is not None]
    last = f' (the last stamped {written[-1]} ns)' if written else ''
    return f'{report["frames"]["processed"]} frames processed, {len(written)} in the output bag{last}'


def _write_secondary_outputs(report, run, options, settings, backend_name, learner, annotations):
    """poses.json, the COCO results and the plots, their paths entered in `report`; returns OutputErrors for
    those that could not be written (the report is written all the same)."""
    output, failures = Path(options.output), []

    def attempt(what, write, fallback=None):
        try:
            return write()
        except OSError as error:
            failures.append(OutputError(f'{what} could not be written into {output}: {error.strerror or error}'))
            return fallback

    if annotations is not None:
        def coco():
            metrics = reporting.coco_metrics(annotations[0], run.coco_results, run.annotated_frames,
                                             output / COCO_RESULTS_NAME)
            unsmoothed = reporting.coco_metrics(annotations[0], run.coco_unsmoothed, run.annotated_frames)
            metrics['unsmoothed'] = {k: v for k, v in unsmoothed.items() if k in reporting.COCO_METRICS}
            return metrics
        report['coco'] = attempt('the COCO results', coco)
    poses_path = attempt(POSES_NAME, lambda: write_document(output / POSES_NAME, document(
        run.pose_records, source=str(options.bag), input_type='bag', topic=report['input']['topic'],
        backend=backend_name,
        settings={'base_height': learner.base_height, 'upsample_ratio': settings['upsample_ratio'],
                  'track': settings['track'], 'smooth': settings['smooth'], 'realtime': options.realtime})))
    report['output']['poses_json'] = str(poses_path) if poses_path else None
    plots = attempt('the plots', lambda: reporting.write_plots(report, run.records, output), []) \
        if options.plots else []
    report['plots'] = [str(p) for p in plots]
    return failures
