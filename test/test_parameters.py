"""The node's parameters (openpose_ros.parameters): the parameter file, the defaults shared with the library, the
checks of values and the README's table."""
import re
from pathlib import Path

import pytest
import yaml

from openpose_ros.parameters import BY_NAME, PARAMS, check


ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = ROOT / 'config' / 'pose_estimation.yaml'


def test_parameter_file_lists_every_parameter_with_its_default():
    document = yaml.safe_load(PARAMS_FILE.read_text())
    assert list(document) == ['/**'], 'one wildcard section applies whatever the node name and namespace'
    values = document['/**']['ros__parameters']
    assert list(values) == [param.name for param in PARAMS]
    for name, value in values.items():
        param = BY_NAME[name]
        assert check(name, value) is None, check(name, value)
        assert value == param.default and type(value) is type(param.default), name


def test_parameter_table_matches_the_pipeline_defaults():
    from openpose_ros.inference.decode import DecoderConfig
    from openpose_ros.network import BACKBONES
    import openpose_ros.parameters as params
    from openpose_ros.tracking.smoothing import OneEuroSettings
    from openpose_ros.tracking.tracker import PoseTracker

    assert params.BACKBONES == BACKBONES
    decoder, one_euro, tracker = DecoderConfig(), OneEuroSettings(), PoseTracker()
    assert set(params.DIFFERS_FROM_LIBRARY) == {'min_keypoints'}
    for name, field in params.DECODER_PARAMS.items():
        expected = params.DIFFERS_FROM_LIBRARY.get(name, getattr(decoder, field))
        assert BY_NAME[name].default == expected and BY_NAME[name].dynamic
    for name, field in params.SMOOTHING_PARAMS.items():
        assert BY_NAME[name].default == getattr(one_euro, field) and BY_NAME[name].dynamic
    for name, field in params.TRACKER_PARAMS.items():
        assert BY_NAME[name].default == getattr(tracker, field) and BY_NAME[name].dynamic
    # What the issue asks for is there, model settings read-only, thresholds and smoothing dynamic.
    for name in ('weights', 'device', 'backend', 'backbone', 'base_height', 'upsample_ratio', 'half_precision',
                 'input_type', 'qos_reliability', 'qos_depth', 'track', 'smooth', 'publish_annotated',
                 'annotated_max_rate', 'min_pose_score', 'tracker_max_missed'):
        assert name in BY_NAME
    for name in ('weights', 'device', 'backend', 'backbone', 'base_height', 'half_precision', 'input_type',
                 'qos_reliability', 'qos_depth'):
        assert not BY_NAME[name].dynamic, name
    assert BY_NAME['qos_reliability'].default == 'best_effort' and BY_NAME['qos_depth'].default == 1
    for param in PARAMS:
        assert param.description.strip() and re.match(r'^[a-z][a-z0-9_]*$', param.name)
        assert check(param.name, param.default) is None


@pytest.mark.parametrize('name, value, words', [
    ('peak_threshold', 1.5, 'in [0, 1]'),
    ('peak_threshold', float('nan'), 'a finite number'),
    ('smoothing_beta', float('inf'), 'a finite number'),
    ('smoothing_min_cutoff', 0.0, 'in (0, 1000]'),
    ('smoothing_beta', 101, 'in [0, 100]'),  # a whole number for a double: its range still holds
    ('smoothing_beta', 'fast', 'must be a double'),
    ('backend', 'tensorrt', 'one of auto, torch, onnx, int8, openvino'),
    ('precision', 'fp16', 'one of auto, fp32, bf16'),
    ('openvino_device', 'cpu', 'an OpenVINO device name'),
    ('device', 'gpu', 'auto, cpu, cuda or cuda:N'),
    ('qos_depth', 0, 'in [1, 100]'),
    ('track', 1, 'must be a bool'),
    ('min_keypoints', 19, 'in [1, 18]'),
])
def test_invalid_values_are_refused_with_a_reason(name, value, words):
    reason = check(name, value)
    assert reason and name in reason and words in reason, reason


def test_parameter_table_for_the_readme():
    from openpose_ros.parameters import markdown_table
    table = markdown_table()
    lines = table.splitlines()
    assert len(lines) == 2 + len(PARAMS)
    for param in PARAMS:
        assert f'| `{param.name}` |' in table


# --- parameter types ----------------------------------------------------------------------------------------
def test_a_double_parameter_takes_a_whole_number_as_a_float_but_not_a_bool():
    from openpose_ros.parameters import BY_NAME, check

    assert check('annotated_max_rate', 0) is None and check('min_pose_score', 1) is None
    converted = BY_NAME['annotated_max_rate'].convert(0)
    assert converted == 0.0 and type(converted) is float
    assert 'must be a double' in check('min_pose_score', True)
    assert 'in [0, 1], got 2' in check('min_pose_score', 2)
    assert 'must be a int' in check('upsample_ratio', 2.0)  # the other way round stays refused
