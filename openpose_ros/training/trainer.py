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

fit(learner, dataset, val_dataset, TrainingOptions(...)) runs a Trainer: resume(), then step() per batch, with
log(), save() and validate() at their intervals; Ctrl-C asks it to stop before the next batch
(openpose_ros.interrupts).
"""
import contextlib
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn, optim
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from openpose_ros.interrupts import StopRequests
from openpose_ros.runtime.checkpoints import extract_state_dict, load_state_strictly, read_checkpoint, save_checkpoint
from openpose_ros.training.datasets import Augmentation, CocoKeypoints, CocoTrainDataset, ExternalDataset

LOG = logging.getLogger(__name__)
WEIGHT_DECAY = 5e-4
DEFAULT_MILESTONES = (100, 200, 260)
DEFAULT_GAMMA = 0.333
IMAGENET_FILE = 'mobilenet_sgd_68.848.pth.tar'
LOSS_LOG = 'losses.jsonl'
INIT_WEIGHTS = ('auto', 'current')
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
    """The reference's Adam over parameter_groups, with weight decay WEIGHT_DECAY."""
    return optim.Adam(parameter_groups(network, lr), lr=lr, weight_decay=WEIGHT_DECAY)


def default_lr_schedule(optimizer):
    """The reference's schedule: the learning rate x 0.333 at epochs 100, 200 and 260."""
    return optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(DEFAULT_MILESTONES), gamma=DEFAULT_GAMMA)


def make_scheduler(lr_schedule, optimizer):
    """The learning-rate scheduler: `lr_schedule(optimizer)`, or the default schedule for "" or None; TypeError for
    anything else."""
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
    """The folder of the checkpoints of an experiment: <temp_path>/<experiment_name>_checkpoints."""
    return Path(temp_path) / f'{experiment_name}_checkpoints'


def checkpoint_path(temp_path, experiment_name, iteration):
    """The checkpoint file of an iteration: checkpoint_iter_<iteration>.pth in checkpoints_folder."""
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
    """This process's place in data-parallel training (rank, world size, local rank); `owns_group` when it started the
    process group, and so ends it on close."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self):
        """Whether there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self):
        """Whether this is rank 0, the process that logs, validates and writes checkpoints."""
        return self.rank == 0

    def barrier(self):
        """Waits for every process (nothing with one process)."""
        if self.enabled:
            torch.distributed.barrier()

    def close(self):
        """Destroys the process group when this process started it."""
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


# --- the loop ------------------------------------------------------------------------------------------
@dataclass
class FitResult:
    """What a fit() did: the last validation stats ({} without validation), where it stopped, its logs."""
    stats: dict[str, float] = field(default_factory=dict)
    iteration: int = 0
    epoch: int = 0
    losses: list[dict] = field(default_factory=list)
    checkpoint: Path | None = None
    seconds: float = 0.0
    iterations_run: int = 0

    @property
    def iterations_per_second(self) -> float:
        """Iterations run per second of the fit (0.0 when no time was measured)."""
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


@dataclass
class TrainingOptions:
    """fit()'s arguments beyond the learner's own settings (lr, batch_size, epochs, checkpoints, ... are the
    learner's). The first eleven are OpenDR's fit() arguments; then ``augmentation`` (datasets.Augmentation)
    of an ExternalDataset or CocoKeypoints, ``seed`` of the data order and augmentation, ``max_iterations`` to
    stop early (after a checkpoint), and ``init_weights``: 'auto' starts a fresh run (no checkpoint_load_iter)
    from the ImageNet MobileNet in temp_path when it is there (OpenDR's behaviour), 'current' from the
    learner's present weights."""
    logging_path: str | os.PathLike = ''  # TensorBoard folder; '' for none
    logging_flush_secs: int = 30
    silent: bool = False
    verbose: bool = True
    epochs: int | None = None  # None: the learner's
    use_val_subset: bool = True
    val_subset_size: int = 250
    images_folder_name: str = 'train2017'
    annotations_filename: str = 'person_keypoints_train2017.json'
    val_images_folder_name: str = 'val2017'
    val_annotations_filename: str = 'person_keypoints_val2017.json'
    augmentation: Augmentation | None = None
    seed: int = 0
    max_iterations: int | None = None
    init_weights: str = 'auto'

    def __post_init__(self) -> None:
        if self.init_weights not in INIT_WEIGHTS:
            raise ValueError(f"init_weights must be 'auto' or 'current', not {self.init_weights!r}")


@dataclass
class Position:
    """Where a run is: the iterations done, the epoch, and the batches of the epoch that those iterations took."""
    iteration: int = 0
    epoch: int = 0
    batch: int = 0


class _LossWindow:
    """The stage losses of the iterations since the last log, summed, and the time they took."""

    def __init__(self, size):
        self.sums = torch.zeros(size, dtype=torch.float64)
        self.reset()

    def add(self, losses, batches_per_iter):
        self.sums += torch.tensor([value.item() for value in losses], dtype=torch.float64) / batches_per_iter

    def reset(self):
        self.sums.zero_()
        self.iterations, self.start = 0, time.perf_counter()

    def rate(self):
        elapsed = time.perf_counter() - self.start
        return self.iterations / elapsed if elapsed > 0 else 0.0


def fit(learner, dataset, val_dataset=None, options: TrainingOptions | None = None, **settings) -> FitResult:
    """Trains ``learner.model`` with the learner's settings (lr, batch_size, epochs, lr_schedule, ...) and
    `options`, or TrainingOptions with `settings` by name: fit(learner, data, silent=True, max_iterations=2).
    Returns a FitResult.
    """
    options = replace(options or TrainingOptions(), **settings)
    dist = distributed_setup(learner.device)
    folder = checkpoints_folder(learner.temp_path, learner.experiment_name)
    logger = _Logger(folder, options.logging_path, options.logging_flush_secs, options.silent, options.verbose,
                     dist.is_main)
    try:
        return Trainer(learner, dataset, val_dataset, options, dist, logger).run()
    finally:
        logger.close()
        dist.close()


class Trainer:
    """One fit() of a learner's network: its optimiser and schedule, where the run is (`position`), and what it
    did (`result`). Built by fit(), which owns the process group and the logs."""

    def __init__(self, learner, dataset, val_dataset, options: TrainingOptions, dist: Distributed,
                 logger: _Logger) -> None:
        self.learner, self.val_dataset, self.options = learner, val_dataset, options
        self.dist, self.logger = dist, logger
        self.epochs = int(options.epochs if options.epochs is not None else learner.epochs)
        self.batch_size, self.batches_per_iter = int(learner.batch_size), int(learner.batches_per_iter)
        self.device = learner.device
        if dist.enabled and str(self.device).startswith('cuda'):
            self.device = f'cuda:{dist.local_rank}'
        self.train_set = training_dataset(learner, dataset, options.images_folder_name, options.annotations_filename,
                                          options.augmentation, options.seed)
        self.network = learner.model.to(self.device)
        self.optimizer = make_optimizer(self.network, learner.lr)
        self.scheduler = make_scheduler(learner.lr_schedule, self.optimizer)
        self.position = Position()
        self.result = FitResult()
        self.window = _LossWindow(2 * (1 + self.network.num_refinement_stages))
        self._accumulated = 0  # batches in the gradients of the iteration under way
        self._saved = self._validated = None  # the iterations last saved and validated

    @property
    def finished(self) -> bool:
        """Whether max_iterations is reached."""
        return self.options.max_iterations is not None and self.position.iteration >= self.options.max_iterations

    def resume(self) -> None:
        """From learner.checkpoint_load_iter: the weights, and unless learner.weights_only the optimiser, schedule
        and position too; without one, the ImageNet backbone when init_weights is 'auto'."""
        learner = self.learner
        if not learner.checkpoint_load_iter:
            if self.options.init_weights == 'auto':
                init_backbone(learner, self.network, self.logger.say)
            return
        path = checkpoint_path(learner.temp_path, learner.experiment_name, learner.checkpoint_load_iter)
        checkpoint = read_checkpoint(path)
        load_state_strictly(self.network, extract_state_dict(checkpoint))
        if learner.weights_only:
            self.logger.say(f'loaded {path}')
            return
        self.optimizer.load_state_dict(checkpoint['optimizer'])
        self.scheduler.load_state_dict(checkpoint['scheduler'])
        self.position = Position(int(checkpoint['iter']), int(checkpoint['current_epoch']),
                                 int(checkpoint.get('batch_in_epoch', 0)))
        self.logger.say(f'loaded {path}: iteration {self.position.iteration}, epoch {self.position.epoch}, '
                        f'batch {self.position.batch}')

    def run(self) -> FitResult:
        """Resumes, trains to the last epoch or max_iterations, then saves and validates. Ctrl-C stops before
        the next batch with a checkpoint to resume from, and raises KeyboardInterrupt."""
        self.resume()
        model = self.network
        if self.dist.enabled:
            model = nn.parallel.DistributedDataParallel(
                self.network, device_ids=[self.dist.local_rank] if str(self.device).startswith('cuda') else None)
        sampler = DistributedSampler(self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                     shuffle=True, seed=self.options.seed)
        self.window.reset()
        started, start_iteration = time.perf_counter(), self.position.iteration
        self.network.train()
        # SIGTERM too (a job scheduler's stop, `kill`): the run ends with a resumable checkpoint.
        with StopRequests() as stop:
            try:
                while self.position.epoch < self.epochs and not self.finished:
                    self._train_epoch(model, sampler, stop)
            except KeyboardInterrupt:
                # The weights and optimiser are those of the last completed iteration, and the position the batch
                # after it: a run resumed from here repeats any batches of an unfinished accumulation.
                self.logger.say('interrupted: saving a checkpoint to resume from')
                self.save()
                raise
        self.result.seconds = time.perf_counter() - started
        self.result.iterations_run = self.position.iteration - start_iteration
        if self.dist.enabled:
            # The parameters are equal on every rank; the batch-norm statistics of the last batches are not.
            for buffer in self.network.buffers():
                torch.distributed.broadcast(buffer, 0)
        self.save()
        self.validate()
        self.network.eval()
        self.result.iteration, self.result.epoch = self.position.iteration, self.position.epoch
        return self.result

    def _train_epoch(self, model, sampler, stop):
        """The rest of the current epoch, from position.batch; the epoch ends unless max_iterations stops it."""
        from tqdm import tqdm

        epoch = self.position.epoch
        sampler.set_epoch(epoch)
        if hasattr(self.train_set, 'set_epoch'):
            self.train_set.set_epoch(epoch)
        loader = DataLoader(self.train_set, batch_size=self.batch_size,
                            sampler=SkipSampler(sampler, self.position.batch * self.batch_size),
                            num_workers=self.learner.num_workers, pin_memory=str(self.device).startswith('cuda'))
        batches, self._accumulated = self.position.batch, 0
        bar = tqdm(loader, total=len(loader), disable=self.options.silent or not self.dist.is_main, leave=False,
                   desc=f'epoch {epoch}', initial=0)
        for batch in bar:
            stop.raise_if_requested()  # between batches, never inside an optimiser step
            completed = self.step(model, batch)
            batches += 1
            if not completed:
                continue
            self.position.iteration += 1
            self.position.batch = batches
            self._after_iteration(bar)
            if self.finished:
                break
        bar.close()
        if batches >= math.ceil(len(sampler) / self.batch_size):
            self.scheduler.step()
            self.position.epoch, self.position.batch = epoch + 1, 0

    def step(self, model, batch) -> bool:
        """Forward and backward of one batch, its gradients added to those of the iteration's earlier batches;
        on the iteration's last batch (batches_per_iter) the optimiser steps. True when it did.

        Under DistributedDataParallel the gradients are reduced over the ranks on that last batch only."""
        if self._accumulated == 0:
            self.optimizer.zero_grad(set_to_none=True)
        images, heatmaps, pafs, heatmap_mask, paf_mask = (t.to(self.device, non_blocking=True)
                                                          for t in unpack_batch(batch))
        last = self._accumulated + 1 == self.batches_per_iter
        sync = model.no_sync() if self.dist.enabled and not last else contextlib.nullcontext()
        with sync:
            losses = stage_losses(model(images), heatmaps, pafs, heatmap_mask, paf_mask)
            loss = sum(losses) / self.batches_per_iter
            loss.backward()
        self.window.add(losses, self.batches_per_iter)
        self._accumulated += 1
        if not last:
            return False
        self.optimizer.step()
        self._accumulated = 0
        self.window.iterations += 1
        return True

    def _after_iteration(self, bar):
        iteration, learner = self.position.iteration, self.learner
        if iteration % learner.log_after == 0:
            self.log(bar)
        if iteration % learner.checkpoint_after_iter == 0:
            self.save()
        if iteration % learner.val_after == 0:
            self.validate()

    def log(self, bar=None) -> None:
        """The mean losses since the last log (over the ranks) to the losses file, TensorBoard and the user."""
        means = self.window.sums / self.window.iterations
        if self.dist.enabled:
            torch.distributed.all_reduce(means)
            means /= self.dist.world_size
        entry = {'iter': self.position.iteration, 'epoch': self.position.epoch, 'loss': float(means.sum()),
                 'stage_losses': [float(v) for v in means], 'lr': self.optimizer.param_groups[0]['lr'],
                 'iterations_per_s': self.window.rate()}
        self.result.losses.append(entry)
        self.logger.losses(entry)
        if bar is not None:
            bar.set_postfix(loss=f'{entry["loss"]:.2f}')
        self.logger.say(f'iteration {entry["iter"]}, epoch {entry["epoch"]}: {describe_loss(entry)}, '
                        f'{entry["iterations_per_s"]:.2f} it/s')
        self.window.reset()

    def save(self) -> None:
        """A checkpoint of the present iteration (rank 0, once per iteration, none before the first)."""
        iteration = self.position.iteration
        if self.dist.is_main and iteration > 0 and self._saved != iteration:
            path = checkpoint_path(self.learner.temp_path, self.learner.experiment_name, iteration)
            save_checkpoint({'state_dict': self.network.state_dict(), 'optimizer': self.optimizer.state_dict(),
                             'scheduler': self.scheduler.state_dict(), 'iter': iteration,
                             'current_epoch': self.position.epoch, 'batch_in_epoch': self.position.batch,
                             'seed': self.options.seed, 'world_size': self.dist.world_size,
                             'batch_size': self.batch_size, 'batches_per_iter': self.batches_per_iter}, path)
            self.result.checkpoint = path
            self.logger.say(f'saved {path}')
        self._saved = iteration

    def validate(self) -> None:
        """Evaluation on the validation set (rank 0, once per iteration), into result.stats."""
        iteration, options = self.position.iteration, self.options
        if self.val_dataset is None or self._validated == iteration:
            return
        self._validated = iteration
        if self.dist.is_main:
            from openpose_ros.evaluation.learner_eval import evaluate
            self.logger.say(f'validation at iteration {iteration}')
            self.result.stats = evaluate(
                self.learner, self.val_dataset, silent=options.silent, verbose=options.verbose,
                use_subset=options.use_val_subset, subset_size=options.val_subset_size,
                images_folder_name=options.val_images_folder_name,
                annotations_filename=options.val_annotations_filename)
            self.logger.stats(self.result.stats, iteration)
            self.logger.say('validation: ' + ', '.join(f'{k} {v:.4f}' for k, v in self.result.stats.items()))
            self.network.train()
        self.dist.barrier()
