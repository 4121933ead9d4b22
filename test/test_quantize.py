"""int8 static quantisation: the model's form, calibration on real images, agreement with fp32, backend choice.

Without trained weights an untrained network's output hardly depends on its input (biases dominate), which
would make any agreement figure vacuous. The plumbing tests therefore use an *input-dependent* untrained network:
its batch-norm statistics are set from real images, so activations have realistic ranges and its maps change
with the image. Agreement on a trained model is measured on the project's test model when it is there.
"""
import json

import cv2
import numpy as np
import onnx
import pytest
import torch

from conftest import DATA, MMPOSE_IMAGES, PHOTO, TEST_MODEL
from openpose_ros import LightweightOpenPoseLearner
from openpose_ros.runtime.backends import OnnxBackend
from openpose_ros.runtime.export import export_onnx
from openpose_ros.evaluation.agreement import compare_backends
from openpose_ros.runtime.quantize import (Preprocessing, default_calibration_images, load_images, quantize_onnx,
                                           quantized_path)


pytestmark = pytest.mark.slow  # quantising and calibrating take seconds per test

CALIBRATION = 8
# Held out from calibration: real photos the quantiser has not seen.
HELD_OUT = sorted(MMPOSE_IMAGES.glob('*.jpg')) + [DATA / 'images' / 'messi5.jpg']


def input_dependent_learner(temp_path, **options):
    """Untrained weights (seed 0) with batch-norm statistics measured on real images (see the docstring)."""
    torch.manual_seed(0)
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=str(temp_path), **options).allow_random_weights()
    network = learner.model
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the images
    network.train()
    preprocessing = Preprocessing(learner.base_height, learner.stride)
    with torch.no_grad():
        for image in load_images(default_calibration_images(8)):
            network(torch.from_numpy(preprocessing.batch(image)))
    network.eval()
    return learner


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp('quantize')
    learner = input_dependent_learner(folder)
    fp32 = export_onnx(learner.model, folder / 'model.onnx', do_constant_folding=True)
    calibration = [p for p in default_calibration_images(2 * CALIBRATION) if p not in HELD_OUT][:CALIBRATION]
    int8 = quantize_onnx(fp32, calibration_images=calibration)
    return learner, fp32, int8


def initializers_of(model):
    return {i.name: i for i in model.graph.initializer}


def test_the_int8_model_is_static_qdq_per_channel_at_opset_13_or_later(models):
    _, fp32, int8 = models
    assert int8 == quantized_path(fp32) and int8.name == 'model.int8.onnx'
    model = onnx.load(str(int8))
    assert max(o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')) >= 13
    ops = [node.op_type for node in model.graph.node]
    assert ops.count('QuantizeLinear') > 20 and ops.count('DequantizeLinear') > 40
    assert 'DynamicQuantizeLinear' not in ops  # static: activation scales are constants from calibration
    initializers = {i.name: i for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    heads = [n for n in model.graph.node if n.op_type == 'Conv' and set(n.output) & outputs]
    assert len(heads) == 2  # the last 1x1 convolutions that write heatmaps and PAFs stay fp32 ...
    for head in heads:
        assert initializers_of(model)[head.input[1]].data_type == onnx.TensorProto.FLOAT
    convs = [n for n in model.graph.node if n.op_type == 'Conv' and n not in heads]
    assert len(convs) >= 40  # ... every other one is int8
    per_channel = 0
    for conv in convs:
        # every convolution's weight comes through a DequantizeLinear of an int8 constant
        producer = next(n for n in model.graph.node if conv.input[1] in n.output)
        assert producer.op_type == 'DequantizeLinear'
        weight = initializers[producer.input[0]]
        assert weight.data_type == onnx.TensorProto.INT8
        scale = onnx.numpy_helper.to_array(initializers[producer.input[1]])
        per_channel += scale.size == weight.dims[0] and scale.size > 1
        # and its input activation through a uint8 QuantizeLinear/DequantizeLinear pair
        source = next(n for n in model.graph.node if conv.input[0] in n.output)
        assert source.op_type == 'DequantizeLinear'
        zero_point = initializers[source.input[2]]
        assert zero_point.data_type == onnx.TensorProto.UINT8
    assert per_channel == len(convs)
    assert int8.stat().st_size < 0.4 * fp32.stat().st_size


def test_calibrating_on_real_images_beats_calibrating_on_blank_ones(models, tmp_path):
    """Ranges from real photos fit real photos: the held-out error is well below that of a blank calibration."""
    _, fp32, int8 = models
    blank = quantize_onnx(fp32, tmp_path / 'blank.onnx', [np.full((425, 640, 3), 128, np.uint8)] * 4)
    reference = OnnxBackend(fp32)
    real = compare_backends(reference, OnnxBackend(int8), HELD_OUT)
    flat = compare_backends(reference, OnnxBackend(blank), HELD_OUT)
    for maps in ('heatmaps', 'pafs'):
        assert real[f'{maps}_max_abs_error'] < 0.7 * flat[f'{maps}_max_abs_error'], (real, flat)
        assert real[f'{maps}_mean_abs_error'] < flat[f'{maps}_mean_abs_error'], (real, flat)


def test_calibration_progress_stays_off_stdout(models, tmp_path, capfd):
    """Tools print their results as JSON on stdout: the calibrators' progress must not land there."""
    _, fp32, _ = models
    quantize_onnx(fp32, tmp_path / 'q.onnx', default_calibration_images(2), method='percentile')
    captured = capfd.readouterr()
    assert captured.out == '' and 'histogram' in captured.err


def test_calibration_runs_the_deployed_preprocessing(models, tmp_path, monkeypatch):
    """Every calibration image reaches the network at the deployed base height, normalised and padded."""
    _, fp32, _ = models
    from openpose_ros.runtime import quantize
    seen = []
    real_batch = quantize.Preprocessing.batch

    def spy(self, image):
        batch = real_batch(self, image)
        seen.append((self.base_height, batch.shape, float(batch.min()), float(batch.max())))
        return batch

    monkeypatch.setattr(quantize.Preprocessing, 'batch', spy)
    images = default_calibration_images(3)
    quantize_onnx(fp32, tmp_path / 'q.onnx', images, Preprocessing(base_height=192))
    assert len(seen) == 3 and all(h == 192 and shape[2] == 192 for h, shape, _, _ in seen)
    assert all(-0.5 <= low and high < 0.5 for _, _, low, high in seen)


def test_optimize_quantize_runs_the_int8_model_in_onnx_runtime(tmp_path):
    learner = input_dependent_learner(tmp_path)
    image = cv2.imread(str(PHOTO))
    torch_maps = learner.estimator.maps(image)[0]
    learner.optimize()
    fp32_maps = learner.estimator.maps(image)[0]
    path = learner.optimize(quantize=True, calibration_images=default_calibration_images(CALIBRATION))
    assert path.name.endswith('.int8.onnx') and isinstance(learner.ort_session, OnnxBackend)
    assert 'QuantizeLinear' in {n.op_type for n in onnx.load(str(path)).graph.node}
    int8_maps = learner.estimator.maps(image)[0]
    assert np.abs(fp32_maps - torch_maps).max() < 1e-3  # fp32 ONNX is the torch model
    assert np.abs(int8_maps - fp32_maps).max() > 1e-3   # int8 really runs ...
    assert np.corrcoef(int8_maps.ravel(), fp32_maps.ravel())[0, 1] > 0.6  # ... and follows fp32
    assert learner.infer(image) is not None


def test_an_opset_without_per_channel_quantisation_is_refused(models, tmp_path):
    learner, _, _ = models
    old = export_onnx(learner.model, tmp_path / 'old.onnx', opset=11)
    with pytest.raises(ValueError, match='opset 11.*>= 13'):
        quantize_onnx(old, calibration_images=default_calibration_images(2))
    assert not quantized_path(old).exists()


def test_unreadable_calibration_images_are_named(models, tmp_path):
    _, fp32, _ = models
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'\xff\xd8 nothing')
    with pytest.raises(ValueError, match='broken.jpg'):
        quantize_onnx(fp32, tmp_path / 'x.onnx', [PHOTO, broken])
    assert not (tmp_path / 'x.onnx').exists()


def test_the_default_calibration_set_is_real_varied_and_bounded():
    paths = default_calibration_images(40)
    assert len(paths) == 40 and len(set(paths)) == 40
    folders = {p.parent.name for p in paths}
    assert {'val2017', 'train2017'} <= folders  # people and real negatives, two COCO splits
    assert all(p.is_file() and cv2.imread(str(p)) is not None for p in paths)


# The photos the test model was trained on (benchmarks/overfit.py): the ones where it finds people.
TEST_MODEL_PHOTOS = [DATA / 'coco' / 'coco-mini' / 'train2017' / f'{i:012d}.jpg'
                     for i in (30752, 37666, 183872, 234748, 442450)]


@pytest.mark.skipif(not TEST_MODEL.exists(), reason=f'the trained test model {TEST_MODEL} is not there')
def test_int8_agrees_with_fp32_on_the_trained_test_model(tmp_path):
    """On the photos the test model knows (its people) and the mmpose-tests photos: the int8 model finds the
    same people at the same places; calibrated on blank images instead, it loses them (the control)."""
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=str(tmp_path)).load(TEST_MODEL)
    preprocessing = Preprocessing(learner.base_height, learner.stride)
    fp32 = export_onnx(learner.model, tmp_path / 'trained.onnx')
    calibration = [p for p in default_calibration_images(40) if p not in TEST_MODEL_PHOTOS][:32]
    int8 = quantize_onnx(fp32, calibration_images=calibration, preprocessing=preprocessing)
    images = TEST_MODEL_PHOTOS + sorted(MMPOSE_IMAGES.glob('*.jpg'))
    reference = OnnxBackend(fp32)
    result = compare_backends(reference, OnnxBackend(int8), images, preprocessing)
    print(json.dumps(result, indent=1))
    assert result['substantial_poses_reference'] >= 6, 'the test model finds no one: agreement would be vacuous'
    assert result['heatmaps_mean_abs_error'] < 0.005 and result['pafs_mean_abs_error'] < 0.005
    assert result['substantial_pose_agreement'] >= 0.9
    assert result['substantial_keypoint_displacement_median_px'] <= 2.0
    assert result['substantial_keypoint_displacement_p95_px'] < 10.0
    blank = quantize_onnx(fp32, tmp_path / 'blank.onnx', [np.full((425, 640, 3), 128, np.uint8)] * 4, preprocessing)
    control = compare_backends(reference, OnnxBackend(blank), images, preprocessing)
    assert control['substantial_pose_agreement'] < 0.5
    assert control['heatmaps_mean_abs_error'] > 2 * result['heatmaps_mean_abs_error']


# --- the agreement measurement -------------------------------------------------------------------------------
def test_agreement_of_a_model_with_itself_is_perfect(models):
    _, fp32, _ = models
    result = compare_backends(OnnxBackend(fp32), OnnxBackend(fp32), HELD_OUT)
    assert result['heatmaps_max_abs_error'] == 0 and result['pafs_max_abs_error'] == 0
    if result['poses_reference']:
        assert result['pose_agreement'] == 1.0 and result['keypoint_displacement_max_px'] == 0
    else:
        assert result['pose_agreement'] is None  # never "agreement" out of no poses
