"""A saved model's metadata and files are untrusted input: checked options, files inside the folder, checksums,
finite weights; and a learner without weights does not pretend to find people."""
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import PHOTO, ROOT, TEST_MODEL
from openpose_ros import LightweightOpenPoseLearner
from openpose_ros.files import file_sha256
from openpose_ros.runtime.loading import ModelError
from openpose_ros.runtime.saved_model import ModelFileError
from openpose_ros.runtime.selection import apply_backend, choose_backend

pytestmark = pytest.mark.usefixtures('one_torch_thread')
ENV = {**os.environ, 'OMP_NUM_THREADS': '1',
       'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])}
TEST_MODEL_NETWORK = dict(backbone='mobilenetv2', mobilenetv2_width=0.25, num_refinement_stages=0)
MAX_PARAMETER_BYTES = 100e6  # the largest network the bounds allow is about 50 MB


def copy_of_test_model(folder):
    """The test model under `folder`/tiny_coco (its weights linked, not copied); returns (folder, metadata)."""
    model = Path(folder) / 'tiny_coco'
    model.mkdir()
    os.symlink(TEST_MODEL / 'tiny_coco.pth', model / 'tiny_coco.pth')
    return model, json.loads((TEST_MODEL / 'tiny_coco.json').read_text())


def write_metadata(model, metadata):
    (model / f'{model.name}.json').write_text(json.dumps(metadata))


def flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# --- options out of range ------------------------------------------------------------------------------
@pytest.mark.parametrize('section, option, value', [
    ('network', 'num_refinement_stages', 6),  # oversized values: see the test under a memory cap below
    ('network', 'mobilenetv2_width', 2.5),
    ('network', 'backbone', 'resnet'),
    ('network', 'mobilenet_use_stride', 'yes'),
    ('preprocessing', 'base_height', 0),
    ('preprocessing', 'base_height', -256),
    ('preprocessing', 'base_height', '256'),
    ('preprocessing', 'img_mean', 'abc'),
    ('preprocessing', 'img_mean', [128, 128]),
    ('preprocessing', 'img_scale', math.nan),
    ('preprocessing', 'pad_value', [0, 0, math.inf]),
])
def test_metadata_out_of_range_is_refused_on_load_naming_the_option(tmp_path, section, option, value):
    model, metadata = copy_of_test_model(tmp_path)
    metadata[section][option] = value
    write_metadata(model, metadata)
    learner = LightweightOpenPoseLearner(device='cpu')
    with pytest.raises(ValueError, match=option):
        learner.load(model)
    assert learner.num_refinement_stages == 1 and learner.base_height == 256  # unchanged


@pytest.mark.parametrize('option, value', [('num_refinement_stages', 6), ('mobilenetv2_width', 2.5),
                                           ('base_height', 16), ('img_scale', 0), ('img_mean', (1, 2, 3, 4))])
def test_the_constructor_applies_the_same_rules(option, value):
    with pytest.raises(ValueError, match=option):
        LightweightOpenPoseLearner(device='cpu', backbone='mobilenetv2', **{option: value})


OVERSIZED_LOAD = '''
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # the old code asked for 7 GB and more
from openpose_ros import LightweightOpenPoseLearner
try:
    LightweightOpenPoseLearner(device='cpu').load(sys.argv[1])
except ValueError as error:
    print('refused:', error)
# VmHWM: this program's own peak (ru_maxrss keeps the forking parent's RSS across exec)
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
print('peak_bytes', int(status['VmHWM'].split()[0]) * 1024)
'''


@pytest.mark.slow
@pytest.mark.parametrize('option, value', [('num_refinement_stages', 100000), ('mobilenetv2_width', 1000)])
def test_oversized_networks_are_refused_before_anything_is_allocated(tmp_path, option, value):
    model, metadata = copy_of_test_model(tmp_path)
    metadata['network'][option] = value
    write_metadata(model, metadata)
    run = subprocess.run([sys.executable, '-c', OVERSIZED_LOAD, str(model)], env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0 and f'refused: {model}' in run.stdout and option in run.stdout, run.stderr[-2000:]
    used = int(run.stdout.split('peak_bytes')[-1])  # this process's own peak, not an earlier child's
    assert used < 1.5e9  # torch itself, not a network


@pytest.mark.parametrize('weights', ['../elsewhere.pth', 'ABSOLUTE', 'sub/tiny_coco.pth', '..', ''])
def test_files_named_outside_the_folder_are_refused(tmp_path, weights):
    model, metadata = copy_of_test_model(tmp_path)
    shutil.copyfile(TEST_MODEL / 'tiny_coco.pth', tmp_path / 'elsewhere.pth')
    (model / 'sub').mkdir()
    shutil.copyfile(TEST_MODEL / 'tiny_coco.pth', model / 'sub' / 'tiny_coco.pth')
    metadata['weights'] = str(tmp_path / 'elsewhere.pth') if weights == 'ABSOLUTE' else weights
    metadata['sha256'][Path(metadata['weights']).name] = file_sha256(tmp_path / 'elsewhere.pth')
    write_metadata(model, metadata)
    with pytest.raises(ValueError, match='must be the name of a file inside'):
        LightweightOpenPoseLearner(device='cpu').load(model)


# --- property: any JSON value in any field loads to a valid learner or is a clear error ----------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8)
# Values near the valid ones, so that the valid side is explored too.
near_valid = st.one_of(
    st.integers(-3, 8), st.floats(-1, 3), st.sampled_from(['mobilenet', 'mobilenetv2', 'shufflenet', 'tiny_coco.pth',
                                                           'tiny_coco.onnx', 'x.pth', '../tiny_coco.pth']),
    st.lists(st.integers(-300, 300), min_size=1, max_size=4), st.sampled_from([256, 32, 2048, 2049, 1e-9, 1 / 256]))
FIELDS = [('network', option) for option in ('backbone', 'num_refinement_stages', 'mobilenet_use_stride',
                                             'mobilenetv2_width', 'shufflenet_groups')] + \
         [('preprocessing', option) for option in ('base_height', 'img_mean', 'img_scale', 'pad_value')] + \
         [(None, field) for field in ('network', 'preprocessing', 'weights', 'onnx', 'int8', 'sha256',
                                      'format_version')]


def set_field(metadata, section, field, value):
    (metadata if section is None else metadata[section])[field] = value


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(FIELDS), json_values | near_valid), min_size=1, max_size=3))
def test_any_json_value_in_any_field_loads_validly_or_is_a_clear_error(changes):
    with tempfile.TemporaryDirectory() as folder:
        model, metadata = copy_of_test_model(folder)
        for (section, field), value in changes:
            if section is None or isinstance(metadata.get(section), dict):
                set_field(metadata, section, field, value)
        write_metadata(model, metadata)
        learner = LightweightOpenPoseLearner(device='cpu')
        try:
            learner.load(model)
        except (ValueError, ModelError) as error:
            assert str(error)
            return
        parameter_bytes = sum(p.numel() * p.element_size() for p in learner.model.parameters())
        assert parameter_bytes < MAX_PARAMETER_BYTES
        assert 32 <= learner.base_height <= 2048 and learner.img_scale > 0 and math.isfinite(learner.img_scale)
        for values in (learner.img_mean, learner.pad_value):
            assert np.isfinite(np.broadcast_to(np.asarray(values, np.float64), (3,))).all()


# --- checksums and finite weights ------------------------------------------------------------------------
def test_the_test_model_carries_the_checksum_of_its_weights():
    metadata = json.loads((TEST_MODEL / 'tiny_coco.json').read_text())
    assert metadata['sha256'] == {'tiny_coco.pth': file_sha256(TEST_MODEL / 'tiny_coco.pth')}
    LightweightOpenPoseLearner(device='cpu').load(TEST_MODEL)


@pytest.mark.slow
def test_a_one_byte_change_in_a_saved_weight_file_is_refused_naming_it(tmp_path):
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=tmp_path / 'scratch').load(TEST_MODEL)
    learner.optimize()
    folder = learner.save(tmp_path / 'model')
    metadata = json.loads((folder / 'model.json').read_text())
    assert set(metadata['sha256']) == {'model.pth', 'model.onnx'}
    for name in ('model.pth', 'model.onnx'):
        original = (folder / name).read_bytes()
        flip_one_byte(folder / name)
        with pytest.raises(ModelFileError, match=f'{name} does not match its checksum'):
            LightweightOpenPoseLearner(device='cpu').load(folder)
        (folder / name).write_bytes(original)
    LightweightOpenPoseLearner(device='cpu').load(folder)


@pytest.mark.slow
def test_a_changed_int8_model_is_refused_before_it_runs(tmp_path):
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=tmp_path / 'scratch').load(TEST_MODEL)
    learner.optimize(quantize=True, calibration_images=[PHOTO])
    folder = learner.save(tmp_path / 'model')
    assert json.loads((folder / 'model.json').read_text())['int8'] == 'model.int8.onnx'
    flip_one_byte(folder / 'model.int8.onnx')
    for prefer in ('int8', 'openvino'):  # ONNX Runtime's int8, and OpenVINO's (auto's choice where installed)
        choice = choose_backend(folder, prefer=prefer)
        assert choice.model == folder / 'model.int8.onnx'
        with pytest.raises(ModelFileError, match='model.int8.onnx does not match its checksum'):
            apply_backend(LightweightOpenPoseLearner(device='cpu').load(TEST_MODEL), choice)
    with pytest.raises(ModelFileError, match='model.int8.onnx does not match its checksum'):
        LightweightOpenPoseLearner(device='cpu').load(folder)


def test_a_folder_saved_before_checksums_still_loads_with_one_warning(tmp_path, caplog):
    model, metadata = copy_of_test_model(tmp_path)
    del metadata['sha256'], metadata['int8']
    metadata['format_version'] = 1
    write_metadata(model, metadata)
    with caplog.at_level(logging.WARNING, logger='openpose_ros'):
        for _ in range(2):
            LightweightOpenPoseLearner(device='cpu').load(model)
    assert [r.getMessage() for r in caplog.records if 'without checksums' in r.getMessage()] == [
        f'{model} was saved without checksums (format 1): its files are not verified; save it again to add them']


@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_non_finite_weights_are_refused_in_checkpoints_and_folders(tmp_path, bad):
    learner = LightweightOpenPoseLearner(device='cpu').load(TEST_MODEL)
    state = learner.model.state_dict()
    first = next(key for key, value in state.items() if value.is_floating_point())
    state[first] = torch.full_like(state[first], bad)
    torch.save({'state_dict': state}, tmp_path / 'diverged.pth')
    with pytest.raises(ValueError, match=f'NaN or infinite values.*{first}'):
        LightweightOpenPoseLearner(device='cpu', **TEST_MODEL_NETWORK).load(tmp_path / 'diverged.pth')
    learner.model.load_state_dict(state)
    learner.save(tmp_path / 'model')  # its checksum is right: the values themselves are refused
    with pytest.raises(ValueError, match='NaN or infinite values'):
        LightweightOpenPoseLearner(device='cpu').load(tmp_path / 'model')
