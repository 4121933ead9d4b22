"""Pose estimation on a recorded camera bag, offline: an output bag of what the node publishes, and a report.

    openpose-bag-eval camera_bag --weights models/openpose_default --output out/
    openpose-bag-eval run.mcap --weights checkpoint_iter_370000.pth --topic /camera/image_raw/compressed
    openpose-bag-eval camera_bag --weights models/tiny --realtime 1      (what the live node would publish)
    ros2 run openpose_ros bag_eval camera_bag --weights ...

Reads ROS 2 bags (sqlite3 or mcap; a folder, a .db3 or an .mcap file; what a truncated mcap file holds) without
ROS. Writes to --output: the output bag <bag name>_poses (Pose2DArray on `poses`, JPEG annotated images on
`image_annotated/compressed`, headers copied from the input frames; with a depth topic and its CameraInfo in the
bag, Pose3DArray on `poses_3d` and MarkerArray on `skeleton_markers`), poses.json, report.json, report.txt and PNG
plots (see openpose_ros.bag.report). Ctrl-C stops after the current frame and closes the output bag and the
report (a second Ctrl-C aborts at once); so does an error (a full disk, a bag breaking off).
Exit status: 0 done, 1 done but some frames were rejected (see the report), 2 error, 130 interrupted.
"""
import logging
import sys

from openpose_ros.bag.evaluate import MAX_OFFSET_S, REALTIME_RANGE, check_offset, check_realtime
from openpose_ros.bag.writer import ANNOTATED_MODES
from openpose_ros.command_line import (add_device_argument, add_openvino_arguments, checked_number, command_parser,
                                       exit_status, regular_file)
from openpose_ros.inference.preprocess import BASE_HEIGHT_RANGE
from openpose_ros.runtime.selection import BACKEND_CHOICES

LOG = logging.getLogger('openpose_ros.bag_eval')


def _node_parameter(name):
    """An argparse type: a value that the node's parameter `name` accepts (finite, in its range)."""
    from openpose_ros.parameters import BY_NAME
    param = BY_NAME[name]

    def check(value):
        reason = param.check(value)
        if reason:
            raise ValueError(reason)
    return checked_number(check, param.type)


def build_parser():
    """The argument parser of openpose-bag-eval (`ros2 run openpose_ros bag_eval`)."""
    parser = command_parser('bag_eval', __doc__)
    parser.add_argument('bag', help='input bag: a rosbag2 folder, a .db3 file or an .mcap file')
    parser.add_argument('--weights', help='a saved model folder (learner.save), a checkpoint file '
                        '(e.g. checkpoint_iter_370000.pth), or "download" (the published model, fetched once into '
                        '~/.cache/openpose_ros as the node does)')
    add_device_argument(parser)
    parser.add_argument('--backend', default='auto', choices=BACKEND_CHOICES,
                        help='network backend (default auto: the fastest available)')
    add_openvino_arguments(parser)
    parser.add_argument('--params-file', metavar='YAML', type=regular_file,
                        help="a ROS 2 parameter file of pose_estimation_node (e.g. config/pose_estimation.yaml): "
                             "its decoding, tracking and smoothing parameters apply (default: the node's defaults)")
    parser.add_argument('--base-height', type=_node_parameter('base_height'),
                        help="network input height, 0 (the model's) or %d to %d (default: the parameter file's, "
                        "else the model's)" % BASE_HEIGHT_RANGE)
    parser.add_argument('--upsample-ratio', type=_node_parameter('upsample_ratio'),
                        help="heatmap upsampling, 1 to 16 (default: the parameter file's, 4)")
    parser.add_argument('--max-aspect-ratio', type=_node_parameter('max_aspect_ratio'),
                        help="frames whose longer side exceeds this many times the shorter one are rejected, as "
                             "the node does (1 to 32; default: the parameter file's, 10)")
    frames = parser.add_argument_group('frames')
    frames.add_argument('--topic', help='image topic (sensor_msgs/Image or CompressedImage); default: the only one')
    frames.add_argument('--start', type=checked_number(lambda value: check_offset('start', value)),
                        help=f'first second to process, from the start of the bag (default 0; at most '
                             f'{MAX_OFFSET_S:g})')
    frames.add_argument('--end', type=checked_number(lambda value: check_offset('end', value)),
                        help=f'second at which to stop, from the start of the bag (default: the end; at most '
                             f'{MAX_OFFSET_S:g})')
    frames.add_argument('--realtime', type=checked_number(check_realtime), metavar='RATE',
                        help='replay what the live node would publish with the bag played at RATE x its speed '
                             '(newest frame only, frames dropped while busy, real processing times); RATE in '
                             f'[{REALTIME_RANGE[0]:g}, {REALTIME_RANGE[1]:g}]')
    depth = parser.add_argument_group('depth (people in metres)')
    depth.add_argument('--depth-topic', help='depth image topic (sensor_msgs/Image, 16UC1 mm or 32FC1 m, aligned to '
                       'the colour image); default: the only Image topic named like depth or in 16UC1/32FC1')
    depth.add_argument('--depth-info-topic', help="its CameraInfo topic (default: camera_info beside the depth topic)")
    depth.add_argument('--depth-slop', type=_node_parameter('depth_slop'), metavar='SECONDS',
                       help="largest stamp difference of a colour and a depth image paired, 0 to 1 (default: the "
                            "parameter file's depth_slop, 0.01)")
    depth.add_argument('--no-depth', action='store_true', help='no 3D poses, even when the bag holds depth')
    frames.add_argument('--annotations', metavar='COCO_JSON', type=regular_file,
                        help='COCO keypoint annotations of frames (images named by "stamp_ns", by '
                             '"frame_index", else their "id" is the frame index): report COCO keypoint AP')
    out = parser.add_argument_group('outputs')
    out.add_argument('--output', '-o', help='output folder (default: <bag name>_eval in the current folder)')
    out.add_argument('--output-bag', help='path of the output bag (default: <output>/<bag name>_poses)')
    out.add_argument('--storage', default='same', choices=('same', 'sqlite3', 'mcap'),
                     help='storage of the output bag (default: same as the input)')
    out.add_argument('--namespace', default='', help="namespace of the output topics (default none: /poses)")
    out.add_argument('--annotated', default='compressed', choices=ANNOTATED_MODES,
                     help='annotated images: compressed (default: JPEG sensor_msgs/CompressedImage on '
                          'image_annotated/compressed), raw (sensor_msgs/Image on image_annotated, ten times '
                          'larger or more) or none')
    out.add_argument('--overwrite', action='store_true',
                     help='replace the outputs of an earlier run in --output (report, poses.json, plots) and an '
                          'existing output bag written by bag_eval (a folder holding anything else is never '
                          'removed); default: refuse to start when one exists')
    out.add_argument('--hri', action='store_true',
                     help="also the REP-155 (ROS4HRI) body topics, as the node's hri parameter: /humans/bodies/tracked "
                          'and per body /humans/bodies/<id>/roi and skeleton2d (needs hri_msgs; default: the '
                          "parameter file's hri, false)")
    out.add_argument('--no-plots', action='store_true', help='no PNG plots')
    parser.add_argument('--quiet', action='store_true', help='no progress bar, warnings only')
    return parser


def _default_output(bag):
    from pathlib import Path
    name = Path(bag).resolve().name
    return f'{name.rsplit(".", 1)[0] if Path(bag).is_file() else name}_eval'


def run(args):
    """Evaluates the bag of the parsed `args`: checks the options, the bag and the outputs before the model loads, then
    runs evaluate_bag. Returns the exit status: 0, 1 when frames were rejected, 130 when interrupted; errors propagate
    to main."""
    import tempfile
    from openpose_ros.runtime.loading import load_for_inference
    from openpose_ros.bag.evaluate import BagEvalOptions, check_outputs, node_settings
    from openpose_ros.messages.typestore import typestore
    from openpose_ros.formats.bag_reader import BagInput

    settings = node_settings(args.params_file, base_height=args.base_height, upsample_ratio=args.upsample_ratio,
                             max_aspect_ratio=args.max_aspect_ratio, hri=args.hri or None,
                             depth_slop=args.depth_slop)
    options = BagEvalOptions(
        bag=args.bag, output=args.output or _default_output(args.bag), topic=args.topic, start=args.start,
        end=args.end, storage=args.storage, output_bag=args.output_bag, namespace=args.namespace,
        annotated=args.annotated, realtime=args.realtime, annotations=args.annotations, settings=settings,
        plots=not args.no_plots, progress=not args.quiet, overwrite=args.overwrite, depth=not args.no_depth,
        depth_topic=args.depth_topic, depth_info_topic=args.depth_info_topic)
    options.validate()
    # bag, output and message definition problems first: they cost no model loading
    with BagInput(args.bag, typestore(hri=settings['hri'])) as bag:
        topic = bag.select_topic(args.topic)
        if options.depth:
            bag.select_depth(topic, args.depth_topic, args.depth_info_topic, settings['depth_slop'])
    check_outputs(options)
    LOG.info('reading %s (%s, %d messages)', topic.name, topic.msgtype, topic.count)
    with tempfile.TemporaryDirectory(prefix='openpose_bag_eval_') as temporary:  # exported ONNX models
        learner, _, backend = load_for_inference(args.weights, args.device, args.backend,
                                                 settings['base_height'] or None, temp_path=temporary,
                                                 precision=args.precision, openvino_device=args.openvino_device)
        return _evaluate(args, learner, backend, options)


def _evaluate(args, learner, backend, options):
    from openpose_ros.bag.evaluate import evaluate_bag
    LOG.info('backend: %s', backend)
    result = evaluate_bag(learner, options, backend, {'weights': args.weights})
    sys.stdout.write(result.summary_path.read_text())
    LOG.info('wrote %s, %s and %s', result.output_bag, result.report_path, result.summary_path)
    if result.interrupted:
        LOG.warning('interrupted: the output bag and the report cover the frames processed so far')
        return 130
    return 1 if result.report['frames']['rejected'] else 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format='%(levelname)s: %(message)s')
    from openpose_ros.runtime.loading import ModelError
    from openpose_ros.messages.typestore import MessageDefinitionsNotFound
    from openpose_ros.formats.bag_reader import BagError
    from openpose_ros.bag.writer import OutputError
    user_errors = (BagError, OutputError, ModelError, MessageDefinitionsNotFound, FileExistsError, ValueError)
    return exit_status(run, args, LOG, user_errors,
                       install_hint='bag_eval needs rosbags (pip install "openpose_ros[bags]")')


if __name__ == '__main__':
    sys.exit(main())
