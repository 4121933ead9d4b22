"""Train Lightweight OpenPose on a COCO keypoint dataset (fit()), on one device or data-parallel under torchrun.

    openpose-train --dataset-path coco --val-dataset-path coco --temp-path runs/ --experiment-name mine
    torchrun --nproc_per_node 4 -m openpose_ros.cli.train --dataset-path coco ...     (DDP, one process a GPU)
    ros2 run openpose_ros train --dataset-path coco ...

Options come from config/training.yaml (sections learner, training, augmentation), overridden by flags.
Checkpoints go to <temp-path>/<experiment-name>_checkpoints/checkpoint_iter_N.pth; resume with
--checkpoint-load-iter N (or latest) --no-weights-only. Ctrl-C saves a checkpoint to resume from.
Exit status: 0 done, 130 interrupted (checkpoint saved), 2 bad arguments or data.
"""
import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

from openpose_ros.command_line import (add_device_argument, add_network_arguments, apply_config, command_parser,
                                       parse_scales)

if TYPE_CHECKING:  # the training modules import torch: loaded only when training starts
    from openpose_ros.learner import LightweightOpenPoseLearner
    from openpose_ros.training.datasets import Augmentation, ExternalDataset
    from openpose_ros.training.trainer import FitResult, TrainingOptions

LOG = logging.getLogger('openpose_ros.train')


def build_parser():
    """The argument parser of openpose-train (`ros2 run openpose_ros train`), before apply_config sets the config file's
    defaults."""
    parser = command_parser('train', __doc__)
    parser.add_argument('--config', help="YAML or JSON config (default: the package's config/training.yaml; "
                                         "'' for none)")
    data = parser.add_argument_group('data (fit arguments)')
    data.add_argument('--dataset-path', help='COCO folder with the training images and annotations')
    data.add_argument('--dataset-type', default='COCO')
    data.add_argument('--images-folder-name', default='train2017')
    data.add_argument('--annotations-filename', default='person_keypoints_train2017.json')
    data.add_argument('--val-dataset-path', help='COCO folder for validation (none: no validation)')
    data.add_argument('--val-images-folder-name', default='val2017')
    data.add_argument('--val-annotations-filename', default='person_keypoints_val2017.json')
    data.add_argument('--use-val-subset', action=argparse.BooleanOptionalAction, default=True)
    data.add_argument('--val-subset-size', type=int, default=250)
    run = parser.add_argument_group('run (fit arguments)')
    run.add_argument('--epochs', type=int, default=280)
    run.add_argument('--logging-path', default='', help='TensorBoard folder (none: no TensorBoard)')
    run.add_argument('--logging-flush-secs', type=int, default=30)
    run.add_argument('--silent', action='store_true', help='no progress bar and no messages')
    run.add_argument('--verbose', action=argparse.BooleanOptionalAction, default=True)
    run.add_argument('--seed', type=int, default=0, help='seed of the data order and augmentation')
    run.add_argument('--max-iterations', type=int, help='stop after this iteration (a checkpoint is written)')
    run.add_argument('--weights', help='start from a saved model folder or checkpoint file (not ImageNet)')
    run.add_argument('--save', help='save the trained model (learner.save) to this folder')
    learner = parser.add_argument_group('learner')
    learner.add_argument('--lr', type=float, default=4e-5)
    learner.add_argument('--batch-size', type=int, default=80)
    learner.add_argument('--batches-per-iter', type=int, default=1, help='batches accumulated per iteration')
    learner.add_argument('--lr-milestones', type=int, nargs='*', default=[100, 200, 260],
                         help='epochs at which the learning rate is multiplied by --lr-gamma')
    learner.add_argument('--lr-gamma', type=float, default=0.333)
    add_device_argument(learner)
    add_network_arguments(learner)
    learner.add_argument('--temp-path', default='temp')
    learner.add_argument('--experiment-name', default='default')
    learner.add_argument('--checkpoint-after-iter', type=int, default=5000)
    learner.add_argument('--checkpoint-load-iter', default=0, help="iteration to resume from, or 'latest'")
    learner.add_argument('--weights-only', action=argparse.BooleanOptionalAction, default=True,
                         help='from the checkpoint take only the weights (--no-weights-only resumes exactly)')
    learner.add_argument('--val-after', type=int, default=5000)
    learner.add_argument('--log-after', type=int, default=100)
    learner.add_argument('--num-workers', type=int, default=8)
    learner.add_argument('--base-height', type=int, default=256, help='inference height of validation')
    learner.add_argument('--output-name', default='detections.json')
    learner.add_argument('--multiscale', action=argparse.BooleanOptionalAction, default=False)
    learner.add_argument('--scales', help='validation scales, e.g. 0.5,1,1.5,2')
    augmentation = parser.add_argument_group('augmentation')
    augmentation.add_argument('--crop-size', type=int, nargs=2, default=[368, 368], metavar=('HEIGHT', 'WIDTH'))
    augmentation.add_argument('--sample', choices=('person', 'image'), default='person')
    augmentation.add_argument('--target-height', type=float, default=0.6)
    augmentation.add_argument('--scale-range', type=float, nargs=2, default=[0.5, 1.1], metavar=('LOW', 'HIGH'))
    augmentation.add_argument('--max-rotation', type=float, default=40.0)
    augmentation.add_argument('--center-perturbation', type=float, default=40.0)
    augmentation.add_argument('--flip-prob', type=float, default=0.5)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    apply_config(parser, argv, ('learner', 'training', 'augmentation'))
    args = parser.parse_args(argv)
    if not args.dataset_path:
        parser.error('--dataset-path is required (or dataset_path in the config)')
    logging.basicConfig(level=logging.WARNING if args.silent else logging.INFO, format='%(message)s')

    from openpose_ros.training import trainer as training

    load_iter = _checkpoint_load_iter(args)
    try:
        learner = _learner(args, int(load_iter))
        augmentation = _augmentation(args)
        dataset, val_dataset = _datasets(args)
        options = _training_options(args, augmentation)
    except (ValueError, TypeError, FileNotFoundError) as error:
        parser.error(str(error))
    try:
        result = training.fit(learner, dataset, val_dataset, options)
    except KeyboardInterrupt:
        latest = training.latest_checkpoint_iter(args.temp_path, args.experiment_name)
        print(f'interrupted; resume with --checkpoint-load-iter {latest} --no-weights-only', file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as error:
        print(f'{parser.prog}: error: {error}', file=sys.stderr)
        return 2
    _save_and_print(args, learner, result)
    return 0


def _checkpoint_load_iter(args: argparse.Namespace) -> int | str:
    """--checkpoint-load-iter, 'latest' resolved to the latest checkpoint's iteration."""
    from openpose_ros.training.trainer import latest_checkpoint_iter
    if str(args.checkpoint_load_iter) != 'latest':
        return args.checkpoint_load_iter
    load_iter = latest_checkpoint_iter(args.temp_path, args.experiment_name)
    LOG.info('latest checkpoint: iteration %d', load_iter)
    return load_iter


def _learner(args: argparse.Namespace, load_iter: int) -> 'LightweightOpenPoseLearner':
    """The learner of the flags, with the --weights loaded."""
    import torch

    from openpose_ros.learner import LightweightOpenPoseLearner

    milestones, gamma = list(args.lr_milestones), args.lr_gamma
    learner = LightweightOpenPoseLearner(
        lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, device=args.device, backbone=args.backbone,
        lr_schedule=lambda optimizer: torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma),
        temp_path=args.temp_path, checkpoint_after_iter=args.checkpoint_after_iter,
        checkpoint_load_iter=load_iter, val_after=args.val_after, log_after=args.log_after,
        mobilenet_use_stride=args.mobilenet_use_stride, mobilenetv2_width=args.mobilenetv2_width,
        shufflenet_groups=args.shufflenet_groups, num_refinement_stages=args.num_refinement_stages,
        batches_per_iter=args.batches_per_iter, experiment_name=args.experiment_name,
        num_workers=args.num_workers, weights_only=args.weights_only, output_name=args.output_name,
        multiscale=args.multiscale, scales=parse_scales(args.scales), base_height=args.base_height)
    if args.weights:
        learner.load(args.weights)
    return learner


def _augmentation(args: argparse.Namespace) -> 'Augmentation':
    from openpose_ros.training.datasets import Augmentation
    return Augmentation(crop_size=args.crop_size, sample=args.sample, target_height=args.target_height,
                        scale_range=args.scale_range, max_rotation=args.max_rotation,
                        center_perturbation=args.center_perturbation, flip_prob=args.flip_prob)


def _datasets(args: argparse.Namespace) -> tuple['ExternalDataset', 'ExternalDataset | None']:
    """The training dataset and the validation one (None without --val-dataset-path)."""
    from openpose_ros.training.datasets import ExternalDataset
    dataset = ExternalDataset(args.dataset_path, args.dataset_type)
    val_dataset = ExternalDataset(args.val_dataset_path, args.dataset_type) if args.val_dataset_path else None
    return dataset, val_dataset


def _training_options(args: argparse.Namespace, augmentation: 'Augmentation') -> 'TrainingOptions':
    from openpose_ros.training.trainer import TrainingOptions
    return TrainingOptions(
        logging_path=args.logging_path, logging_flush_secs=args.logging_flush_secs, silent=args.silent,
        verbose=args.verbose, epochs=args.epochs, use_val_subset=args.use_val_subset,
        val_subset_size=args.val_subset_size, images_folder_name=args.images_folder_name,
        annotations_filename=args.annotations_filename, val_images_folder_name=args.val_images_folder_name,
        val_annotations_filename=args.val_annotations_filename, augmentation=augmentation, seed=args.seed,
        max_iterations=args.max_iterations, init_weights='current' if args.weights else 'auto')


def _save_and_print(args: argparse.Namespace, learner: 'LightweightOpenPoseLearner', result: 'FitResult') -> None:
    """On the first process only: saves the model (--save), prints the result as JSON (unless --silent)."""
    from openpose_ros.training.trainer import distributed_rank
    if args.save and distributed_rank() == 0:
        learner.save(args.save)
    if not args.silent and distributed_rank() == 0:
        print(json.dumps({'iteration': result.iteration, 'epoch': result.epoch, 'checkpoint': str(result.checkpoint),
                          'iterations_per_s': round(result.iterations_per_second, 4), 'stats': result.stats}))


if __name__ == '__main__':
    sys.exit(main())
