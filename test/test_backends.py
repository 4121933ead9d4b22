"""The network backends: torch and ONNX Runtime give the same maps of a real photo through one interface."""
import inspect
import os
import typing

import cv2
import numpy as np
import pytest

from conftest import PHOTO, TEST_MODEL
from openpose_ros import LightweightOpenPoseLearner
from openpose_ros.inference.preprocess import prepare
from openpose_ros.runtime.backends import Backend, OnnxBackend, TorchBackend, cpu_threads
from openpose_ros.runtime.export import export_onnx

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def backends(tmp_path_factory):
    learner = LightweightOpenPoseLearner(device='cpu').load(TEST_MODEL)
    onnx = export_onnx(learner.model, tmp_path_factory.mktemp('backends') / 'tiny_coco.onnx')
    return TorchBackend(learner.model), OnnxBackend(onnx, threads=1)


@pytest.fixture(scope='module')
def batch():
    tensor, _ = prepare(cv2.imread(str(PHOTO)), base_height=256, stride=8)
    return tensor


def test_torch_and_onnx_runtime_give_the_same_maps_of_a_real_photo(backends, batch):
    torch_maps, onnx_maps = (backend.run(batch) for backend in backends)
    height, width = batch.shape[2] // 8, batch.shape[3] // 8
    for got, want, channels in zip(onnx_maps, torch_maps, (19, 38)):
        assert got.dtype == want.dtype == np.float32
        assert got.shape == want.shape == (1, channels, height, width)
        assert np.abs(got - want).max() < 1e-4
    assert torch_maps[0][0, :18].max() > 0.3, 'the trained model sees keypoints in the photo'


def test_both_backends_hold_the_backend_protocol(backends):
    protocol_run = inspect.signature(Backend.run)
    assert typing.get_type_hints(Backend)['name'] is str
    for backend in backends:
        assert isinstance(backend.name, str)
        assert inspect.signature(type(backend).run) == protocol_run
    assert [backend.name for backend in backends] == ['torch-cpu', 'onnxruntime-cpu']


def test_half_precision_needs_cuda(backends):
    with pytest.raises(ValueError, match='CUDA'):
        TorchBackend(backends[0].network, 'cpu', half=True)


def test_cpu_threads_are_the_cores_this_process_may_use():
    assert cpu_threads() == len(os.sched_getaffinity(0)) >= 1
