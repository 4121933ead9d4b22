"""The CUDA paths: inference in fp32 and fp16 against the CPU, device='auto', save()/load() between CPU and CUDA,
training and exact resumption, and the ONNX export of a CUDA model.

They run wherever torch sees a CUDA device and skip elsewhere; `benchmarks/gpu_check.py` runs them on a GPU
machine together with its speed figures. fp16 export runs everywhere.
"""
import json
import os

import cv2
import onnx
import onnxruntime
import pytest
import torch

from conftest import MMPOSE_IMAGES, PHOTO, TEST_MODEL
from openpose_ros import LightweightOpenPoseLearner
from openpose_ros.evaluation.agreement import compare_backends
from openpose_ros.runtime.backends import OnnxBackend
from openpose_ros.runtime.checkpoints import read_checkpoint
from openpose_ros.runtime.export import export_onnx
from openpose_ros.runtime.quantize import Preprocessing
from openpose_ros.training.trainer import fit
from test_quantize import TEST_MODEL_PHOTOS
from test_trainer import TINY, assert_resumes_exactly, assert_short_fit_lowers_the_loss, small_dataset

# Deterministic cuBLAS (exact resumption) needs this before its first use in the process.
os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')

CUDA = torch.cuda.is_available()
ORT_CUDA = 'CUDAExecutionProvider' in onnxruntime.get_available_providers()
needs_cuda = pytest.mark.skipif(not CUDA, reason='no CUDA device: torch.cuda.is_available() is False')

# The photos the test model finds people in (its training photos) and other real photos: agreement there is
# not vacuous.
AGREEMENT_IMAGES = TEST_MODEL_PHOTOS + sorted(MMPOSE_IMAGES.glob('*.jpg'))
# Tolerances of CUDA against the CPU on the test model over AGREEMENT_IMAGES. cuDNN's fp32 convolutions use
# TF32 (10-bit mantissa) by default on Ampere and later, fp16 stores every activation in 10 bits: both round
# like fp16. Emulated on the CPU (weights and conv inputs rounded to TF32, or the network in fp16) they give a
# mean map error of 2-4e-5, a maximum under 0.006 and identical poses (every pose matched, 95% of the keypoints
# unmoved). The bounds leave 25x on the mean (int8 is at 0.003), and allow a pose near the decoder's thresholds
# to come or go and a keypoint to move by one step of the 4x upsampled map (2 network-input pixels: 2.6-3.4 image
# pixels at these photos' heights of 333-429).
MAP_MEAN_ERROR_MAX = 1e-3
MAP_MAX_ERROR_MAX = 0.05
SUBSTANTIAL_POSE_AGREEMENT_MIN = 0.9   # poses of >= 5 keypoints matched one-to-one (OKS >= 0.5)
KEYPOINT_DISPLACEMENT_MEDIAN_MAX_PX = 0.5
KEYPOINT_DISPLACEMENT_P95_MAX_PX = 3.5

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def load_test_model(device, **options):
    return LightweightOpenPoseLearner(device=device, **options).load(TEST_MODEL)


def same_weights(network, other):
    mine, theirs = network.state_dict(), other.state_dict()
    return mine.keys() == theirs.keys() and all(torch.equal(mine[k].cpu(), theirs[k].cpu()) for k in mine)


def maps(learner, image):
    return learner.estimator.maps(image)[:2]


def assert_agrees_with_the_cpu(result):
    print(json.dumps(result, indent=1))
    assert result['substantial_poses_reference'] >= 6, 'the test model finds no one: agreement would be vacuous'
    assert result['heatmaps_mean_abs_error'] < MAP_MEAN_ERROR_MAX and result['pafs_mean_abs_error'] < MAP_MEAN_ERROR_MAX
    assert result['heatmaps_max_abs_error'] < MAP_MAX_ERROR_MAX and result['pafs_max_abs_error'] < MAP_MAX_ERROR_MAX
    assert result['substantial_pose_agreement'] >= SUBSTANTIAL_POSE_AGREEMENT_MIN
    assert result['substantial_keypoint_displacement_median_px'] <= KEYPOINT_DISPLACEMENT_MEDIAN_MAX_PX
    assert result['substantial_keypoint_displacement_p95_px'] <= KEYPOINT_DISPLACEMENT_P95_MAX_PX


@pytest.fixture(scope='module')
def photo():
    return cv2.imread(str(PHOTO))


@pytest.fixture
def deterministic_cuda():
    """Exact resumption compares weights bit for bit: cuDNN's fastest backward convolutions add in a varying
    order, so this asks for deterministic algorithms (an operation without one raises and names itself)."""
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled())
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True)
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
    torch.use_deterministic_algorithms(saved[2])


# --- inference ------------------------------------------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize('half', [False, True], ids=['fp32', 'fp16'])
def test_inference_on_cuda_finds_the_cpus_poses(half):
    cpu, gpu = load_test_model('cpu'), load_test_model('cuda', half_precision=half)
    assert gpu.estimator.backend.name == ('torch-cuda-fp16' if half else 'torch-cuda')
    preprocessing = Preprocessing(cpu.base_height, cpu.stride)
    assert_agrees_with_the_cpu(compare_backends(cpu.estimator.backend, gpu.estimator.backend, AGREEMENT_IMAGES,
                                                preprocessing))
    poses = gpu.infer(cv2.imread(str(TEST_MODEL_PHOTOS[0])), track=False)
    assert sum(pose.found.sum() >= 5 for pose in poses) >= 1


@needs_cuda
def test_auto_device_picks_cuda(photo):
    learner = LightweightOpenPoseLearner(device='auto', half_precision=True).load(TEST_MODEL)
    assert learner.device == 'cuda' and learner.half_precision
    learner.infer(photo)
    assert learner.estimator.backend.name == 'torch-cuda-fp16'
    assert next(learner.model.parameters()).is_cuda
    last = f'cuda:{torch.cuda.device_count() - 1}'
    assert LightweightOpenPoseLearner(device=last).device == last


@needs_cuda
def test_half_precision_keeps_the_learners_weights_in_fp32(tmp_path, photo):
    """fp16 inference and export run on a copy: the learner's weights stay fp32, to save, train and export."""
    learner = load_test_model('cuda', half_precision=True, temp_path=tmp_path, batch_size=2, num_workers=0,
                              log_after=1)
    learner.infer(photo)
    export_onnx(learner.model, tmp_path / 'half.onnx', half=True)
    assert {p.dtype for p in learner.model.parameters()} == {torch.float32}
    assert same_weights(learner.model, load_test_model('cpu').model)
    saved = read_checkpoint(learner.save(tmp_path / 'saved') / 'saved.pth')['state_dict']
    assert {v.dtype for v in saved.values() if v.is_floating_point()} == {torch.float32}
    result = fit(learner, small_dataset(), silent=True, max_iterations=1, init_weights='current')
    assert result.iteration == 1 and torch.isfinite(torch.tensor(result.losses[0]['loss']))


def test_fp16_export_leaves_the_network_in_fp32(tmp_path):
    learner = load_test_model('cpu')
    exported = export_onnx(learner.model, tmp_path / 'half.onnx', half=True)
    assert {p.dtype for p in learner.model.parameters()} == {torch.float32}
    assert same_weights(learner.model, load_test_model('cpu').model)
    image_type = onnx.load(exported).graph.input[0].type.tensor_type.elem_type
    assert image_type == onnx.TensorProto.FLOAT16


# --- save and load --------------------------------------------------------------------------------------------
@needs_cuda
def test_models_move_between_cpu_and_cuda(tmp_path, photo):
    on_cuda = load_test_model('cuda')
    cuda_maps = maps(on_cuda, photo)
    assert next(on_cuda.model.parameters()).is_cuda
    reference = load_test_model('cpu')
    # a folder saved from CUDA, and a checkpoint of CUDA tensors (as training writes), load on the CPU
    on_cuda.save(tmp_path / 'from_cuda')
    torch.save({'state_dict': on_cuda.model.state_dict()}, tmp_path / 'cuda_tensors.pth')
    for saved in (tmp_path / 'from_cuda', tmp_path / 'cuda_tensors.pth'):
        on_cpu = LightweightOpenPoseLearner(device='cpu', **TINY).load(saved)  # the test model's network
        assert same_weights(on_cpu.model, reference.model)
        for mine, theirs in zip(maps(on_cpu, photo), maps(reference, photo)):
            assert (mine == theirs).all()
    # and back: saved on the CPU, loaded on CUDA (equal maps up to cuDNN's choice of algorithm)
    reference.save(tmp_path / 'from_cpu')
    back = LightweightOpenPoseLearner(device='cuda').load(tmp_path / 'from_cpu')
    back_maps = maps(back, photo)
    assert next(back.model.parameters()).is_cuda and same_weights(back.model, reference.model)
    for mine, theirs in zip(back_maps, cuda_maps):
        assert abs(mine - theirs).max() < 1e-5


# --- training -------------------------------------------------------------------------------------------------
@needs_cuda
@pytest.mark.slow
def test_short_fit_on_cuda_lowers_the_loss(tmp_path):
    learner = assert_short_fit_lowers_the_loss(tmp_path, device='cuda')
    assert next(learner.model.parameters()).is_cuda


@needs_cuda
@pytest.mark.slow
def test_resume_on_cuda_is_exact(tmp_path, deterministic_cuda):
    assert_resumes_exactly(tmp_path, device='cuda')


# --- ONNX -----------------------------------------------------------------------------------------------------
@needs_cuda
def test_the_onnx_export_of_a_cuda_model_gives_its_maps(tmp_path, photo):
    """Exported while on the GPU (traced there), the model runs anywhere: on ONNX Runtime's CPU provider it
    finds the CPU's poses."""
    learner = load_test_model('cuda', temp_path=tmp_path)
    learner.infer(photo)  # the network now lives on the GPU
    exported = export_onnx(learner.model, tmp_path / 'model.onnx')
    reference = load_test_model('cpu')
    preprocessing = Preprocessing(reference.base_height, reference.stride)
    assert_agrees_with_the_cpu(compare_backends(reference.estimator.backend, OnnxBackend(exported), AGREEMENT_IMAGES,
                                                preprocessing))


@needs_cuda
@pytest.mark.skipif(not ORT_CUDA, reason='onnxruntime has no CUDA provider (install onnxruntime-gpu)')
@pytest.mark.parametrize('half', [False, True], ids=['fp32', 'fp16'])
def test_optimize_runs_a_cuda_learner_on_onnxruntime_cuda(tmp_path, half):
    learner = load_test_model('cuda', half_precision=half, temp_path=tmp_path)
    learner.optimize()
    assert learner.estimator.backend.name == 'onnxruntime-cuda'
    reference = load_test_model('cpu')
    preprocessing = Preprocessing(reference.base_height, reference.stride)
    assert_agrees_with_the_cpu(compare_backends(reference.estimator.backend, learner.estimator.backend,
                                                AGREEMENT_IMAGES, preprocessing))
    saved = learner.save(tmp_path / 'optimized')
    loaded = LightweightOpenPoseLearner(device='cuda').load(saved)
    assert loaded.estimator.backend.name == 'onnxruntime-cuda'


@needs_cuda
@pytest.mark.skipif(ORT_CUDA, reason='onnxruntime has a CUDA provider')
def test_optimize_on_cuda_without_onnxruntime_gpu_says_what_to_install(tmp_path):
    learner = load_test_model('cuda', temp_path=tmp_path)
    with pytest.raises(RuntimeError, match='install onnxruntime-gpu'):
        learner.optimize()
    assert learner.estimator.backend.name == 'torch-cuda'  # still usable as it was
