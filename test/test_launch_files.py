"""The launch files, the parameter file and the rviz configuration, tested without launch, launch_ros or rviz.

launch and launch_ros cannot be installed here, so the launch files run against small stand-ins of the classes
they use, which record their arguments: what the files would hand to launch is checked against what exists
(the executable, the parameter file, the rviz configuration) and against the node's parameter table.
"""
import ast
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

from openpose_ros.ros.params import BY_NAME, PARAMS, check

ROOT = Path(__file__).resolve().parents[1]
NODE_LAUNCH = ROOT / 'launch' / 'pose_estimation.launch.py'
RVIZ_LAUNCH = ROOT / 'launch' / 'pose_estimation_rviz.launch.py'
PARAMS_FILE = ROOT / 'config' / 'pose_estimation.yaml'
RVIZ_CONFIG = ROOT / 'config' / 'openpose.rviz'
ROS_OWN_PARAMETERS = {'use_sim_time'}


# --- stand-ins for launch and launch_ros -------------------------------------------------------------------
class Recorded:
    """Keeps the arguments it was made with."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchDescription(Recorded):
    @property
    def entities(self):
        return self.args[0]


class DeclareLaunchArgument(Recorded):
    @property
    def name(self):
        return self.args[0]


class LaunchConfiguration(Recorded):
    def perform(self, context):
        return context.launch_configurations[self.args[0]]


class ParameterValue(Recorded):
    pass


class Context:
    def __init__(self, configurations):
        self.launch_configurations = configurations


def stand_in_modules(share):
    classes = {
        'launch': {'LaunchDescription': LaunchDescription},
        'launch.actions': {'DeclareLaunchArgument': DeclareLaunchArgument, 'OpaqueFunction': type(
            'OpaqueFunction', (Recorded,), {}), 'IncludeLaunchDescription': type('IncludeLaunchDescription',
                                                                                   (Recorded,), {})},
        'launch.launch_description_sources': {'PythonLaunchDescriptionSource': type(
            'PythonLaunchDescriptionSource', (Recorded,), {})},
        'launch.substitutions': {'LaunchConfiguration': LaunchConfiguration},
        'launch_ros': {},
        'launch_ros.actions': {'Node': type('Node', (Recorded,), {}),
                               'LifecycleNode': type('LifecycleNode', (Recorded,), {})},
        'launch_ros.parameter_descriptions': {'ParameterValue': ParameterValue},
        'ament_index_python': {},
        'ament_index_python.packages': {'get_package_share_directory': lambda package: str(share[package])},
    }
    modules = {}
    for name, members in classes.items():
        module = types.ModuleType(name)
        module.__dict__.update(members)
        modules[name] = module
    return modules


@pytest.fixture
def load_launch_file(monkeypatch):
    """Imports a launch file against the stand-ins; the package's share folder is the source tree, whose
    launch/ and config/ CMakeLists.txt installs there unchanged."""
    for name, module in stand_in_modules({'openpose_ros': ROOT}).items():
        monkeypatch.setitem(sys.modules, name, module)

    def load(path):
        namespace = {'__file__': str(path), '__name__': path.stem.replace('.', '_')}
        exec(compile(path.read_text(), str(path), 'exec'), namespace)
        return namespace
    return load


def declared(description):
    return {entity.name: entity.kwargs for entity in description.entities
            if isinstance(entity, DeclareLaunchArgument)}


def of_type(description, name):
    return [entity for entity in description.entities if type(entity).__name__ == name]


def defaults_of(arguments, **given):
    values = {name: kwargs['default_value'] for name, kwargs in arguments.items()}
    values.update(given)
    return values


# --- tests ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('path', [NODE_LAUNCH, RVIZ_LAUNCH])
def test_launch_files_parse_and_define_generate_launch_description(path):
    tree = ast.parse(path.read_text(), str(path))
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    imported = {alias.name.split('.')[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or '')])}
    assert imported <= {'os', 'launch', 'launch_ros', 'ament_index_python'}, 'a launch file imports only launch'


def test_node_launch_file_starts_the_node_with_the_parameter_file(load_launch_file):
    module = load_launch_file(NODE_LAUNCH)
    description = module['generate_launch_description']()
    arguments = declared(description)
    assert {'camera_topic', 'namespace', 'weights', 'device', 'use_sim_time', 'params_file'} <= set(arguments)
    for name, kwargs in arguments.items():
        assert kwargs.get('description'), f'launch argument {name} has no description'
    assert Path(arguments['params_file']['default_value']) == PARAMS_FILE

    # Defaults: the parameter file decides the model settings; use_sim_time is always passed.
    (opaque,) = of_type(description, 'OpaqueFunction')
    (node,) = opaque.kwargs['function'](Context(defaults_of(arguments)))
    assert type(node).__name__ == 'LifecycleNode'
    assert node.kwargs['package'] == 'openpose_ros'
    assert node.kwargs['executable'] == 'pose_estimation_node'
    assert node.kwargs['name'] == 'pose_estimation'
    params_file, overrides = node.kwargs['parameters']
    assert Path(params_file) == PARAMS_FILE
    assert overrides == {'use_sim_time': False}
    assert node.kwargs['remappings'] == [('image', '/camera/image_raw')]
    assert node.kwargs['namespace'] == ''

    # Given arguments override parameters that the node declares, with string values kept strings.
    given = dict(camera_topic='/robot/camera/color/image_raw', namespace='robot', weights='/models/lwop',
                 device='cpu', backend='onnx', input_type='compressed', use_sim_time='true')
    (node,) = opaque.kwargs['function'](Context(defaults_of(arguments, **given)))
    _, overrides = node.kwargs['parameters']
    assert overrides.pop('use_sim_time') is True
    for parameter, value in overrides.items():
        assert parameter in BY_NAME, f'the launch file sets {parameter}, which the node does not declare'
        assert isinstance(value, ParameterValue) and value.kwargs['value_type'] is str
        assert check(parameter, value.args[0]) is None
        assert value.args[0] == given[parameter]
    assert set(overrides) == set(module['PARAMETER_ARGUMENTS'])
    assert node.kwargs['remappings'] == [('image', '/robot/camera/color/image_raw')]
    assert node.kwargs['namespace'] == 'robot'


@pytest.mark.ros
def test_the_node_executable_exists_where_ros2_run_and_launch_look():
    tree = ast.parse((ROOT / 'setup.py').read_text())
    (entry_points,) = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                       and any(getattr(target, 'id', '') == 'ENTRY_POINTS' for target in node.targets)]
    assert entry_points['pose_estimation_node'] == 'openpose_ros.ros.node:main'
    assert 'pose_estimation_node=openpose_ros.ros.node:main' in (ROOT / 'CMakeLists.txt').read_text()
    from openpose_ros.ros import node  # noqa: F401  (the entry point's module imports)
    assert callable(node.main)


def test_rviz_launch_file_includes_the_node_launch_and_starts_rviz_with_the_config(load_launch_file):
    module = load_launch_file(RVIZ_LAUNCH)
    description = module['generate_launch_description']()
    arguments = declared(description)
    assert Path(arguments['rviz_config']['default_value']) == RVIZ_CONFIG
    (include,) = of_type(description, 'IncludeLaunchDescription')
    (source,) = include.args
    assert Path(source.args[0]) == NODE_LAUNCH
    node_arguments = declared(load_launch_file(NODE_LAUNCH)['generate_launch_description']())
    (opaque,) = of_type(description, 'OpaqueFunction')
    for namespace, expected in (('', []), ('robot', [('/image_annotated', '/robot/image_annotated')]),
                                ('/a/b/', [('/image_annotated', '/a/b/image_annotated')])):
        context = Context(defaults_of({**node_arguments, **arguments}, namespace=namespace))
        (rviz,) = opaque.kwargs['function'](context)
        assert (rviz.kwargs['package'], rviz.kwargs['executable']) == ('rviz2', 'rviz2')
        assert rviz.kwargs['arguments'][0] == '-d' and Path(rviz.kwargs['arguments'][1]) == RVIZ_CONFIG
        assert rviz.kwargs['remappings'] == expected
        assert rviz.kwargs['parameters'] == [{'use_sim_time': False}]


def test_rviz_config_shows_the_annotated_image():
    config = yaml.safe_load(RVIZ_CONFIG.read_text())
    displays = config['Visualization Manager']['Displays']
    images = [d for d in displays if d['Class'] == 'rviz_default_plugins/Image']
    assert len(images) == 1 and images[0]['Enabled']
    topic = images[0]['Topic']
    assert topic['Value'] == '/image_annotated'
    # Best effort connects to the node's reliable publisher and never holds it back.
    assert topic['Reliability Policy'] == 'Best Effort' and topic['Depth'] >= 1
    assert config['Panels'][0]['Class'] == 'rviz_common/Displays'
    from openpose_ros.ros import pose_estimation  # the node's class, which creates the publisher
    assert "'image_annotated'" in Path(pose_estimation.__file__).read_text()


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
    from openpose_ros.decode import DecoderConfig
    from openpose_ros.network import BACKBONES
    from openpose_ros.ros import params
    from openpose_ros.smoothing import OneEuroSettings
    from openpose_ros.tracking import PoseTracker

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
    from openpose_ros.ros.params import markdown_table
    table = markdown_table()
    lines = table.splitlines()
    assert len(lines) == 2 + len(PARAMS)
    for param in PARAMS:
        assert f'| `{param.name}` |' in table


def test_package_xml_names_the_launch_and_rviz_dependencies():
    text = (ROOT / 'package.xml').read_text()
    for dependency in ('launch_ros', 'rviz2', 'rclpy', 'sensor_msgs', 'diagnostic_msgs'):
        assert f'<exec_depend>{dependency}</exec_depend>' in text
    cmake = (ROOT / 'CMakeLists.txt').read_text()
    assert 'foreach(_dir launch config)' in cmake
