"""The OpenVINO backend: bf16 and fp32 against ONNX Runtime on real images, the choice of runtime and precision,
the saved model's runtime, the bounded compiled-model cache, the IR cache, and an OpenVINO-only process without
torch."""
import copy
import json
import logging
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import MINI_VAL_IMAGES, MMPOSE_IMAGES, PHOTO, ROOT, TEST_MODEL
from openpose_ros import LightweightOpenPoseLearner
from openpose_ros.evaluation.agreement import compare_backends
from openpose_ros.runtime.backends import OnnxBackend
from openpose_ros.runtime.export import export_onnx
from openpose_ros.runtime.openvino import (ModelCache, OpenVinoBackend, default_cache_dir, device_capabilities,
                                           resolve_precision, runtime_backend)
from openpose_ros.runtime.quantize import Preprocessing, load_images
from openpose_ros.runtime.selection import apply_backend, choose_backend

NO_BF16 = ('FP32', 'FP16', 'INT8', 'BIN', 'EXPORT_IMPORT')  # a CPU without native bf16 (e.g. AVX2 only)


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    """The user's cache folder of each test (and of the processes it starts) is its own."""
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg-cache'))
    return tmp_path / 'xdg-cache'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """The test model, its fp32 ONNX export and its pre-processing."""
    learner = LightweightOpenPoseLearner(device='cpu').load(TEST_MODEL)
    onnx = export_onnx(learner.model.eval(), tmp_path_factory.mktemp('openvino') / 'tiny_coco.onnx')
    preprocessing = Preprocessing(learner.base_height, learner.stride, tuple(learner.img_mean), learner.img_scale,
                                  tuple(learner.pad_value))
    return learner, onnx, preprocessing


@pytest.fixture(scope='module')
def images():
    """Real photos with people: the mmpose test photos and a few coco-mini val2017 ones."""
    paths = sorted(MMPOSE_IMAGES.glob('*.jpg')) + sorted(MINI_VAL_IMAGES.glob('*.jpg'))[:4]
    assert len(paths) >= 6
    return load_images(paths)


def test_bf16_maps_agree_with_fp32_on_real_images(trained, images):
    _, onnx, preprocessing = trained
    if 'BF16' not in device_capabilities():
        pytest.skip('this CPU has no native bf16')
    fp32, bf16 = OpenVinoBackend(onnx, 'fp32'), OpenVinoBackend(onnx, 'bf16')
    assert (fp32.name, bf16.name) == ('openvino-cpu-fp32', 'openvino-cpu-bf16')
    result = compare_backends(fp32, bf16, images, preprocessing)
    assert result['heatmaps_mean_abs_error'] <= 1e-3 and result['pafs_mean_abs_error'] <= 1e-3, result
    assert 0 < result['heatmaps_max_abs_error'] <= 0.15, result  # bf16 did run: the maps differ, a little
    assert result['substantial_poses_reference'] > 0 and result['substantial_pose_agreement'] >= 0.9, result
    assert result['substantial_keypoint_displacement_median_px'] <= 2.0, result


def test_openvino_fp32_equals_onnxruntime_fp32(trained, images):
    _, onnx, preprocessing = trained
    result = compare_backends(OnnxBackend(onnx), OpenVinoBackend(onnx, 'fp32'), images, preprocessing)
    assert result['heatmaps_max_abs_error'] <= 1e-4 and result['pafs_max_abs_error'] <= 1e-4, result
    assert result['poses_reference'] > 0 and result['pose_agreement'] == 1.0, result
    assert result['keypoints_found_by_one_only'] == 0 and result['keypoint_displacement_max_px'] <= 1e-3, result


def test_the_compiled_model_cache_is_bounded_and_keeps_the_recent_sizes(trained):
    _, onnx, _ = trained
    backend = OpenVinoBackend(onnx, 'fp32', compiled_sizes=2)
    rng = np.random.default_rng(0)
    sizes = [(256, 384), (256, 256), (256, 384), (128, 128)]
    for height, width in sizes:
        heatmaps, pafs = backend.run(rng.random((1, 3, height, width), dtype=np.float32))
        assert heatmaps.shape == (1, 19, height // 8, width // 8) and pafs.shape == (1, 38, height // 8, width // 8)
    # (256, 384) was used again after (256, 256): it stays, (256, 256) goes
    assert backend.compiled_shapes == [(1, 3, 256, 384), (1, 3, 128, 128)]
    with pytest.raises(ValueError, match='compiled_sizes'):
        OpenVinoBackend(onnx, compiled_sizes=0)


def test_bf16_without_native_support_runs_fp32_with_a_warning(trained, caplog):
    _, onnx, _ = trained
    with caplog.at_level(logging.WARNING, logger='openpose_ros.runtime.openvino'):
        backend = OpenVinoBackend(onnx, 'bf16', capabilities=NO_BF16)
    assert backend.precision == 'fp32' and backend.name == 'openvino-cpu-fp32'
    assert 'no native bf16' in caplog.text
    assert resolve_precision('auto', NO_BF16) == 'fp32' and resolve_precision('auto', ('FP32', 'BF16')) == 'bf16'
    assert resolve_precision('fp32', ('FP32', 'BF16')) == 'fp32'
    with pytest.raises(ValueError, match='precision must be one of'):
        resolve_precision('fp16', NO_BF16)


def test_auto_takes_bf16_where_native_else_fp32_and_int8_only_from_a_quantised_model(tmp_path, trained):
    _, onnx, _ = trained
    choice = choose_backend(onnx, capabilities=('FP32', 'BF16'))
    assert (choice.name, choice.model, choice.precision) == ('openvino', onnx, 'bf16')
    assert str(choice).startswith('openvino bf16 (') and 'native bf16' in str(choice)
    assert choose_backend(onnx, capabilities=NO_BF16).precision == 'fp32'
    assert choose_backend(onnx, precision='fp32', capabilities=('FP32', 'BF16')).precision == 'fp32'
    assert choose_backend(onnx, 'cuda').name != 'openvino'  # OpenVINO has no CUDA: ONNX Runtime or torch
    int8 = tmp_path / 'model.int8.onnx'
    int8.write_bytes(b'')  # the choice only looks for the file
    choice = choose_backend(int8)
    assert (choice.name, choice.model, choice.precision) == ('openvino', int8, 'int8')
    with pytest.raises(ValueError, match='precision bf16 is for backends openvino and auto'):
        choose_backend(onnx, prefer='onnx', precision='bf16')
    with pytest.raises(ValueError, match='precision must be one of'):
        choose_backend(onnx, precision='int4')


@pytest.mark.slow
def test_a_model_optimised_for_openvino_loads_on_openvino_again(tmp_path, trained):
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=tmp_path / 'temp').load(TEST_MODEL)
    image = cv2.imread(str(PHOTO))
    learner.optimize(backend='openvino', precision='fp32')
    assert learner.estimator.backend.name == 'openvino-cpu-fp32'
    poses = learner.infer(image, track=False, smooth=False)
    learner.save(tmp_path / 'model')
    metadata = json.loads((tmp_path / 'model' / 'model.json').read_text())
    assert metadata['runtime'] == {'backend': 'openvino', 'precision': 'fp32', 'device': 'CPU'}
    reloaded = LightweightOpenPoseLearner(device='cpu').load(tmp_path / 'model')
    assert reloaded.estimator.backend.name == 'openvino-cpu-fp32'
    again = reloaded.infer(image, track=False, smooth=False)
    assert len(again) == len(poses) > 0
    assert all(np.array_equal(a.data, b.data) for a, b in zip(poses, again))
    learner.optimize()  # OpenDR's call: ONNX Runtime, and no runtime recorded
    assert learner.estimator.backend.name == 'onnxruntime-cpu'
    learner.save(tmp_path / 'ort')
    assert json.loads((tmp_path / 'ort' / 'ort.json').read_text())['runtime'] is None
    with pytest.raises(ValueError, match='backend must be'):
        learner.optimize(backend='tensorrt')


def test_a_saved_runtime_picks_the_backend_and_a_missing_int8_twin_runs_fp32(trained, caplog):
    _, onnx, _ = trained
    assert runtime_backend(onnx, 'cpu', None).name == 'onnxruntime-cpu'  # a model saved before OpenVINO
    assert runtime_backend(onnx, 'cpu', {'backend': 'openvino', 'precision': 'fp32'}).name == 'openvino-cpu-fp32'
    with caplog.at_level(logging.WARNING, logger='openpose_ros.runtime.openvino'):
        backend = runtime_backend(onnx, 'cpu', {'backend': 'openvino', 'precision': 'int8', 'device': 'CPU'})
    assert backend.name == 'openvino-cpu-fp32' and 'tiny_coco.int8.onnx is missing' in caplog.text


def test_apply_backend_puts_the_learner_on_openvino(tmp_path, trained):
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=tmp_path).load(TEST_MODEL)
    assert apply_backend(learner, choose_backend(None, prefer='openvino', capabilities=NO_BF16)) == 'openvino-cpu-fp32'
    assert (tmp_path / 'onnx_model_temp.onnx').is_file()  # exported from the weights
    assert len(learner.infer(cv2.imread(str(PHOTO)))) > 0


OPENVINO_ONLY = '''
import sys
import cv2
from openpose_ros.inference.estimator import PoseEstimator
from openpose_ros.runtime.openvino import OpenVinoBackend
from openpose_ros.runtime.selection import choose_backend
choice = choose_backend(sys.argv[1])
assert choice.name == 'openvino', choice
estimator = PoseEstimator(OpenVinoBackend(choice.model, choice.precision), stride=8)
poses = estimator.detect(cv2.imread(sys.argv[2]))
print(len(poses), sorted(name for name in ('torch', 'onnxruntime', 'openvino.tools.ovc') if name in sys.modules))
from openvino.tools.ovc import convert_model  # still there for who asks for it
'''


def test_an_openvino_only_process_imports_neither_torch_nor_onnxruntime_nor_model_conversion(trained):
    _, onnx, _ = trained
    done = subprocess.run([sys.executable, '-c', OPENVINO_ONLY, str(onnx), str(PHOTO)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found, imported = done.stdout.split(' ', 1)
    assert int(found) > 0 and imported.strip() == '[]'


def test_the_node_runs_openvino_at_its_precision_parameter(tmp_path):
    from openpose_ros.runtime.configured_model import load_model
    from openpose_ros.parameters import PARAMS
    settings = {param.name: param.default for param in PARAMS}
    settings.update(weights=str(TEST_MODEL), device='cpu', backend='openvino', precision='fp32')
    model = load_model(settings, tmp_path)
    assert model.backend == 'openvino-cpu-fp32' and model.reason.startswith('asked for')
    assert len(model.learner.infer(cv2.imread(str(PHOTO)))) > 0


def _same_maps(first, second):
    return all(np.array_equal(a, b) for a, b in zip(first, second))


def test_the_ir_cache_gives_the_same_maps_and_is_reused(trained, user_cache):
    _, onnx, _ = trained
    batch = np.random.default_rng(1).random((1, 3, 256, 392), dtype=np.float32)
    reference = OpenVinoBackend(onnx, 'fp32', cache_dir=False)
    assert reference._mapped_weights is None
    made = OpenVinoBackend(onnx, 'fp32')
    assert default_cache_dir() == user_cache / 'openpose_ros' / 'openvino'
    entries = list(default_cache_dir().iterdir())
    assert len(entries) == 1 and sorted(path.name for path in entries[0].iterdir()) == [
        ModelCache.MANIFEST, ModelCache.BIN, ModelCache.XML]
    assert made._mapped_weights is not None and _same_maps(reference.run(batch), made.run(batch))
    stamp = (entries[0] / ModelCache.BIN).stat().st_mtime_ns
    reused = OpenVinoBackend(onnx, 'fp32')
    assert (entries[0] / ModelCache.BIN).stat().st_mtime_ns == stamp  # read, not written again
    assert _same_maps(reference.run(batch), reused.run(batch))


def test_a_damaged_cache_entry_is_never_used_and_is_made_again(trained, tmp_path, caplog):
    _, onnx, _ = trained
    batch = np.random.default_rng(2).random((1, 3, 256, 392), dtype=np.float32)
    reference = OpenVinoBackend(onnx, 'fp32', cache_dir=False).run(batch)
    OpenVinoBackend(onnx, 'fp32', cache_dir=tmp_path / 'cache')
    entry, = (tmp_path / 'cache').iterdir()
    weights = bytearray((entry / ModelCache.BIN).read_bytes())
    weights[len(weights) // 2] ^= 0xFF  # one weight damaged, the manifest unchanged
    (entry / ModelCache.BIN).write_bytes(weights)
    with caplog.at_level(logging.WARNING, logger='openpose_ros.runtime.openvino'):
        backend = OpenVinoBackend(onnx, 'fp32', cache_dir=tmp_path / 'cache')
    assert 'does not match its manifest; making it again' in caplog.text
    assert _same_maps(reference, backend.run(batch))
    assert (entry / ModelCache.BIN).read_bytes() != bytes(weights)  # written again, whole
    (entry / ModelCache.MANIFEST).write_text('{"key": "')
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='openpose_ros.runtime.openvino'):
        assert _same_maps(reference, OpenVinoBackend(onnx, 'fp32', cache_dir=tmp_path / 'cache').run(batch))
    assert 'incomplete or damaged' in caplog.text


def test_a_changed_model_never_reuses_the_entry_of_the_old_one(trained, tmp_path):
    learner, onnx, _ = trained
    batch = np.random.default_rng(3).random((1, 3, 256, 392), dtype=np.float32)
    path = tmp_path / 'model.onnx'
    path.write_bytes(onnx.read_bytes())
    before = OpenVinoBackend(path, 'fp32', cache_dir=tmp_path / 'cache').run(batch)
    changed = copy.deepcopy(learner.model).eval()
    next(changed.parameters()).data.mul_(1.5)
    export_onnx(changed, path)  # the same file, another model
    reference = OpenVinoBackend(path, 'fp32', cache_dir=False).run(batch)
    after = OpenVinoBackend(path, 'fp32', cache_dir=tmp_path / 'cache').run(batch)
    assert _same_maps(reference, after) and not _same_maps(before, after)
    assert len(list((tmp_path / 'cache').iterdir())) == 2


def test_a_cache_folder_that_cannot_be_written_is_passed_by_with_a_warning(trained, tmp_path, caplog):
    _, onnx, _ = trained
    blocker = tmp_path / 'a-file'
    blocker.write_text('not a folder')  # unwritable for every user, root included
    batch = np.random.default_rng(4).random((1, 3, 256, 392), dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger='openpose_ros.runtime.openvino'):
        backend = OpenVinoBackend(onnx, 'fp32', cache_dir=blocker / 'cache')
    assert 'cannot be used' in caplog.text and backend._mapped_weights is None
    assert _same_maps(OpenVinoBackend(onnx, 'fp32', cache_dir=False).run(batch), backend.run(batch))
    assert blocker.read_text() == 'not a folder'
