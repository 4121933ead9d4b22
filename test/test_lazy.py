"""Attributes imported on first use (openpose_ros.lazy)."""
import pytest

import openpose_ros
from openpose_ros.lazy import lazy_attributes


def test_a_listed_name_is_the_attribute_of_its_module_and_others_are_attribute_errors():
    getattr_ = lazy_attributes('pkg', {'read_yaml': 'openpose_ros.formats.yaml_file'})
    from openpose_ros.formats.yaml_file import read_yaml
    assert getattr_('read_yaml') is read_yaml
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'missing'"):
        getattr_('missing')


def test_the_package_gives_the_learner_through_it():
    from openpose_ros.learner import LightweightOpenPoseLearner
    assert openpose_ros.LightweightOpenPoseLearner is LightweightOpenPoseLearner
