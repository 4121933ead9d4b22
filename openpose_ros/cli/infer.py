"""Pose estimation on an image, a folder of images or a video: annotated images/video and poses as JSON.

    openpose-infer photo.jpg --weights models/openpose_default --output out/
    openpose-infer frames/ --weights checkpoint_iter_370000.pth --backend int8
    openpose-infer vtest.avi --weights models/openpose_default --output out/    (ros2 run openpose_ros infer ...)

Writes to --output: the annotated image(s) under their own names, or <video name>_poses.mp4 (.avi with MJPG
where mp4 cannot be written), and poses.json (see openpose_ros.formats.poses_json). Images of a folder are independent
photos (tracking and smoothing restart for each) unless --sequence says they are frames of one stream.
Files already in --output that the run would write are refused unless --overwrite. Ctrl-C stops the run and
writes poses.json of the frames processed so far (marked "interrupted": true).
Exit status: 0 when every input was processed, 1 when some inputs were skipped (reported), 2 on errors,
130 when interrupted.
"""
import logging
import sys
import tempfile
import time
from pathlib import Path

import cv2

from openpose_ros.command_line import (INTERRUPTED_STATUS, add_device_argument, add_openvino_arguments, checked_number,
                                       command_parser, exit_status, number_in)
from openpose_ros.files import check_writable_folder, refuse_replacing
from openpose_ros.formats import media
from openpose_ros.formats.media import (VIDEO_OUTPUTS, annotated_video_name, open_writer, read_image, video_frames)
from openpose_ros.formats.poses_json import document, frame_record, write_document
from openpose_ros.inference.image import ImageRejected
from openpose_ros.inference.pipeline import StreamSettings
from openpose_ros.inference.preprocess import BASE_HEIGHT_RANGE, DEFAULT_MAX_ASPECT_RATIO, check_max_aspect_ratio
from openpose_ros.network import BACKBONES
from openpose_ros.pose import draw
from openpose_ros.runtime.loading import ModelError
from openpose_ros.runtime.selection import BACKEND_CHOICES

LOG = logging.getLogger('openpose_ros.infer')
RESULTS_NAME = 'poses.json'
MAX_FPS = 1000.0
RANDOM_WEIGHTS_WARNING = ('RANDOM WEIGHTS: the network is untrained, so the poses found (usually none) are '
                          'MEANINGLESS. --random-weights only exists to test the plumbing.')


class UsageError(Exception):
    """A problem with the inputs or options: printed without a traceback, exit status 2."""


def build_parser():
    """The argument parser of openpose-infer (`ros2 run openpose_ros infer`)."""
    parser = command_parser('infer', __doc__)
    parser.add_argument('input', help='an image, a folder of images, or a video file')
    parser.add_argument('--weights', help='a saved model folder (learner.save), a checkpoint file '
                        '(e.g. checkpoint_iter_370000.pth), or "download" (the published model, fetched once into '
                        '~/.cache/openpose_ros); required unless --random-weights')
    parser.add_argument('--random-weights', action='store_true',
                        help='use an untrained network (smoke tests only: the results are meaningless)')
    add_device_argument(parser)
    parser.add_argument('--backend', choices=BACKEND_CHOICES, default='auto',
                        help='network backend; auto (default) takes the fastest available: int8 when a quantised '
                             'model <name>.int8.onnx is beside the weights, else OpenVINO at --precision (CPU), '
                             'else ONNX Runtime fp32, else torch')
    add_openvino_arguments(parser)
    parser.add_argument('--calibration', help='images (file or folder) to calibrate int8 on when no quantised model '
                        'exists; default: the real images of the data folder, else the input images')
    parser.add_argument('--base-height', type=number_in(*BASE_HEIGHT_RANGE, kind=int),
                        help="network input height, %d to %d (default: the model's, 256)" % BASE_HEIGHT_RANGE)
    parser.add_argument('--upsample-ratio', type=number_in(1, 16, kind=int), default=4,
                        help='heatmap upsampling, 1 to 16 (default 4)')
    parser.add_argument('--max-aspect-ratio', type=checked_number(check_max_aspect_ratio),
                        default=DEFAULT_MAX_ASPECT_RATIO,
                        help='images whose longer side exceeds this many times the shorter one are skipped '
                             f'(the network input grows with it; 1 to 32, default {DEFAULT_MAX_ASPECT_RATIO:g})')
    parser.add_argument('--no-track', action='store_true', help='no track ids (id -1)')
    parser.add_argument('--no-smooth', action='store_true', help='no One Euro smoothing')
    parser.add_argument('--sequence', action='store_true',
                        help='a folder holds consecutive frames of one stream (tracking/smoothing across images)')
    parser.add_argument('--fps', type=number_in(0, MAX_FPS, low_excluded=True), default=30.0,
                        help='frame rate of a --sequence folder, or of a video without time stamps '
                             f'(0 < fps <= {MAX_FPS:g}, default 30)')
    parser.add_argument('--max-frames', type=number_in(1, sys.maxsize, kind=int),
                        help='process at most this many video frames or images (default: all)')
    parser.add_argument('--output', default='openpose_output', help='output folder (default ./openpose_output)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace files in --output that the run writes (default: refuse to start when one '
                             'exists; never an input)')
    parser.add_argument('--save-model', metavar='DIR',
                        help='also save the model as a folder (with its ONNX and, with int8, its quantised model), '
                             'for faster start-up next time with --weights DIR')
    parser.add_argument('--no-images', action='store_true', help='write only poses.json')
    network = parser.add_argument_group('network of a checkpoint file (a saved folder carries its own)')
    network.add_argument('--backbone', default='mobilenet', choices=BACKBONES)
    network.add_argument('--num-refinement-stages', type=int,
                         help='default: read from the checkpoint (1 for the published model)')
    network.add_argument('--mobilenet-use-stride', action='store_true', help='stride 16 (OpenDR option)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar, warnings only')
    return parser


# --- inputs ------------------------------------------------------------------------------------------------
def classify_input(path):
    """'image', 'folder' or 'video' for an input path; UsageError if it is missing or of an unknown type."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f'input {path} does not exist')
    if path.is_dir():
        return 'folder'
    if not path.is_file():  # a FIFO, socket or device: reading it could block or never end
        raise UsageError(f'input {path} is not a regular file; give an image, a folder of images or a video')
    suffix = path.suffix.lower()
    if media.is_image_file(path):
        return 'image'
    if suffix in media.VIDEO_SUFFIXES:
        return 'video'
    raise UsageError(f'input {path}: unknown file type {suffix or "(no suffix)"}; images: '
                     f'{" ".join(media.IMAGE_SUFFIXES)}; videos: {" ".join(media.VIDEO_SUFFIXES)}')


def folder_images(folder):
    """The image files of `folder` (by suffix, sorted by name); UsageError when it holds none."""
    images = media.folder_images(folder)
    if not images:
        raise UsageError(f'folder {folder} holds no images ({" ".join(media.IMAGE_SUFFIXES)})')
    return images


# --- outputs -----------------------------------------------------------------------------------------------
def planned_outputs(kind, source, paths, output, images=True):
    """Every file the run may write: the annotated copies (or video, in either format; none unless `images`) and
    the results."""
    if not images:
        names = []
    elif kind == 'video':
        names = [annotated_video_name(source.stem, suffix) for suffix, _ in VIDEO_OUTPUTS]
    else:  # an image that cannot be written in its own format is written as .png
        names = [name for path in paths for name in (path.name, path.with_suffix('.png').name)]
    return [output / name for name in names + [RESULTS_NAME]]


def _file_identity(path):
    """(device, inode) of an existing path, else None: equal for every way of naming one file (symlinks, '..',
    hard links)."""
    try:
        status = Path(path).stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def refuse_writing_over_inputs(output, targets, inputs):
    """UsageError when --output is an existing file, or when a file the run would write is one of its inputs."""
    if output.exists() and not output.is_dir():
        raise UsageError(f'--output {output} is a file; give a folder for the results')
    inputs_by_identity = {_file_identity(path): path for path in inputs}
    for target in targets:
        identity = _file_identity(target)
        if identity is not None and identity in inputs_by_identity:
            raise UsageError(f'--output {output} would write {target} over the input '
                             f'{inputs_by_identity[identity]}; give another output folder')


def refuse_saving_to_a_file(save_model):
    """UsageError when --save-model names an existing file: found before the model loads, not after the run."""
    if Path(save_model).exists() and not Path(save_model).is_dir():
        raise UsageError(f'--save-model {save_model} is a file; give a folder to save the model to')


# --- model -------------------------------------------------------------------------------------------------
def build_learner(args):
    """The learner with the asked-for weights, on the asked-for backend; returns (learner, backend name, choice)."""
    from openpose_ros.runtime.loading import load_for_inference, resolve_weights, weights_help

    if args.weights is None and not args.random_weights:
        raise UsageError('no --weights given. ' + weights_help())
    if args.weights is not None and args.random_weights:
        raise UsageError('--weights and --random-weights exclude each other')
    weights = write_random_weights(args) if args.random_weights else resolve_weights(args.weights)
    learner, choice, name = load_for_inference(
        weights, args.device, args.backend, args.base_height, temp_path=args.temp_path, precision=args.precision,
        openvino_device=args.openvino_device,
        calibration_images=int8_calibration(args, weights), backbone=args.backbone,
        mobilenet_use_stride=args.mobilenet_use_stride, num_refinement_stages=args.num_refinement_stages)
    if args.save_model:
        save_model(learner, Path(args.save_model))
    return learner, name, choice


def write_random_weights(args):
    """An untrained network of the asked-for architecture, saved as a model folder under args.temp_path so that it
    loads like any weights; seeded, so that runs repeat."""
    import torch
    from openpose_ros.learner import LightweightOpenPoseLearner
    torch.manual_seed(0)
    options = dict(backbone=args.backbone, mobilenet_use_stride=args.mobilenet_use_stride)
    if args.num_refinement_stages is not None:
        options['num_refinement_stages'] = args.num_refinement_stages
    try:  # on --device, so that a device that is not there is the error, not these weights
        learner = LightweightOpenPoseLearner(device=args.device, temp_path=args.temp_path, **options)
    except ValueError as error:
        raise UsageError(f'cannot build the network: {error}') from error
    return learner.save(Path(args.temp_path) / 'random_weights')


def int8_calibration(args, weights):
    """The images to calibrate on when --backend int8 quantises here, which it does unless a quantised model is
    beside the weights: --calibration, else the data folder's (None), else the input images."""
    from openpose_ros.runtime.selection import saved_onnx_models
    if args.backend != 'int8' or saved_onnx_models(weights)[1] is not None:
        return None
    calibration = args.calibration
    if calibration is None and media.default_data_root() is None:
        if classify_input(args.input) == 'video':
            raise UsageError('int8 needs calibration images: pass --calibration <folder of images>')
        calibration = args.input
    LOG.warning('quantising to int8, calibrating on %s (takes a while; --save-model DIR keeps the result)',
                calibration or 'the data folder')
    return calibration


def save_model(learner, folder):
    """learner.save(folder): with the quantised model as <name>.int8.onnx when int8 runs, so that later runs
    (and backend auto) find it there instead of calibrating again."""
    try:
        learner.save(folder)
    except (OSError, ValueError) as error:  # e.g. a file in the way, no space left: the user can fix it
        raise UsageError(f'cannot save the model to {folder}: {error}') from error
    LOG.info('saved the model to %s', folder)


# --- the run -----------------------------------------------------------------------------------------------
def _progress(iterable, total, args, unit):
    if args.quiet:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)


def check_arguments(args):
    """What the run reads and writes, checked before the model loads: (kind, source, paths, output, first image);
    UsageError or FileExistsError (a file in the way) otherwise."""
    kind = classify_input(args.input)
    source = Path(args.input)
    paths = folder_images(source)[:args.max_frames] if kind == 'folder' else [source]
    output = Path(args.output)
    refuse_writing_over_inputs(output, planned_outputs(kind, source, paths, output), paths)
    if not args.overwrite:
        refuse_replacing(planned_outputs(kind, source, paths, output, images=not args.no_images))
    if args.save_model:
        refuse_saving_to_a_file(args.save_model)
    first = None
    if kind == 'video':
        capture = cv2.VideoCapture(str(source))
        opened = capture.isOpened()
        capture.release()
        if not opened:
            raise UsageError(f'{source} cannot be opened as a video (corrupt or unsupported codec)')
    elif kind == 'image':
        try:
            first = read_image(source)
        except ValueError as error:
            raise UsageError(str(error)) from error
    try:
        check_writable_folder(output)
    except OSError as error:
        raise UsageError(f'cannot write into the output folder {output}: {error.strerror or error}; choose '
                         f'another --output') from error
    return kind, source, paths, output, first


class Run:
    """One run's results so far: the frame records, the skipped inputs and the annotated files written.

    Its frames go through the learner's PoseStream (openpose_ros.inference.pipeline), as the node's do."""

    def __init__(self, args, learner, output):
        self.args, self.learner, self.output = args, learner, output
        self.settings = StreamSettings(args.upsample_ratio, track=not args.no_track, smooth=not args.no_smooth)
        self.frames, self.errors, self.written = [], [], []

    def poses(self, image, stamp):
        """The poses of a BGR `image` taken at `stamp` (seconds), through the learner's stream with the run's settings;
        raises ImageRejected for an image the network refuses."""
        return self.learner.stream.process(image, stamp, self.settings).poses

    def annotated(self, image, poses):
        """A copy of `image` with the poses drawn (and their track ids, when tracking)."""
        return draw(image.copy(), poses, track=self.settings.track)

    def add_video_frame(self, source, frame, index, stamp):
        """The poses of one frame of the video `source`, recorded."""
        try:
            poses = self.poses(frame, stamp)
        except ImageRejected as error:  # every frame of a video has the same size
            raise UsageError(f'{source}: {error}; --max-aspect-ratio sets the bound') from error
        self.frames.append(frame_record(poses, stamp, frame=index, width=frame.shape[1], height=frame.shape[0]))
        return poses

    def open_video(self, source, fps, frame):
        """Opens the annotated video of `source` at `fps`, of the size of `frame`, and records its path; the writer."""
        writer, path = open_writer(self.output, source.stem, fps, (frame.shape[1], frame.shape[0]))
        self.written.append(str(path))
        return writer

    def add_image(self, path, image, poses, stamp):
        """Records an image's poses and writes its annotated copy."""
        self.frames.append(frame_record(poses, stamp, file=path.name, width=image.shape[1], height=image.shape[0]))
        if not self.args.no_images:
            self.written.append(str(self.write_image(path.name, self.annotated(image, poses))))

    def skip(self, source, path, error):
        """Records an input that was skipped: its path relative to the folder `source`, and the error."""
        self.errors.append({'file': str(path.relative_to(source)), 'error': str(error)})

    def write_image(self, name, image):
        """Writes the annotated image under `name`, else as .png (a format OpenCV cannot write); its path."""
        for target in (self.output / name, (self.output / name).with_suffix('.png')):
            if cv2.imwrite(str(target), image):
                return target
        raise OSError(f'OpenCV could not write {target}')


# --- the video path ----------------------------------------------------------------------------------------
def run_video(run, source):
    """The frames of a video as one stream, on the video's own stamps; the annotated video written as it goes."""
    args = run.args
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and fps > 0 else args.fps
    writer = None
    try:
        for index, stamp, frame in _progress(video_frames(capture, args.fps), _frame_count(capture, args.max_frames),
                                             args, 'frame'):
            if args.max_frames and index >= args.max_frames:
                break
            poses = run.add_video_frame(source, frame, index, stamp)
            if not args.no_images:
                writer = writer or run.open_video(source, fps, frame)
                writer.write(run.annotated(frame, poses))
    finally:  # released on Ctrl-C too: the video written so far stays playable
        capture.release()
        if writer is not None:
            writer.release()


def _frame_count(capture, max_frames):
    """The number of frames the run will take, where the container says how many it holds (for the progress)."""
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    return min(total or max_frames, max_frames) if max_frames else total


# --- the images path ---------------------------------------------------------------------------------------
def run_image(run, path, image):
    """One photo; an image the network refuses is an error of the run."""
    run.learner.stream.reset()
    try:
        poses = run.poses(image, 0.0)
    except ImageRejected as error:
        raise UsageError(f'{path}: {error}; --max-aspect-ratio sets the bound') from error
    run.add_image(path, image, poses, 0.0)


def run_folder(run, source, paths):
    """The images of a folder: independent photos (tracking and smoothing restart for each), or with --sequence
    the frames of one stream at --fps. Images that cannot be read or are refused are skipped and reported."""
    args = run.args
    for index, path in enumerate(_progress(paths, len(paths), args, 'image')):
        try:
            image = read_image(path)
        except (ValueError, OSError) as error:
            LOG.error('skipping: %s', error)
            run.skip(source, path, error)
            continue
        if not args.sequence:
            run.learner.stream.reset()
        stamp = index / args.fps if args.sequence else 0.0
        try:
            poses = run.poses(image, stamp)
        except ImageRejected as error:
            LOG.error('skipping: %s: %s', path, error)
            run.skip(source, path, error)
            continue
        run.add_image(path, image, poses, stamp)


# --- the run -----------------------------------------------------------------------------------------------
def run(args):
    """Runs infer with the parsed `args`: checks the inputs and outputs, loads the model, processes the input and writes
    poses.json. Returns the exit status: 0, 1 when inputs were skipped, 130 when interrupted; raises UsageError for a
    problem the user can fix."""
    kind, source, paths, output, first = check_arguments(args)
    if args.random_weights:
        LOG.warning(RANDOM_WEIGHTS_WARNING)
    learner, backend_name, choice = build_learner(args)
    learner.max_aspect_ratio = args.max_aspect_ratio
    LOG.info('backend: %s (%s)', backend_name, choice.reason)
    done = Run(args, learner, output)
    interrupted, seconds = _process(done, kind, source, paths, first)
    if not done.frames and not interrupted:
        raise UsageError(f'{source}: no frame could be decoded (corrupt or unsupported video)' if kind == 'video'
                         else f'none of the {len(paths)} images of {source} could be read')
    results = _write_results(done, kind, source, backend_name, interrupted)
    _log_summary(args, kind, done, seconds, results)
    if interrupted:
        return INTERRUPTED_STATUS
    return 1 if done.errors else 0


def _process(done, kind, source, paths, first):
    """Runs the input through the path of its kind; (interrupted, seconds). Ctrl-C ends it early."""
    started = time.perf_counter()
    try:
        if kind == 'video':
            run_video(done, source)
        elif kind == 'image':
            run_image(done, source, first)
        else:
            run_folder(done, source, paths)
    except KeyboardInterrupt:
        LOG.warning('interrupted: writing the poses of the %d frames processed so far', len(done.frames))
        return True, time.perf_counter() - started
    except OSError as error:
        raise UsageError(f'cannot write the outputs into {done.output}: {error.strerror or error}') from error
    return False, time.perf_counter() - started


def _write_results(done, kind, source, backend_name, interrupted):
    """Writes poses.json; its path."""
    args, path = done.args, done.output / RESULTS_NAME
    doc = document(done.frames, source=str(source), input_type=kind, backend=backend_name,
                   weights=None if args.random_weights else str(args.weights), random_weights=args.random_weights,
                   settings={'base_height': done.learner.base_height, 'upsample_ratio': args.upsample_ratio,
                             'track': done.settings.track, 'smooth': done.settings.smooth,
                             'sequence': args.sequence},
                   interrupted=interrupted, errors=done.errors)
    try:
        return write_document(path, doc)
    except OSError as error:
        raise UsageError(f'cannot write {path}: {error.strerror or error}') from error


def _log_summary(args, kind, done, seconds, results):
    people = sum(len(frame['poses']) for frame in done.frames)
    LOG.info('%d %s, %d poses in %.1f s (%.1f per second); wrote %s%s', len(done.frames),
             'frames' if kind == 'video' else 'images', people, seconds, len(done.frames) / max(seconds, 1e-9),
             results, f' and {len(done.written)} annotated file(s)' if done.written else '')
    if done.errors:
        LOG.warning('%d input(s) skipped: %s', len(done.errors), ', '.join(e['file'] for e in done.errors))
    if args.random_weights:
        LOG.warning(RANDOM_WEIGHTS_WARNING)


def main(argv=None):
    args = build_parser().parse_args(argv)
    # Our messages at INFO; other libraries' (onnxruntime's quantiser logs at INFO on the root logger) at WARNING.
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s: %(message)s')
    logging.getLogger('openpose_ros').setLevel(logging.WARNING if args.quiet else logging.INFO)
    return exit_status(run_in_temporary_folder, args, LOG, (UsageError, ModelError, FileExistsError))


def run_in_temporary_folder(args):
    """Calls run(args) with args.temp_path a temporary folder for the exported and quantised models, removed after
    the run; returns its exit status."""
    # Exported and quantised models live only as long as the run (--save-model keeps them).
    with tempfile.TemporaryDirectory(prefix='openpose-infer-') as temporary:
        args.temp_path = temporary
        return run(args)


if __name__ == '__main__':
    sys.exit(main())
