"""The pose network's stages (openpose_ros.network.blocks)."""
import pytest
import torch

from openpose_ros.network import build_network


@pytest.mark.parametrize('stages', [0, 2])
def test_one_output_pair_per_stage(stages):
    network = build_network('mobilenet', num_refinement_stages=stages).eval()
    with torch.no_grad():
        outputs = network(torch.rand(2, 3, 64, 72))
    assert [tuple(o.shape) for o in outputs] == [(2, 19, 8, 9), (2, 38, 8, 9)] * (stages + 1)
