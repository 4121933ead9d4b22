"""Training on real COCO images: augmented targets, the optimiser and loss, fit() on CPU, exact resumption,
killed and interrupted runs, the train executable and its config, and two ranks under torchrun.

The network is MobileNet v2 at width 0.25 without refinement stages and the crops are small, so that every
fit here runs in seconds on two cores.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from conftest import COCO, MINI_TRAIN_ANNOTATIONS, ROOT
from openpose_ros.learner import LightweightOpenPoseLearner
from openpose_ros.network import build_network
from openpose_ros.runtime.checkpoints import extract_state_dict, load_state_strictly, read_checkpoint
from openpose_ros.training.datasets import Augmentation, CocoKeypoints, CocoTrainDataset
from openpose_ros.training import trainer as training

MINI = COCO / 'coco-mini'
TRAIN_IMAGES = MINI / 'train2017'
# Four photos with clearly visible people (15-17 keypoints each).
IMAGE_IDS = [30752, 37666, 234748, 442450]
TINY = dict(backbone='mobilenetv2', mobilenetv2_width=0.25, num_refinement_stages=0)
SMALL = Augmentation(crop_size=(96, 144), sample='image', scale_range=(0.9, 1.1), max_rotation=10.0,
                     center_perturbation=8.0, flip_prob=0.5)
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def tiny_learner(tmp_path, **options):
    torch.manual_seed(options.pop('init_seed', 0))
    settings = dict(device='cpu', lr=1e-3, batch_size=2, temp_path=tmp_path, checkpoint_after_iter=1000,
                    log_after=1, val_after=1000, num_workers=0, weights_only=False, **TINY)
    settings.update(options)
    return LightweightOpenPoseLearner(**settings)


def small_dataset(augmentation=SMALL, image_ids=IMAGE_IDS, seed=0):
    return CocoTrainDataset(TRAIN_IMAGES, MINI_TRAIN_ANNOTATIONS, augmentation, image_ids=image_ids, seed=seed)


# --- optimiser and loss -------------------------------------------------------------------------------
def test_parameter_groups_are_the_references():
    network = build_network('mobilenet', 1)
    groups = training.parameter_groups(network, 1.0)
    assert len(groups) == 13  # nothing outside the reference's groups for the published architecture
    ids = [id(p) for g in groups for p in g['params']]
    assert len(ids) == len(set(ids)) == len(list(network.parameters()))
    assert groups[10]['lr'] == 8.0 and groups[9]['lr'] == 4.0 and groups[3]['lr'] == 2.0
    assert sum(p.numel() for p in groups[9]['params']) > 0
    shufflenet = build_network('shufflenet', 0)
    groups = training.parameter_groups(shufflenet, 1.0)
    ids = [id(p) for g in groups for p in g['params']]
    assert len(groups) == 14 and len(ids) == len(set(ids)) == len(list(shufflenet.parameters()))


def test_loss_is_the_references_masked_l2():
    torch.manual_seed(0)
    output, target = torch.rand(2, 19, 4, 5), torch.rand(2, 19, 4, 5)
    mask = (torch.rand(2, 1, 4, 5) > 0.3).float()
    expected = sum(((output[b] - target[b]) * mask[b]).pow(2).sum().item() for b in range(2)) / 2 / 2
    assert training.l2_loss(output, target, mask, 2).item() == pytest.approx(expected, rel=1e-6)
    assert training.l2_loss(output, target, torch.zeros_like(mask), 2).item() == 0


# --- fit ----------------------------------------------------------------------------------------------
def assert_short_fit_lowers_the_loss(tmp_path, **options):
    """25 iterations on 4 real photos halve the loss; returns the learner (options: e.g. device)."""
    learner = tiny_learner(tmp_path, batch_size=4, epochs=25, **options)
    data = small_dataset(Augmentation(crop_size=(96, 144), sample='image', scale_range=(1.0, 1.0),
                                      max_rotation=0, center_perturbation=0, flip_prob=0))
    stats = learner.fit(data, silent=True)
    assert stats == {}
    losses = [entry['loss'] for entry in training.read_losses(tmp_path, 'default')]
    assert len(losses) == 25 and all(math.isfinite(v) for v in losses)
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    print(f'loss {first:.2f} -> {last:.2f}')
    assert last < 0.5 * first
    # fit leaves a model that infers (the learner's estimator is rebuilt)
    assert isinstance(learner.infer(np.zeros((96, 144, 3), np.uint8), track=False), list)
    return learner


@pytest.mark.slow
def test_short_fit_on_real_images_lowers_the_loss(tmp_path):
    assert_short_fit_lowers_the_loss(tmp_path)


@pytest.mark.slow
def test_tensorboard_logs_the_losses(tmp_path):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    learner = tiny_learner(tmp_path, batch_size=2, epochs=1)
    learner.fit(small_dataset(), logging_path=str(tmp_path / 'tb'), logging_flush_secs=1, silent=True)
    events = EventAccumulator(str(tmp_path / 'tb'))
    events.Reload()
    assert {'train/loss', 'train/stage0_heatmaps', 'train/stage0_pafs', 'train/lr'} <= set(events.Tags()['scalars'])
    logged = [e.value for e in events.Scalars('train/loss')]
    assert len(logged) == 2 and logged == pytest.approx([e['loss'] for e in training.read_losses(tmp_path, 'default')])


def _run(tmp_path, experiment, load_iter=0, init_seed=0, max_iterations=None, epochs=3, weights_only=False,
         **options):
    learner = tiny_learner(tmp_path, batch_size=1, batches_per_iter=2, epochs=epochs, checkpoint_after_iter=2,
                           experiment_name=experiment, checkpoint_load_iter=load_iter, init_seed=init_seed,
                           weights_only=weights_only,
                           lr_schedule=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5), **options)
    data = small_dataset(image_ids=IMAGE_IDS + [183872, 790])  # 6 samples: 3 iterations an epoch
    result = training.fit(learner, data, silent=True, max_iterations=max_iterations)
    return learner, result


def assert_resumes_exactly(tmp_path, **options):
    """A run resumed from its iteration-4 checkpoint ends bit for bit like the uninterrupted run (options: e.g.
    device)."""
    _, whole = _run(tmp_path, 'whole', **options)
    assert (whole.iteration, whole.epoch) == (9, 3)
    checkpoint = read_checkpoint(training.checkpoint_path(tmp_path, 'whole', 4))
    assert (checkpoint['iter'], checkpoint['current_epoch'], checkpoint['batch_in_epoch']) == (4, 1, 2)
    assert checkpoint['scheduler']['last_epoch'] == 1 and checkpoint['optimizer']['state']

    folder = training.checkpoints_folder(tmp_path, 'resumed')
    folder.mkdir()
    shutil.copy(training.checkpoint_path(tmp_path, 'whole', 4), folder)
    _, resumed = _run(tmp_path, 'resumed', load_iter=4, init_seed=1, **options)  # other initial weights
    assert (resumed.iteration, resumed.epoch) == (9, 3)
    losses = {e['iter']: e['loss'] for e in whole.losses}
    assert [e['iter'] for e in resumed.losses] == [5, 6, 7, 8, 9]
    for entry in resumed.losses:
        assert entry['loss'] == losses[entry['iter']], entry['iter']  # the same batches, the same state
    for iteration in (6, 8, 9):
        a = read_checkpoint(training.checkpoint_path(tmp_path, 'whole', iteration))
        b = read_checkpoint(training.checkpoint_path(tmp_path, 'resumed', iteration))
        assert all(torch.equal(a['state_dict'][k], b['state_dict'][k]) for k in a['state_dict'])
        assert a['scheduler'] == b['scheduler'] and a['optimizer']['param_groups'] == b['optimizer']['param_groups']
        for key, state in a['optimizer']['state'].items():
            assert all(torch.equal(state[name], b['optimizer']['state'][key][name]) for name in state)
        assert (a['iter'], a['current_epoch'], a['batch_in_epoch']) == (b['iter'], b['current_epoch'],
                                                                        b['batch_in_epoch'])

    # weights_only: the weights of the checkpoint, but a new run (iteration 0, fresh optimiser)
    _, fresh = _run(tmp_path, 'resumed', load_iter=4, weights_only=True, max_iterations=1, **options)
    assert fresh.iteration == 1 and fresh.losses[0]['loss'] != losses[1]


@pytest.mark.slow
def test_resume_is_exact(tmp_path):
    assert_resumes_exactly(tmp_path)


@pytest.mark.slow
def test_validation_during_fit_returns_the_last_stats(tmp_path):
    learner = tiny_learner(tmp_path, batch_size=2, epochs=1, val_after=2)
    val = CocoKeypoints(COCO / 'mmpose-tests', str(COCO / 'mmpose-tests' / 'test_coco.json'))
    stats = learner.fit(small_dataset(), val_dataset=val, silent=True)
    assert set(stats) == {'AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl'}
    assert os.path.isfile(tmp_path / 'detections.json')
    assert learner.model.training is False


def _train_command(tmp_path, *extra):
    config = tmp_path / 'small.json'
    config.write_text(json.dumps({
        'learner': {**TINY, 'device': 'cpu', 'lr': 1e-3, 'batch_size': 2, 'num_workers': 0, 'log_after': 1,
                    'temp_path': str(tmp_path / 'run')},
        'augmentation': {'crop_size': [96, 144], 'sample': 'image', 'scale_range': [0.9, 1.1]}}))
    return [sys.executable, '-m', 'openpose_ros.cli.train', '--config', str(config), '--dataset-path', str(MINI),
            '--silent', '--epochs', '100', *extra]


def _wait_for(predicate, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.2)


def _loadable(path):
    checkpoint = read_checkpoint(path)
    load_state_strictly(build_network(**TINY), extract_state_dict(checkpoint))
    return checkpoint


@pytest.mark.slow
def test_killed_run_leaves_the_last_checkpoint_loadable_and_resumable(tmp_path):
    process = subprocess.Popen(_train_command(tmp_path, '--checkpoint-after-iter', '1'), env=ENV, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: training.latest_checkpoint_iter(tmp_path / 'run', 'default') >= 3, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    iterations = training.checkpoint_iterations(tmp_path / 'run', 'default')
    for iteration in iterations:  # each file is complete: written beside and renamed
        assert _loadable(training.checkpoint_path(tmp_path / 'run', 'default', iteration))['iter'] == iteration
    latest = iterations[-1]
    done = subprocess.run(_train_command(tmp_path, '--checkpoint-load-iter', 'latest', '--no-weights-only',
                                         '--max-iterations', str(latest + 1)),
                          env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _loadable(training.checkpoint_path(tmp_path / 'run', 'default', latest + 1))['iter'] == latest + 1


@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['ctrl_c', 'sigterm'])
def test_ctrl_c_or_sigterm_saves_a_resumable_checkpoint(tmp_path, signum):
    process = subprocess.Popen(_train_command(tmp_path, '--checkpoint-after-iter', '100000'), env=ENV, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    losses = tmp_path / 'run' / 'default_checkpoints' / training.LOSS_LOG
    _wait_for(lambda: losses.is_file() and len(losses.read_text().splitlines()) >= 2, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, (process.returncode, stderr)
    assert '--checkpoint-load-iter' in stderr
    latest = training.latest_checkpoint_iter(tmp_path / 'run', 'default')
    assert latest >= 2
    checkpoint = _loadable(training.checkpoint_path(tmp_path / 'run', 'default', latest))
    assert checkpoint['optimizer']['state'] and checkpoint['iter'] == latest


# --- distributed --------------------------------------------------------------------------------------
DDP_SCRIPT = textwrap.dedent('''
    import os, sys, torch
    from openpose_ros.training import trainer as training
    from openpose_ros.training.datasets import Augmentation, CocoTrainDataset
    from openpose_ros.learner import LightweightOpenPoseLearner
    out, annotations, images = sys.argv[1], sys.argv[2], sys.argv[3]
    rank = int(os.environ['RANK'])
    torch.manual_seed(rank)  # different initial weights: DDP must make them equal
    learner = LightweightOpenPoseLearner(device='cpu', lr=1e-3, batch_size=1, batches_per_iter=2, epochs=2,
        temp_path=os.path.join(out, f'rank{rank}'), checkpoint_after_iter=2, log_after=1, num_workers=0,
        backbone='mobilenetv2', mobilenetv2_width=0.25, num_refinement_stages=0)
    data = CocoTrainDataset(images, annotations, Augmentation(crop_size=(96, 144), sample='image',
                            scale_range=(0.9, 1.1)), image_ids=[30752, 37666, 234748, 442450])
    result = training.fit(learner, data, silent=True)
    torch.save({'state_dict': learner.model.state_dict(), 'iteration': result.iteration,
                'losses': result.losses}, os.path.join(out, f'final{rank}.pt'))
''')


@pytest.mark.slow
def test_two_cpu_ranks_under_torchrun_end_with_identical_parameters(tmp_path):
    script = tmp_path / 'ddp.py'
    script.write_text(DDP_SCRIPT)
    done = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           str(script), str(tmp_path), str(MINI_TRAIN_ANNOTATIONS), str(TRAIN_IMAGES)],
                          env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f'final{r}.pt', weights_only=True) for r in (0, 1))
    # 4 samples split over 2 ranks: 2 batches of 1 a rank and epoch, 2 accumulated: 1 iteration an epoch
    assert rank0['iteration'] == rank1['iteration'] == 2
    assert all(torch.equal(rank0['state_dict'][k], rank1['state_dict'][k]) for k in rank0['state_dict'])
    initial = build_network(**TINY).state_dict()
    assert not torch.equal(rank0['state_dict']['cpm.align.0.weight'], initial['cpm.align.0.weight'])
    assert [e['loss'] for e in rank0['losses']] == [e['loss'] for e in rank1['losses']]  # reduced over ranks
    # only rank 0 writes
    assert training.checkpoint_iterations(tmp_path / 'rank0', 'default') == [2]
    assert not (tmp_path / 'rank1').exists() or not any((tmp_path / 'rank1').rglob('*.pth'))


# --- training messages -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_logged_loss_names_its_parts(tmp_path, capsys):
    learner = tiny_learner(tmp_path, num_refinement_stages=1)
    training.fit(learner, small_dataset(), max_iterations=1)
    entry = training.read_losses(tmp_path, 'default')[0]
    heatmaps, pafs, refined_heatmaps, refined_pafs = entry['stage_losses']
    expected = (f'loss {entry["loss"]:.4f} (initial stage: heatmaps {heatmaps:.4f}, PAFs {pafs:.4f}; '
                f'refinement stage 1: heatmaps {refined_heatmaps:.4f}, PAFs {refined_pafs:.4f})')
    assert expected in capsys.readouterr().out
