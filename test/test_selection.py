"""The choice of backend (openpose_ros.runtime.selection): the fastest available one, and what runs said by name."""
import cv2
import pytest

from conftest import PHOTO
from openpose_ros.runtime.backends import OnnxBackend
from openpose_ros.runtime.export import export_onnx
from openpose_ros.runtime.selection import apply_backend, choose_backend, saved_onnx_models
from test_quantize import models  # noqa: F401  (fixture: an input-dependent network, its ONNX export and int8 twin)


pytestmark = pytest.mark.slow  # quantising and calibrating take seconds per test


# --- backend choice -----------------------------------------------------------------------------------------
def test_the_fastest_available_backend_is_chosen(tmp_path, models):
    learner, fp32, int8 = models
    folder = tmp_path / 'model'
    learner.save(folder)
    assert saved_onnx_models(folder) == (None, None)
    choice = choose_backend(folder, prefer='onnx')
    assert (choice.name, choice.model) == ('onnx', None) and 'exported' in choice.reason
    assert (choose_backend(folder).name, choose_backend(folder).model) == ('openvino', None)
    export_onnx(learner.model, folder / 'model.onnx')
    assert saved_onnx_models(folder) == (None, None)  # not listed in the metadata, so not trusted
    learner.ort_session = OnnxBackend(fp32)
    learner.save(folder)
    choice = choose_backend(folder)
    assert (choice.name, choice.model) == ('openvino', folder / 'model.onnx')
    learner.ort_session = OnnxBackend(int8)  # save() keeps the int8 model it runs, beside the fp32 one
    learner.save(folder)
    learner.ort_session = None
    choice = choose_backend(folder)
    assert (choice.name, choice.model, choice.precision) == ('openvino', folder / 'model.int8.onnx', 'int8')
    assert 'quantised' in choice.reason and (folder / 'model.int8.onnx').read_bytes() == int8.read_bytes()
    assert choose_backend(folder, prefer='int8').model == folder / 'model.int8.onnx'
    assert choose_backend(folder, prefer='torch').name == 'torch'
    assert choose_backend(folder, prefer='onnx').model == folder / 'model.onnx'
    with pytest.raises(ValueError, match='backend must be one of'):
        choose_backend(folder, prefer='tensorrt')
    assert choose_backend(None).name == 'openvino'  # a model in memory: exported on demand
    assert choose_backend(tmp_path / 'checkpoint.pth').model is None  # a stale X.onnx beside it is not trusted


def test_apply_backend_names_what_runs(tmp_path, models, monkeypatch):
    learner, _, int8 = models
    image = cv2.imread(str(PHOTO))
    names = {}
    for choice in (choose_backend(None, prefer='torch'), choose_backend(int8, prefer='int8'),
                   choose_backend(None, prefer='onnx'), choose_backend(int8)):
        names[choice.name] = apply_backend(learner, choice)
        assert learner.infer(image) is not None
    assert names == {'torch': 'torch-cpu', 'int8': 'onnxruntime-cpu-int8', 'onnx': 'onnxruntime-cpu',
                     'openvino': 'openvino-cpu-int8'}
    from openpose_ros.runtime import selection as acceleration
    monkeypatch.setattr(acceleration, '_installed', lambda module: module == 'torch')  # neither ONNX runtime
    choice = choose_backend(None)
    assert choice.name == 'torch' and 'not installed' in choice.reason
    with pytest.raises(RuntimeError, match='onnxruntime'):
        choose_backend(None, prefer='int8')
