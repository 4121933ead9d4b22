"""The learner's save/load, ONNX path and downloads, on real images."""
import json
import subprocess

import cv2
import numpy as np
import pytest
import torch

from conftest import DATA, PHOTO, TEST_MODEL
from openpose_ros import LightweightOpenPoseLearner
from openpose_ros.runtime.checkpoints import WeightsMismatchError
from openpose_ros.runtime.download import DownloadError, download, git_blob_sha1

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


def test_download_offline_says_where_from_and_what_to_do(tmp_path):
    with pytest.raises(DownloadError) as error:
        download(tmp_path, 'pretrained', url='http://127.0.0.1:9/models')
    message = str(error.value)
    assert 'http://127.0.0.1:9/models/checkpoint_iter_370000.pth' in message
    assert 'OPENPOSE_ROS_MIRROR' in message and 'learner.load' in message
    assert not any(tmp_path.iterdir())


def test_download_from_a_mirror_verifies_the_published_hash(tmp_path):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    (mirror / 'checkpoint_iter_370000.pth').write_bytes(b'not the published model')
    with pytest.raises(DownloadError, match='did not verify'):
        download(tmp_path / 'models', 'pretrained', url=mirror.as_uri())
    assert not (tmp_path / 'models' / 'checkpoint_iter_370000.pth').exists()
    torch.save({'state_dict': {'weight': torch.ones(3)}}, mirror / 'mobilenet_sgd_68.848.pth.tar')
    fetched = download(tmp_path / 'models', 'weights', url=mirror.as_uri())  # no published hash: it must load
    assert fetched.read_bytes() == (mirror / 'mobilenet_sgd_68.848.pth.tar').read_bytes()


def test_git_blob_sha1_matches_git(tmp_path):
    sample = tmp_path / 'sample.bin'
    sample.write_bytes(bytes(range(256)) * 100)
    expected = subprocess.run(['git', 'hash-object', str(sample)], capture_output=True, text=True).stdout.strip()
    assert git_blob_sha1(sample) == expected
