"""load_for_inference: the trained test model ready in one call, and a clear ModelError for weights that are not
there or cannot be used."""
import cv2
import pytest
import torch

from conftest import PHOTO, TEST_MODEL
from openpose_ros.network.build import build_network
from openpose_ros.runtime.loading import (
    DOWNLOAD, ModelError, default_download_dir, load_for_inference, refinement_stages_of, resolve_weights)

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_the_test_model_finds_the_people_of_a_real_photo():
    learner, _, name = load_for_inference(TEST_MODEL, 'cpu', 'torch')
    assert name.startswith('torch')
    poses = learner.infer(cv2.imread(str(PHOTO)), track=False, smooth=False)
    assert len(poses) >= 1 and max(pose.confidence for pose in poses) > 0


def test_a_checkpoint_file_brings_its_refinement_stages(tmp_path):
    weights = build_network('mobilenet', num_refinement_stages=2).state_dict()
    assert refinement_stages_of(weights) == 2
    checkpoint = tmp_path / 'two_stages.pth'
    torch.save({'state_dict': weights}, checkpoint)
    learner, _, _ = load_for_inference(checkpoint, 'cpu', 'torch')
    assert len(learner.model.refinement_stages) == 2
    loaded = learner.model.state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in weights.items())


def test_missing_or_no_weights_are_a_model_error_that_says_what_to_pass(tmp_path):
    with pytest.raises(ModelError, match=f'no weights at {tmp_path / "missing"}') as error:
        load_for_inference(tmp_path / 'missing', 'cpu', 'torch')
    assert DOWNLOAD in str(error.value)
    with pytest.raises(ModelError, match='no weights given'):
        resolve_weights('')


def test_weights_that_are_not_a_model_and_a_bad_base_height_are_model_errors(tmp_path):
    notes = tmp_path / 'notes.pth'
    notes.write_text('not a checkpoint')
    with pytest.raises(ModelError, match='cannot use the weights'):
        load_for_inference(notes, 'cpu', 'torch')
    with pytest.raises(ModelError, match='base_height'):
        load_for_inference(TEST_MODEL, 'cpu', 'torch', base_height=2.5)


def test_downloads_go_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert default_download_dir() == tmp_path / 'openpose_ros'
