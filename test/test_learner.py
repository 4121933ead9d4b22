"""The learner's save/load, ONNX path and downloads, on real images."""
import gc
import json
import logging
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import DATA, PHOTO, TEST_MODEL
from openpose_ros import LightweightOpenPoseLearner
from openpose_ros.runtime.checkpoints import WeightsMismatchError
from openpose_ros.learner import NoWeightsError


IMAGES = [PHOTO, DATA / 'images' / 'messi5.jpg', DATA / 'images' / 'basketball1.png']


@pytest.fixture(scope='module')
def photos():
    return [cv2.imread(str(path)) for path in IMAGES]


def new_learner(**options):
    torch.manual_seed(0)
    return LightweightOpenPoseLearner(device='cpu', **options)


def maps_of(learner, image):
    heatmaps, pafs, _ = learner.estimator.maps(image)
    return heatmaps, pafs


def test_save_then_load_gives_identical_outputs(tmp_path, photos):
    learner = new_learner(num_refinement_stages=2)
    learner.save(tmp_path / 'model')
    assert sorted(p.name for p in (tmp_path / 'model').iterdir()) == ['model.json', 'model.pth']
    loaded = new_learner().load(tmp_path / 'model')  # architecture comes from the folder
    assert loaded.num_refinement_stages == 2
    for image in photos:
        for before, after in zip(maps_of(learner, image), maps_of(loaded, image)):
            assert np.array_equal(before, after)


def test_the_original_checkpoint_format_and_bare_state_dicts_load(tmp_path, photos):
    learner = new_learner()
    original = {'state_dict': learner.model.state_dict(), 'optimizer': {}, 'scheduler': {}, 'iter': 370000,
                'current_epoch': 279}
    torch.save(original, tmp_path / 'checkpoint_iter_370000.pth')
    torch.save(learner.model.state_dict(), tmp_path / 'bare.pth')
    for name in ('checkpoint_iter_370000.pth', 'bare.pth'):
        other = LightweightOpenPoseLearner(device='cpu').load(tmp_path / name)
        assert np.array_equal(maps_of(other, photos[0])[0], maps_of(learner, photos[0])[0])


def test_mismatched_weights_name_the_parameters_and_change_nothing(tmp_path, photos):
    torch.save({'state_dict': new_learner(num_refinement_stages=2).model.state_dict()}, tmp_path / 'two.pth')
    learner = new_learner()
    before = maps_of(learner, photos[0])[0]
    with pytest.raises(WeightsMismatchError, match=r'unexpected \(88\): refinement_stages\.1\.'):
        learner.load(tmp_path / 'two.pth')
    assert np.array_equal(maps_of(learner, photos[0])[0], before)


def test_corrupt_or_hostile_files_are_refused(tmp_path):
    good = new_learner()
    good.save(tmp_path / 'model')
    weights = tmp_path / 'model' / 'model.pth'
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match='not a readable PyTorch checkpoint'):
        new_learner().load(truncated)
    hostile = tmp_path / 'hostile.pth'
    torch.save({'state_dict': {}, 'payload': subprocess.Popen}, hostile)  # weights_only refuses classes
    with pytest.raises(ValueError, match='not a readable PyTorch checkpoint'):
        new_learner().load(hostile)
    (tmp_path / 'model' / 'model.json').write_text('{not json')
    with pytest.raises(ValueError, match='not valid model metadata'):
        new_learner().load(tmp_path / 'model')


def test_a_failed_save_leaves_the_saved_model_intact(tmp_path, photos, monkeypatch):
    first = new_learner()
    first.save(tmp_path / 'model')
    saved = (tmp_path / 'model' / 'model.pth').read_bytes()

    def fail_midway(obj, path, *args, **kwargs):
        open(path, 'wb').write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', fail_midway)
    with pytest.raises(OSError, match='disk full'):
        new_learner(num_refinement_stages=3).save(tmp_path / 'model')
    monkeypatch.undo()
    assert (tmp_path / 'model' / 'model.pth').read_bytes() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model']  # no temporary left behind
    reloaded = LightweightOpenPoseLearner(device='cpu').load(tmp_path / 'model')
    assert np.array_equal(maps_of(reloaded, photos[0])[0], maps_of(first, photos[0])[0])


def test_onnx_runtime_gives_the_same_maps_as_torch(tmp_path, photos):
    learner = new_learner(temp_path=tmp_path)
    torch_maps = [maps_of(learner, image) for image in photos]
    learner.optimize()
    assert learner.estimator.backend.name == 'onnxruntime-cpu'
    for image, expected in zip(photos, torch_maps):
        for got, want in zip(maps_of(learner, image), expected):
            assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4
    learner.save(tmp_path / 'optimized')
    metadata = json.loads((tmp_path / 'optimized' / 'optimized.json').read_text())
    assert metadata['optimized'] and (tmp_path / 'optimized' / 'optimized.onnx').is_file()
    reloaded = LightweightOpenPoseLearner(device='cpu').load(tmp_path / 'optimized')
    assert reloaded.ort_session is not None


def test_onnx_runtime_finds_the_same_poses_as_torch(tmp_path, photos):
    """Needs weights that find people: the small model trained on real COCO images (test/models)."""
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=tmp_path).load(TEST_MODEL)
    torch_poses = [learner.infer(image, track=False, smooth=False) for image in photos]
    assert sum(len(poses) for poses in torch_poses) >= 2
    learner.optimize()
    for image, expected in zip(photos, torch_poses):
        got = learner.infer(image, track=False, smooth=False)
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert np.array_equal(a.found, b.found)
            assert np.abs(a.data - b.data).max() < 0.05 and abs(a.confidence - b.confidence) < 1e-3


# --- random weights --------------------------------------------------------------------------------------
@pytest.mark.usefixtures('one_torch_thread')
def test_infer_and_eval_refuse_weights_never_loaded_or_trained():
    image = cv2.imread(str(PHOTO))
    learner = LightweightOpenPoseLearner(device='cpu', backbone='mobilenetv2', mobilenetv2_width=0.25)
    with pytest.raises(NoWeightsError, match=r'Call load\(.*allow_random_weights'):
        learner.infer(image)
    with pytest.raises(NoWeightsError):
        learner.eval(None)
    assert isinstance(learner.allow_random_weights().infer(image), list)
    loaded = LightweightOpenPoseLearner(device='cpu').load(TEST_MODEL)
    assert isinstance(loaded.infer(image), list)


@pytest.mark.slow
@pytest.mark.usefixtures('one_torch_thread')
def test_optimize_and_save_of_random_weights_warn(tmp_path, caplog):
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=tmp_path / 'scratch', backbone='mobilenetv2',
                                         mobilenetv2_width=0.25, num_refinement_stages=0)
    with caplog.at_level(logging.WARNING, logger='openpose_ros'):
        learner.optimize()
        learner.save(tmp_path / 'model')
    assert [r.getMessage().split('(')[0] for r in caplog.records if 'random weights' in r.getMessage()] == [
        'optimize', 'save']
    with pytest.raises(NoWeightsError):
        learner.infer(cv2.imread(str(PHOTO)))  # its own export of random weights is no way around


@pytest.mark.slow
@pytest.mark.usefixtures('one_torch_thread')
def test_training_from_scratch_then_save_and_infer(tmp_path):
    from test_trainer import small_dataset, tiny_learner
    learner = tiny_learner(tmp_path, epochs=1)
    learner.fit(small_dataset(), silent=True)
    assert isinstance(learner.infer(cv2.imread(str(PHOTO)), track=False), list)
    learner.save(tmp_path / 'trained')
    assert isinstance(LightweightOpenPoseLearner(device='cpu').load(tmp_path / 'trained').infer(
        cv2.imread(str(PHOTO))), list)


# --- optimize() writes nothing into the working folder ---------------------------------------------------
@pytest.mark.usefixtures('one_torch_thread')
def test_optimize_writes_into_a_private_folder_removed_with_the_learner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'sentinel.txt').write_text('keep')
    learner = LightweightOpenPoseLearner(device='cpu').load(TEST_MODEL)
    path = Path(learner.optimize())
    assert path.is_file() and Path(tempfile.gettempdir()) in path.parents
    assert sorted(p.name for p in tmp_path.iterdir()) == ['sentinel.txt']
    del learner
    gc.collect()
    assert not path.parent.exists()
