"""Evaluate a model on COCO keypoints (eval()): detections JSON and pycocotools AP/AR.

    openpose-evaluate --weights models/openpose_default --dataset-path coco --no-use-subset
    openpose-evaluate --weights checkpoint_iter_370000.pth --dataset-path coco --base-height 368 --multiscale
    ros2 run openpose_ros evaluate --weights ... --dataset-path ...

Options come from config/training.yaml (sections learner and evaluation), overridden by flags. Prints the
stats as JSON on stdout; the detections go to <temp-path>/<output-name>.
Exit status: 0 done, 2 bad arguments, model or data.
"""
import argparse
import contextlib
import json
import logging
import sys

from openpose_ros.command_line import (add_device_argument, add_network_arguments, apply_config, command_parser,
                                       parse_scales)


def build_parser():
    """The argument parser of openpose-evaluate (`ros2 run openpose_ros evaluate`), before apply_config sets the config
    file's defaults."""
    parser = command_parser('evaluate', __doc__)
    parser.add_argument('--config', help="YAML or JSON config (default: the package's config/training.yaml; "
                                         "'' for none)")
    parser.add_argument('--weights', help='a saved model folder (learner.save) or a checkpoint file')
    parser.add_argument('--pretrained', action='store_true',
                        help='download the published model into --temp-path and evaluate it')
    data = parser.add_argument_group('data (eval arguments)')
    data.add_argument('--dataset-path', help='COCO folder with the images folder and annotations')
    data.add_argument('--dataset-type', default='COCO')
    data.add_argument('--images-folder-name', default='val2017')
    data.add_argument('--annotations-filename', default='person_keypoints_val2017.json')
    data.add_argument('--use-subset', action=argparse.BooleanOptionalAction, default=True,
                      help='evaluate a fixed random subset of --subset-size images')
    data.add_argument('--subset-size', type=int, default=250)
    data.add_argument('--silent', action='store_true', help='no progress bar and no messages')
    data.add_argument('--verbose', action=argparse.BooleanOptionalAction, default=True,
                      help="show pycocotools' summary")
    learner = parser.add_argument_group('learner')
    add_device_argument(learner)
    add_network_arguments(learner)
    learner.add_argument('--base-height', type=int, help="network input height (default: the model's, 256)")
    learner.add_argument('--multiscale', action=argparse.BooleanOptionalAction, default=False,
                         help='average the maps of several scales (default 0.5, 1, 1.5, 2)')
    learner.add_argument('--scales', help='scales, e.g. 0.5,1,1.5,2')
    learner.add_argument('--visualize', action=argparse.BooleanOptionalAction, default=False,
                         help='show the poses, or without a display write them to <temp-path>/visualization/')
    learner.add_argument('--temp-path', default='temp')
    learner.add_argument('--output-name', default='detections.json')
    learner.add_argument('--upsample-ratio', type=int, default=4)
    learner.add_argument('--onnx', action='store_true', help='run the model with ONNX Runtime (optimize())')
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    apply_config(parser, argv, ('learner', 'evaluation'), lenient=('learner',))
    args = parser.parse_args(argv)
    if not args.dataset_path:
        parser.error('--dataset-path is required (or dataset_path in the config)')
    if not args.weights and not args.pretrained:
        parser.error('give --weights (a saved model or checkpoint) or --pretrained')
    logging.basicConfig(level=logging.WARNING if args.silent else logging.INFO, format='%(message)s')

    from openpose_ros.training.datasets import ExternalDataset
    from openpose_ros.evaluation.learner_eval import evaluate
    from openpose_ros.learner import LightweightOpenPoseLearner

    try:
        learner = LightweightOpenPoseLearner(
            device=args.device, backbone=args.backbone, num_refinement_stages=args.num_refinement_stages,
            mobilenet_use_stride=args.mobilenet_use_stride, mobilenetv2_width=args.mobilenetv2_width,
            shufflenet_groups=args.shufflenet_groups, temp_path=args.temp_path, output_name=args.output_name,
            multiscale=args.multiscale, scales=parse_scales(args.scales), visualize=args.visualize)
        weights = args.weights or learner.download(mode='pretrained', verbose=not args.silent)
        learner.load(weights)
        if args.base_height:
            learner.base_height = args.base_height
        if args.onnx:
            learner.optimize()
        with contextlib.redirect_stdout(sys.stderr):  # pycocotools prints; stdout carries only the stats
            stats = evaluate(learner, ExternalDataset(args.dataset_path, args.dataset_type), silent=args.silent,
                             verbose=args.verbose and not args.silent, use_subset=args.use_subset,
                             subset_size=args.subset_size, images_folder_name=args.images_folder_name,
                             annotations_filename=args.annotations_filename, upsample_ratio=args.upsample_ratio)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as error:
        print(f'{parser.prog}: error: {error}', file=sys.stderr)
        return 2
    print(json.dumps(stats))
    return 0


if __name__ == '__main__':
    sys.exit(main())
