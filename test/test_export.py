"""ONNX export: the exported model gives the torch network's last-stage maps, at other sizes than the example's."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from openpose_ros.network.build import build_network
from openpose_ros.runtime.backends import INPUT_NAME, OUTPUT_NAMES
from openpose_ros.runtime.export import export_onnx

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    torch.manual_seed(0)
    network = build_network('mobilenet', num_refinement_stages=1).eval()
    path = tmp_path_factory.mktemp('export') / 'model.onnx'
    assert export_onnx(network, path, example_size=(128, 160)) == path
    return network, path


@pytest.mark.parametrize('height, width', [(128, 160), (256, 344), (200, 120)])
def test_the_onnx_model_gives_the_torch_maps_of_the_last_stage_at_any_size(exported, height, width):
    network, path = exported
    batch = np.random.default_rng(height).uniform(-0.5, 0.5, (1, 3, height, width)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert [node.name for node in session.get_inputs()] == [INPUT_NAME]
    assert tuple(node.name for node in session.get_outputs()) == OUTPUT_NAMES
    got = session.run(OUTPUT_NAMES, {INPUT_NAME: batch})
    with torch.inference_mode():
        want = [maps.numpy() for maps in network(torch.from_numpy(batch))[-2:]]
    assert got[0].shape == (1, 19, height // 8, width // 8) and got[1].shape == (1, 38, height // 8, width // 8)
    for onnx_maps, torch_maps in zip(got, want):
        assert np.abs(onnx_maps - torch_maps).max() < 1e-4


def test_the_export_leaves_no_temporary_and_the_network_unchanged(exported, tmp_path):
    network, _ = exported
    before = {name: value.clone() for name, value in network.state_dict().items()}
    export_onnx(network, tmp_path / 'again.onnx', example_size=(64, 64))
    assert [p.name for p in tmp_path.iterdir()] == ['again.onnx']
    assert all(torch.equal(before[name], value) for name, value in network.state_dict().items())
    assert next(network.parameters()).dtype == torch.float32
