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

import cv2
import numpy as np
import pytest
import torch

from conftest import COCO, MINI_TRAIN_ANNOTATIONS, ROOT
from openpose_ros.evaluation.metrics import evaluate_keypoints
from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.formats.coco import to_coco_results
from openpose_ros.inference.decode import decode_poses
from openpose_ros.keypoints import COCO_TO_OPENPOSE, FLIP_PAIRS, KEYPOINT_NAMES
from openpose_ros.learner import LightweightOpenPoseLearner
from openpose_ros.network import build_network
from openpose_ros.runtime.checkpoints import extract_state_dict, load_state_strictly, read_checkpoint
from openpose_ros.training.datasets import (Augmentation, CocoKeypoints, CocoTrainDataset, ExternalDataset,
                                            resolve_coco, sample_people)
from openpose_ros.training.targets import segmentation_mask
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


# --- data ---------------------------------------------------------------------------------------------
def test_external_dataset_resolves_both_layouts(tmp_path):
    coco = resolve_coco(ExternalDataset(MINI), 'train2017', 'person_keypoints_train2017.json')  # annotations/
    assert coco.images_dir == str(TRAIN_IMAGES) and str(coco.annotations).endswith('person_keypoints_train2017.json')
    flat = resolve_coco(ExternalDataset(COCO / 'mmpose-tests'), '.', 'test_coco.json')  # OpenDR's: beside
    assert os.path.isfile(flat.annotations)
    with pytest.raises(FileNotFoundError, match='val2017'):
        resolve_coco(ExternalDataset(tmp_path), 'val2017', 'x.json')
    with pytest.raises(ValueError, match='COCO'):
        resolve_coco(ExternalDataset(MINI, 'VOC'), 'train2017', 'person_keypoints_train2017.json')


def test_samples_are_the_references_people_and_shapes():
    dataset = CocoTrainDataset(TRAIN_IMAGES, MINI_TRAIN_ANNOTATIONS)
    records = load_coco_keypoints(str(MINI_TRAIN_ANNOTATIONS))
    # One sample per person with >= 5 keypoints and area >= 32 x 32, not next to an already chosen one.
    assert len(dataset) == sum(len(sample_people(r)) for r in records) and 40 < len(dataset) < 86
    image, heatmaps, pafs, mask = dataset[0]
    assert image.shape == (3, 368, 368) and heatmaps.shape == (19, 46, 46) and pafs.shape == (38, 46, 46)
    assert mask.shape == (1, 46, 46) and image.dtype == heatmaps.dtype == np.float32
    assert -0.51 <= image.min() and image.max() < 0.5


def test_draws_depend_on_seed_epoch_and_index_only():
    dataset = small_dataset()
    first = dataset[2][0]
    dataset[0], dataset[3]  # other samples drawn in between change nothing
    assert np.array_equal(dataset[2][0], first)
    dataset.set_epoch(1)
    assert not np.array_equal(dataset[2][0], first)
    dataset.set_epoch(0)
    assert np.array_equal(dataset[2][0], first)
    assert not np.array_equal(small_dataset(seed=1)[2][0], first)


def _crop_ground_truth(dataset, indices):
    """COCO ground truth of augmented samples in crop pixels, one image per sample. People cut by the crop's
    border are ignored (iscrowd): what the decoder makes of fragments is not the augmentation's business."""
    crop_h, crop_w = dataset.augmentation.crop_size
    images, annotations, results = [], [], []
    for index in indices:
        crop, keypoints, mask, matrix, _ = dataset.sample(index)
        record = dataset.records[dataset.samples[index][0]]
        images.append({'id': index + 1, 'width': crop_w, 'height': crop_h, 'file_name': f'{index}.jpg'})
        area_scale = abs(np.linalg.det(matrix[:, :2]))
        for person, points in enumerate(keypoints):
            inside = (points[:, 0] >= 0) & (points[:, 0] < crop_w) & (points[:, 1] >= 0) & (points[:, 1] < crop_h)
            coco = points[list(COCO_TO_OPENPOSE)].copy()
            labelled = coco[:, 2] > 0
            cut = bool((labelled & ~inside[list(COCO_TO_OPENPOSE)]).any())
            coco[~(inside[list(COCO_TO_OPENPOSE)] & labelled), :] = 0
            if (coco[:, 2] > 0).sum() == 0:
                continue
            annotations.append({'id': len(annotations) + 1, 'image_id': index + 1, 'category_id': 1,
                                'iscrowd': int(cut),
                                'keypoints': coco.reshape(-1).tolist(), 'num_keypoints': int((coco[:, 2] > 0).sum()),
                                'area': float(record.areas[person] * area_scale),
                                'bbox': [0, 0, 1, 1]})
        _, heatmaps, pafs, _ = dataset[index]
        found, scores, pose_scores = decode_poses(heatmaps, pafs, stride=dataset.stride)
        results += to_coco_results(index + 1, found, scores, pose_scores, offset=0.0)
    ground_truth = {'images': images, 'annotations': annotations,
                    'categories': [{'id': 1, 'name': 'person', 'keypoints': [], 'skeleton': []}]}
    return ground_truth, results


def test_augmented_targets_decode_back_to_the_augmented_people():
    """Scale, rotation, crop and flip applied to a real image, its annotations and its targets agree: the
    decoder finds the moved people in the rendered maps where the moved annotations say they are."""
    augmentation = Augmentation(crop_size=(368, 368), max_rotation=40.0, flip_prob=0.5, scale_range=(0.8, 1.1))
    dataset = CocoTrainDataset(TRAIN_IMAGES, MINI_TRAIN_ANNOTATIONS, augmentation,
                               image_ids=IMAGE_IDS + [790, 183872], seed=3)
    flips = [dataset.sample(i)[4] for i in range(len(dataset))]
    assert any(flips) and not all(flips)
    ground_truth, results = _crop_ground_truth(dataset, range(len(dataset)))
    metrics = evaluate_keypoints(ground_truth, results)
    whole = sum(1 - a['iscrowd'] for a in ground_truth['annotations'])
    print(f"augmented oracle AP {metrics['AP']:.3f} AR {metrics['AR']:.3f} on {len(dataset)} samples, "
          f"{whole} people inside their crop")
    assert whole >= 10
    assert metrics['AP'] > 0.95 and metrics['AR'] > 0.95


def test_augmented_keypoints_stay_on_their_image_content():
    """The image and the keypoints go through the same warp: the crop's colours at the moved keypoints are the
    original's at the annotated ones (up to resampling), and clearly not those 12 pixels away."""
    augmentation = Augmentation(crop_size=(368, 368), max_rotation=40.0, flip_prob=0.5, scale_range=(1.5, 2.0))
    dataset = CocoTrainDataset(TRAIN_IMAGES, MINI_TRAIN_ANNOTATIONS, augmentation, image_ids=IMAGE_IDS, seed=1)
    errors, shifted = [], []
    for index in range(len(dataset)):
        crop, keypoints, _, matrix, flip = dataset.sample(index)
        record = dataset.records[dataset.samples[index][0]]
        scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
        original = cv2.GaussianBlur(dataset.read_image(record).astype(np.float32), (0, 0), 2)
        moved = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), 2 * scale)
        source = record.keypoints[:, list(FLIP_PAIRS)] if flip else record.keypoints
        for (x, y, state), (ox, oy, _) in zip(keypoints.reshape(-1, 3), source.reshape(-1, 3)):
            if state > 0 and 20 <= x < 348 and 20 <= y < 348 and 0 <= ox < record.width - 16 \
                    and 0 <= oy < record.height:
                here = moved[int(round(y)), int(round(x))]
                errors.append(np.abs(here - original[int(round(oy)), int(round(ox))]).mean())
                shifted.append(np.abs(here - original[int(round(oy)), int(round(ox)) + 12]).mean())
    assert len(errors) > 20
    print(f'colour error at the keypoints {np.median(errors):.1f}, 12 px away {np.median(shifted):.1f}')
    assert np.median(errors) < 0.25 * np.median(shifted)


def test_flip_mirrors_the_image_and_swaps_left_and_right():
    plain = small_dataset(Augmentation.none(crop_size=(256, 392)))
    flipped = small_dataset(Augmentation(crop_size=(256, 392), sample='image', scale_range=(1, 1), max_rotation=0,
                                         center_perturbation=0, flip_prob=1.0))
    crop, keypoints, _, _, flip = plain.sample(0)
    crop_f, keypoints_f, _, _, flip_f = flipped.sample(0)
    assert not flip and flip_f
    assert np.abs(crop_f.astype(int) - crop[:, ::-1].astype(int)).max() <= 1
    r_sho, l_sho = KEYPOINT_NAMES.index('r_sho'), KEYPOINT_NAMES.index('l_sho')
    person = keypoints[:, [r_sho, l_sho], 2].min(axis=1).argmax()
    # The mirrored right shoulder is the original left one, mirrored: the labels follow the anatomy.
    assert keypoints_f[person, r_sho, 0] == pytest.approx(391 - keypoints[person, l_sho, 0], abs=1e-6)
    assert np.sign(keypoints_f[person, r_sho, 0] - keypoints_f[person, l_sho, 0]) == \
        np.sign(keypoints[person, r_sho, 0] - keypoints[person, l_sho, 0])
    _, heatmaps, _, _ = plain[0]
    _, heatmaps_f, _, _ = flipped[0]
    assert np.allclose(heatmaps_f[r_sho], heatmaps[l_sho][:, ::-1], atol=0.05)


def test_crowds_are_masked_where_they_are():
    # 129648 has a crowd region: after the warp the mask is 0 on it and 1 elsewhere, as on the original.
    dataset = CocoTrainDataset(TRAIN_IMAGES, MINI_TRAIN_ANNOTATIONS, Augmentation.none(crop_size=(256, 384)),
                               image_ids=[129648])
    crop, _, mask, matrix, _ = dataset.sample(0)
    record = dataset.records[0]
    original = segmentation_mask(record.mask_segmentations(), record.height, record.width)
    assert 0 < (mask < 0.5).mean() < 0.5
    ys, xs = np.nonzero(original < 0.5)
    moved = np.stack([xs, ys], 1) @ matrix[:, :2].T + matrix[:, 2]
    inside = (moved[:, 0] >= 1) & (moved[:, 0] < 383) & (moved[:, 1] >= 1) & (moved[:, 1] < 255)
    values = mask[np.round(moved[inside, 1]).astype(int), np.round(moved[inside, 0]).astype(int)]
    assert (values < 0.5).mean() > 0.9
    assert dataset[0][3].min() < 0.5


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


# --- the executable: config, kill, Ctrl-C -------------------------------------------------------------
def test_train_flags_override_the_config(tmp_path):
    from openpose_ros.command_line import apply_config, default_config_path, load_config
    from openpose_ros.cli.train import build_parser
    shipped = default_config_path()
    assert shipped is not None and shipped.name == 'training.yaml'
    sections = load_config(shipped)
    parser = build_parser()
    defaults = {a.dest: a.default for a in parser._actions}
    for section in ('learner', 'training', 'augmentation'):
        for key, value in sections[section].items():  # the shipped config is the parser's defaults
            assert key in defaults, key
            assert defaults[key] == value or (key == 'dataset_path' and value is None), key
    config = tmp_path / 'train.json'
    config.write_text(json.dumps({'learner': {'batch_size': 3, 'lr': 0.5}, 'augmentation': {'crop_size': [64, 96]}}))
    argv = ['--config', str(config), '--lr', '0.25']
    parser = build_parser()
    apply_config(parser, argv, ('learner', 'training', 'augmentation'))
    args = parser.parse_args(argv)
    assert (args.batch_size, args.lr, args.crop_size, args.epochs) == (3, 0.25, [64, 96], 280)
    config.write_text(json.dumps({'learner': {'batch_sise': 3}}))
    with pytest.raises(SystemExit):
        apply_config(build_parser(), argv, ('learner',))


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
