"""Checkpoint files (openpose_ros.runtime.checkpoints): atomic saves, weights_only reads, the accepted forms of
weights and a strict load."""
import pytest
import torch

from openpose_ros.network import build_network
from openpose_ros.runtime.checkpoints import (WeightsMismatchError, extract_state_dict, load_state_strictly,
                                              read_checkpoint, save_checkpoint)

TINY = dict(backbone='mobilenetv2', mobilenetv2_width=0.25, num_refinement_stages=0)


def test_saved_weights_read_back_in_every_accepted_form_and_load_strictly(tmp_path):
    state = build_network(**TINY).state_dict()
    for form in ({'state_dict': state, 'iter': 3}, state, {f'module.{k}': v for k, v in state.items()}):
        save_checkpoint(form, tmp_path / 'weights.pth')
        loaded = extract_state_dict(read_checkpoint(tmp_path / 'weights.pth'))
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
        network = build_network(**TINY)
        load_state_strictly(network, loaded)
        assert all(torch.equal(network.state_dict()[k], state[k]) for k in state)
    assert [p.name for p in tmp_path.iterdir()] == ['weights.pth']  # no temporary left


def test_mismatched_non_finite_and_unreadable_weights_are_refused(tmp_path):
    network = build_network(**TINY)
    state = dict(network.state_dict())
    name = next(iter(state))
    with pytest.raises(WeightsMismatchError, match=f'missing \\(1\\): {name}'):
        load_state_strictly(network, {k: v for k, v in state.items() if k != name})
    with pytest.raises(ValueError, match='NaN or infinite'):
        load_state_strictly(network, dict(state, **{name: torch.full_like(state[name], float('nan'))}))
    with pytest.raises(ValueError, match='no state_dict of tensors'):
        extract_state_dict({'state_dict': {'a': 1}})
    (tmp_path / 'bad.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='not a readable PyTorch checkpoint'):
        read_checkpoint(tmp_path / 'bad.pth')
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / 'none.pth')
