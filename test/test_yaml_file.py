"""YAML files (openpose_ros.formats.yaml_file): read as YAML 1.1, as ROS 2 reads parameter files."""
import pytest

from conftest import ROOT
from openpose_ros.formats.yaml_file import read_yaml


def test_the_shipped_parameter_file_and_yaml_1_1_booleans(tmp_path):
    assert '/**' in read_yaml(ROOT / 'config' / 'pose_estimation.yaml')
    path = tmp_path / 'params.yaml'
    path.write_text('a: on\nb: off\nc: yes\nd: 1.5\n')
    assert read_yaml(path) == {'a': True, 'b': False, 'c': True, 'd': 1.5}


def test_invalid_yaml_names_the_file_and_a_missing_file_is_an_os_error(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('a: [1, 2\n')
    with pytest.raises(ValueError, match=f'{path} is not valid YAML'):
        read_yaml(path)
    with pytest.raises(OSError):
        read_yaml(tmp_path / 'missing.yaml')
