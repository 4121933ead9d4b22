"""Training Lightweight OpenPose: the reference's optimiser, loss and schedule, with exact resumption and
data-parallel training under torchrun.

- Optimiser: Adam over the reference's parameter groups (learning-rate multipliers and weight decay per kind
  of parameter), weight decay 5e-4. Parameters that none of the reference's groups cover (the grouped 1x1
  convolutions and biases of the ShuffleNet backbone) form one more group at the base rate instead of
  staying frozen; for MobileNet v1 there are none.
- Loss: the masked L2 of every stage's heatmaps and PAFs, summed, halved and divided by the batch size.
- Schedule: ``lr_schedule(optimizer)`` or MultiStepLR at epochs 100, 200, 260 with gamma 0.333, stepped
  once per epoch; ``batches_per_iter`` batches are accumulated into one optimiser step (one iteration).
- Checkpoints: ``temp_path/<experiment_name>_checkpoints/checkpoint_iter_<N>.pth``, written atomically every
  ``checkpoint_after_iter`` iterations, at the end and on Ctrl-C, with the weights, optimiser, scheduler,
  iteration, epoch and the position in the epoch. Resuming from one (``checkpoint_load_iter``, unless
  ``weights_only``) continues exactly where the run was: the data order and every augmentation draw are
  functions of (seed, epoch, sample), so the resumed run sees the same batches as an uninterrupted one.
- Distributed: launched by torchrun (RANK, WORLD_SIZE, LOCAL_RANK in the environment) the network is wrapped
  in DistributedDataParallel (nccl on CUDA, gloo on CPU), the data split by a DistributedSampler, and only
  rank 0 writes checkpoints, logs and validates.
"""
import contextlib
import json
import logging
import math
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn, optim
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from openpose_ros.runtime.checkpoints import extract_state_dict, load_state_strictly, read_checkpoint, save_checkpoint
from openpose_ros.training.datasets import Augmentation, CocoKeypoints, CocoTrainDataset, ExternalDataset

LOG = logging.getLogger(__name__)
WEIGHT_DECAY = 5e-4
DEFAULT_MILESTONES = (100, 200, 260)
DEFAULT_GAMMA = 0.333
IMAGENET_FILE = 'mobilenet_sgd_68.848.pth.tar'
LOSS_LOG = 'losses.jsonl'
_CHECKPOINT_NAME = re.compile(r'^checkpoint_iter_(\d+)\.pth$')


# --- optimiser, schedule, loss -------------------------------------------------------------------------
def _parameters(module, predicate):
    for child in module.modules():
        for name, parameter in child.named_parameters(recurse=False):
            if predicate(child, name):
                yield parameter


def _conv(module, name):
    return list(_parameters(module, lambda m, p: isinstance(m, nn.Conv2d) and m.groups == 1 and p == name))


def _conv_dw(module, name):
    return list(_parameters(module, lambda m, p: isinstance(m, nn.Conv2d) and m.groups == m.in_channels
                            and m.in_channels == m.out_channels and p == name))


def _bn(module, name):
    return list(_parameters(module, lambda m, p: isinstance(m, nn.BatchNorm2d) and p == name))


def parameter_groups(network, lr):
    """The reference's Adam parameter groups (train.py), in its order, plus any parameter they miss."""
    groups = [
        {'params': _conv(network.model, 'weight')},
        {'params': _conv_dw(network.model, 'weight'), 'weight_decay': 0},
        {'params': _bn(network.model, 'weight'), 'weight_decay': 0},
        {'params': _bn(network.model, 'bias'), 'lr': lr * 2, 'weight_decay': 0},
        {'params': _conv(network.cpm, 'weight'), 'lr': lr},
        {'params': _conv(network.cpm, 'bias'), 'lr': lr * 2, 'weight_decay': 0},
        {'params': _conv_dw(network.cpm, 'weight'), 'weight_decay': 0},
        {'params': _conv(network.initial_stage, 'weight'), 'lr': lr},
        {'params': _conv(network.initial_stage, 'bias'), 'lr': lr * 2, 'weight_decay': 0},
        {'params': _conv(network.refinement_stages, 'weight'), 'lr': lr * 4},
        {'params': _conv(network.refinement_stages, 'bias'), 'lr': lr * 8, 'weight_decay': 0},
        {'params': _bn(network.refinement_stages, 'weight'), 'weight_decay': 0},
        {'params': _bn(network.refinement_stages, 'bias'), 'lr': lr * 2, 'weight_decay': 0},
    ]
    covered = {id(p) for group in groups for p in group['params']}
    rest = [p for p in network.parameters() if id(p) not in covered]
    if rest:
        groups.append({'params': rest})
    return groups


def make_optimizer(network, lr):
    return optim.Adam(parameter_groups(network, lr), lr=lr, weight_decay=WEIGHT_DECAY)


def default_lr_schedule(optimizer):
    """The reference's schedule: the learning rate x 0.333 at epochs 100, 200 and 260."""
    return optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(DEFAULT_MILESTONES), gamma=DEFAULT_GAMMA)


def make_scheduler(lr_schedule, optimizer):
    if lr_schedule in ('', None):
        return default_lr_schedule(optimizer)
    if not callable(lr_schedule):
        raise TypeError(f'lr_schedule must be a callable taking the optimizer (or ""), not {lr_schedule!r}')
    return lr_schedule(optimizer)


def l2_loss(output, target, mask, batch_size):
    """The reference's loss: sum of ((output - target) * mask)^2 / 2 / batch_size."""
    difference = (output - target) * mask
    return (difference * difference).sum() / 2 / batch_size


def stage_losses(outputs, heatmaps, pafs, heatmap_mask, paf_mask):
    """[heatmaps loss of stage 0, PAFs loss of stage 0, heatmaps loss of stage 1, ...]."""
    batch_size = heatmaps.shape[0]
    return [l2_loss(output, target, mask, batch_size)
            for index, output in enumerate(outputs)
            for target, mask in [(heatmaps, heatmap_mask) if index % 2 == 0 else (pafs, paf_mask)]]


def unpack_batch(batch):
    """A batch of (image, heatmaps, pafs, mask) tuples, or of the reference's dicts -> five tensors."""
    if isinstance(batch, dict):
        return (batch['image'], batch['keypoint_maps'], batch['paf_maps'], batch['keypoint_mask'],
                batch['paf_mask'])
    image, heatmaps, pafs, mask = batch
    return image, heatmaps, pafs, mask, mask


# --- checkpoints ---------------------------------------------------------------------------------------
def checkpoints_folder(temp_path, experiment_name):
    return Path(temp_path) / f'{experiment_name}_checkpoints'


def checkpoint_path(temp_path, experiment_name, iteration):
    return checkpoints_folder(temp_path, experiment_name) / f'checkpoint_iter_{int(iteration)}.pth'


def checkpoint_iterations(temp_path, experiment_name):
    """The iterations of the checkpoints in the experiment's folder, ascending."""
    folder = checkpoints_folder(temp_path, experiment_name)
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for m in map(_CHECKPOINT_NAME.match, os.listdir(folder)) if m)


def latest_checkpoint_iter(temp_path, experiment_name):
    """The iteration of the newest checkpoint of the experiment, 0 when there is none."""
    iterations = checkpoint_iterations(temp_path, experiment_name)
    return iterations[-1] if iterations else 0


# --- distribution --------------------------------------------------------------------------------------
@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0

    def barrier(self):
        if self.enabled:
            torch.distributed.barrier()

    def close(self):
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def distributed_rank():
    """This process's rank under torchrun (0 otherwise)."""
    return int(os.environ.get('RANK', '0')) if int(os.environ.get('WORLD_SIZE', '1')) > 1 else 0


def distributed_setup(device):
    """Joins the process group when launched by torchrun (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size <= 1:
        return Distributed()
    rank = int(os.environ['RANK'])
    local_rank = int(os.environ.get('LOCAL_RANK', rank))
    owns = False
    if not torch.distributed.is_initialized():
        backend = 'nccl' if str(device).startswith('cuda') else 'gloo'
        if backend == 'nccl':
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group(backend=backend)
        owns = True
    return Distributed(rank, torch.distributed.get_world_size(), local_rank, owns)


class SkipSampler(Sampler):
    """The indices of another sampler after the first `skip` (to resume in the middle of an epoch)."""

    def __init__(self, sampler, skip=0):
        self.sampler, self.skip = sampler, int(skip)

    def __iter__(self):
        for position, index in enumerate(self.sampler):
            if position >= self.skip:
                yield index

    def __len__(self):
        return max(len(self.sampler) - self.skip, 0)


class _Interrupt:
    """Ctrl-C (SIGINT) during training: noted, and raised as KeyboardInterrupt by check() at the start of the
    next batch, so that it never lands in a finaliser (where Python would swallow it) or half-way through an
    optimiser step. A second Ctrl-C raises at once."""

    def __init__(self):
        self.pending = False
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def check(self):
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def restore(self):
        if self.installed:
            signal.signal(signal.SIGINT, self.previous if self.previous is not None else signal.SIG_DFL)
            self.installed = False


# --- the loop ------------------------------------------------------------------------------------------
@dataclass
class FitResult:
    """What a fit() did: the last validation stats ({} without validation), where it stopped, its logs."""
    stats: dict = field(default_factory=dict)
    iteration: int = 0
    epoch: int = 0
    losses: list = field(default_factory=list)
    checkpoint: Path = None
    seconds: float = 0.0
    iterations_run: int = 0

    @property
    def iterations_per_second(self):
        return self.iterations_run / self.seconds if self.seconds > 0 else 0.0


def training_dataset(learner, dataset, images_folder_name, annotations_filename, augmentation=None, seed=0):
    """ExternalDataset / CocoKeypoints -> CocoTrainDataset in the learner's geometry; anything else as is
    (a map-style dataset of (image, heatmaps, pafs, mask) tuples or of the reference's dicts)."""
    if isinstance(dataset, (ExternalDataset, CocoKeypoints)):
        return CocoTrainDataset.from_dataset(
            dataset, images_folder_name, annotations_filename, augmentation=augmentation or Augmentation(),
            stride=learner.stride, img_mean=tuple(learner.img_mean), img_scale=learner.img_scale, seed=seed)
    if not hasattr(dataset, '__getitem__') or not hasattr(dataset, '__len__'):
        raise TypeError(f'dataset must be an ExternalDataset, CocoKeypoints or a map-style dataset, '
                        f'not {type(dataset).__name__}')
    return dataset


def init_backbone(learner, network, say):
    """OpenDR's start: the ImageNet MobileNet v1 weights when temp_path holds them (download(mode='weights'))."""
    path = Path(learner.temp_path) / IMAGENET_FILE
    if learner.backbone != 'mobilenet' or not path.is_file():
        say(f'training starts from the current weights (no {IMAGENET_FILE} in {learner.temp_path} '
            f'for backbone {learner.backbone})')
        return
    from openpose_ros.network import load_imagenet_backbone
    missing = load_imagenet_backbone(network, read_checkpoint(path))
    say(f'backbone initialised from {path} ({len(missing)} tensors of the heads not in it)')


def describe_loss(entry):
    """'loss 1.5 (initial stage: heatmaps 0.4, PAFs 0.5; refinement stage 1: heatmaps 0.3, PAFs 0.3)' for a loss
    entry, whose stage_losses are [heatmaps of stage 0, PAFs of stage 0, heatmaps of stage 1, ...]."""
    losses = entry['stage_losses']
    stages = [f'{"initial stage" if index == 0 else f"refinement stage {index}"}: heatmaps {heatmaps:.4f}, '
              f'PAFs {pafs:.4f}' for index, (heatmaps, pafs) in enumerate(zip(losses[0::2], losses[1::2]))]
    return f'loss {entry["loss"]:.4f} ({"; ".join(stages)})'


class _Logger:
    """Rank 0's outputs: the losses file, TensorBoard, and messages (unless silent)."""

    def __init__(self, folder, logging_path, flush_secs, silent, verbose, active):
        self.active, self.silent, self.verbose = active, silent, verbose
        self.losses_path = folder / LOSS_LOG
        self.writer = None
        if active and logging_path:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ImportError('TensorBoard logging (logging_path) needs the tensorboard package: '
                                  'pip install tensorboard (or openpose_ros[train])') from error
            self.writer = SummaryWriter(log_dir=str(logging_path), flush_secs=flush_secs)

    def say(self, message):
        if self.active and not self.silent and self.verbose:
            from tqdm import tqdm
            tqdm.write(message)
        else:
            LOG.debug(message)

    def losses(self, entry):
        if not self.active:
            return
        self.losses_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.losses_path, 'a', encoding='utf-8') as stream:
            stream.write(json.dumps(entry) + '\n')
        if self.writer is not None:
            self.writer.add_scalar('train/loss', entry['loss'], entry['iter'])
            for index, value in enumerate(entry['stage_losses']):
                kind = 'heatmaps' if index % 2 == 0 else 'pafs'
                self.writer.add_scalar(f'train/stage{index // 2}_{kind}', value, entry['iter'])
            self.writer.add_scalar('train/lr', entry['lr'], entry['iter'])

    def stats(self, stats, iteration):
        if self.writer is not None:
            for name, value in stats.items():
                self.writer.add_scalar(f'val/{name}', value, iteration)

    def close(self):
        if self.writer is not None:
            self.writer.close()


def read_losses(temp_path, experiment_name):
    """The logged loss entries of an experiment, one per logged iteration (a resumed run's replace the old)."""
    path = checkpoints_folder(temp_path, experiment_name) / LOSS_LOG
    if not path.is_file():
        return []
    entries = {}
    for line in path.read_text(encoding='utf-8').splitlines():
        if line.strip():
            entry = json.loads(line)
            entries[entry['iter']] = entry
    return [entries[key] for key in sorted(entries)]


def fit(learner, dataset, val_dataset=None, logging_path='', logging_flush_secs=30, silent=False, verbose=True,
        epochs=None, use_val_subset=True, val_subset_size=250, images_folder_name='train2017',
        annotations_filename='person_keypoints_train2017.json', val_images_folder_name='val2017',
        val_annotations_filename='person_keypoints_val2017.json', augmentation=None, seed=0,
        max_iterations=None, init_weights='auto'):
    """Trains ``learner.model`` with the learner's settings (lr, batch_size, epochs, lr_schedule, ...).

    Beyond OpenDR's arguments: ``augmentation`` (datasets.Augmentation) for an ExternalDataset, ``seed`` of
    the data order and augmentation, ``max_iterations`` to stop early (after a checkpoint), and
    ``init_weights``: 'auto' starts a fresh run (no checkpoint_load_iter) from the ImageNet MobileNet in
    temp_path when it is there (OpenDR's behaviour), 'current' from the learner's present weights.
    Returns a FitResult.
    """
    if init_weights not in ('auto', 'current'):
        raise ValueError(f"init_weights must be 'auto' or 'current', not {init_weights!r}")
    total_epochs = int(epochs if epochs is not None else learner.epochs)
    batch_size, batches_per_iter = int(learner.batch_size), int(learner.batches_per_iter)
    device = learner.device
    dist = distributed_setup(device)
    if dist.enabled and str(device).startswith('cuda'):
        device = f'cuda:{dist.local_rank}'
    folder = checkpoints_folder(learner.temp_path, learner.experiment_name)
    logger = _Logger(folder, logging_path, logging_flush_secs, silent, verbose, dist.is_main)
    try:
        return _fit(learner, dataset, val_dataset, silent, verbose, total_epochs, batch_size, batches_per_iter,
                    device, dist, logger, use_val_subset, val_subset_size, images_folder_name, annotations_filename,
                    val_images_folder_name, val_annotations_filename, augmentation, seed, max_iterations,
                    init_weights)
    finally:
        logger.close()
        dist.close()


def _fit(learner, dataset, val_dataset, silent, verbose, total_epochs, batch_size, batches_per_iter, device, dist,
         logger, use_val_subset, val_subset_size, images_folder_name, annotations_filename, val_images_folder_name,
         val_annotations_filename, augmentation, seed, max_iterations, init_weights):
    from tqdm import tqdm

    train_set = training_dataset(learner, dataset, images_folder_name, annotations_filename, augmentation, seed)
    network = learner.model.to(device)
    optimizer = make_optimizer(network, learner.lr)
    scheduler = make_scheduler(learner.lr_schedule, optimizer)
    iteration, epoch, position = 0, 0, 0
    if learner.checkpoint_load_iter:
        path = checkpoint_path(learner.temp_path, learner.experiment_name, learner.checkpoint_load_iter)
        checkpoint = read_checkpoint(path)
        load_state_strictly(network, extract_state_dict(checkpoint))
        if not learner.weights_only:
            optimizer.load_state_dict(checkpoint['optimizer'])
            scheduler.load_state_dict(checkpoint['scheduler'])
            iteration = int(checkpoint['iter'])
            epoch = int(checkpoint['current_epoch'])
            position = int(checkpoint.get('batch_in_epoch', 0))
        logger.say(f'loaded {path}' + ('' if learner.weights_only else
                                       f': iteration {iteration}, epoch {epoch}, batch {position}'))
    elif init_weights == 'auto':
        init_backbone(learner, network, logger.say)

    model = network
    if dist.enabled:
        model = nn.parallel.DistributedDataParallel(
            network, device_ids=[dist.local_rank] if str(device).startswith('cuda') else None)
    sampler = DistributedSampler(train_set, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed)
    num_stages = 1 + network.num_refinement_stages
    result = FitResult(iteration=iteration, epoch=epoch)
    state = {'iteration': iteration, 'epoch': epoch, 'position': position, 'saved': None, 'validated': None}

    def save():
        if dist.is_main and state['iteration'] > 0 and state['saved'] != state['iteration']:
            path = checkpoint_path(learner.temp_path, learner.experiment_name, state['iteration'])
            save_checkpoint({'state_dict': network.state_dict(), 'optimizer': optimizer.state_dict(),
                             'scheduler': scheduler.state_dict(), 'iter': state['iteration'],
                             'current_epoch': state['epoch'], 'batch_in_epoch': state['position'],
                             'seed': seed, 'world_size': dist.world_size, 'batch_size': batch_size,
                             'batches_per_iter': batches_per_iter}, path)
            result.checkpoint = path
            logger.say(f'saved {path}')
        state['saved'] = state['iteration']

    def validate():
        if val_dataset is None or state['validated'] == state['iteration']:
            return
        state['validated'] = state['iteration']
        if dist.is_main:
            from openpose_ros.evaluation.learner_eval import evaluate
            logger.say(f'validation at iteration {state["iteration"]}')
            result.stats = evaluate(learner, val_dataset, silent=silent, verbose=verbose, use_subset=use_val_subset,
                                    subset_size=val_subset_size, images_folder_name=val_images_folder_name,
                                    annotations_filename=val_annotations_filename)
            logger.stats(result.stats, state['iteration'])
            logger.say('validation: ' + ', '.join(f'{k} {v:.4f}' for k, v in result.stats.items()))
            network.train()
        dist.barrier()

    def done():
        return max_iterations is not None and state['iteration'] >= max_iterations

    window, window_iterations, window_start = torch.zeros(2 * num_stages, dtype=torch.float64), 0, time.perf_counter()
    started, start_iteration = time.perf_counter(), iteration
    network.train()
    interrupt = _Interrupt()
    try:
        while state['epoch'] < total_epochs and not done():
            sampler.set_epoch(state['epoch'])
            if hasattr(train_set, 'set_epoch'):
                train_set.set_epoch(state['epoch'])
            loader = DataLoader(train_set, batch_size=batch_size,
                                sampler=SkipSampler(sampler, state['position'] * batch_size),
                                num_workers=learner.num_workers, pin_memory=str(device).startswith('cuda'))
            batches, accumulated = state['position'], 0
            bar = tqdm(loader, total=len(loader), disable=silent or not dist.is_main, leave=False,
                       desc=f'epoch {state["epoch"]}', initial=0)
            for batch in bar:
                interrupt.check()
                if accumulated == 0:
                    optimizer.zero_grad(set_to_none=True)
                images, heatmaps, pafs, heatmap_mask, paf_mask = (t.to(device, non_blocking=True)
                                                                  for t in unpack_batch(batch))
                step = accumulated + 1 == batches_per_iter
                sync = model.no_sync() if dist.enabled and not step else contextlib.nullcontext()
                with sync:
                    losses = stage_losses(model(images), heatmaps, pafs, heatmap_mask, paf_mask)
                    loss = sum(losses) / batches_per_iter
                    loss.backward()
                window += torch.tensor([value.item() for value in losses], dtype=torch.float64) / batches_per_iter
                batches += 1
                accumulated += 1
                if not step:
                    continue
                optimizer.step()
                accumulated = 0
                state['iteration'] += 1
                state['position'] = batches
                window_iterations += 1
                if state['iteration'] % learner.log_after == 0:
                    means = window / window_iterations
                    if dist.enabled:
                        torch.distributed.all_reduce(means)
                        means /= dist.world_size
                    elapsed = time.perf_counter() - window_start
                    entry = {'iter': state['iteration'], 'epoch': state['epoch'], 'loss': float(means.sum()),
                             'stage_losses': [float(v) for v in means], 'lr': optimizer.param_groups[0]['lr'],
                             'iterations_per_s': window_iterations / elapsed if elapsed > 0 else 0.0}
                    result.losses.append(entry)
                    logger.losses(entry)
                    bar.set_postfix(loss=f'{entry["loss"]:.2f}')
                    logger.say(f'iteration {entry["iter"]}, epoch {entry["epoch"]}: {describe_loss(entry)}, '
                               f'{entry["iterations_per_s"]:.2f} it/s')
                    window.zero_()
                    window_iterations, window_start = 0, time.perf_counter()
                if state['iteration'] % learner.checkpoint_after_iter == 0:
                    save()
                if state['iteration'] % learner.val_after == 0:
                    validate()
                if done():
                    break
            bar.close()
            if batches >= math.ceil(len(sampler) / batch_size):  # else stopped by max_iterations
                scheduler.step()
                state['epoch'] += 1
                state['position'] = 0
    except KeyboardInterrupt:
        # The weights and optimiser are those of the last completed iteration, and the position the batch
        # after it: a run resumed from here repeats any batches of an unfinished accumulation.
        logger.say('interrupted: saving a checkpoint to resume from')
        save()
        raise
    finally:
        interrupt.restore()
    result.seconds = time.perf_counter() - started
    result.iterations_run = state['iteration'] - start_iteration
    if dist.enabled:
        # The parameters are equal on every rank; the batch-norm statistics of the last batches are not.
        for buffer in network.buffers():
            torch.distributed.broadcast(buffer, 0)
    save()
    validate()
    network.eval()
    result.iteration, result.epoch = state['iteration'], state['epoch']
    return result
