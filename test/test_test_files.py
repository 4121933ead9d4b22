"""The tests mirror the modules: every module of openpose_ros (but __init__.py) has a test file named after it,
test_<module>.py or test_<module>_<aspect>.py, with the folder as prefix where two folders share a module name
(test_bag_evaluate.py, test_cli_evaluate.py); every other test file tests the package as a whole and is listed
below with what it covers; and no test imports a private (underscore-prefixed) name of openpose_ros."""
import ast
from collections import Counter
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / 'openpose_ros'
TESTS = ROOT / 'test'

# Test files of the package as a whole, not of one module.
PACKAGE_WIDE = {
    'test_packaging.py': 'the ROS 2 package: package.xml, CMakeLists.txt, a colcon build',
    'test_pip_install.py': '`pip install .` without ROS',
    'test_layering.py': 'the import layers of the package',
    'test_docstrings.py': 'docstrings of every module and public name',
    'test_test_files.py': 'this file: tests mirror the modules',
    'test_readme_ros_commands.py': "the README's ROS 2 command lines, run as typed",
    'test_setup_ros_tools.py': 'scripts/setup_ros_tools.sh',
    'test_launch_files.py': 'launch/, config/ and the rviz configuration',
    'test_launch_harness.py': 'the launch tests can fail',
    'test_launch_pose_estimation.py': 'launch_testing of launch/pose_estimation.launch.py',
    'test_live_equals_replay.py': 'the live node and bag_eval give the same poses',
    'test_cuda.py': 'the CUDA paths across the package',
    'test_gpu_check.py': 'benchmarks/gpu_check.py',
    'test_messages.py': 'the generated messages of msg/',
    'test_typing.py': 'mypy over the public API',
}


def package_modules():
    """Dotted names (below openpose_ros) of the package's modules, __init__.py left out."""
    return sorted('.'.join(path.relative_to(PACKAGE).with_suffix('').parts)
                  for path in PACKAGE.rglob('*.py') if path.name != '__init__.py')


def accepted_names(modules):
    """{module: names its test files may start with}: the module's own name unless another folder has a module of
    that name too, and the folder-prefixed name of a module in a folder."""
    leaves = Counter(module.rpartition('.')[2] for module in modules)
    names = {}
    for module in modules:
        folder, _, leaf = module.rpartition('.')
        own = [] if leaves[leaf] > 1 else [leaf]
        names[module] = own + ([f'{folder.replace(".", "_")}_{leaf}'] if folder else [])
    return names


def module_tested_by(test_file, names):
    """The module a test file is named after (the longest matching name wins: test_pose_estimation_depth.py is
    pose_estimation's, not pose's), or None."""
    stem = Path(test_file).stem
    matches = [(len(name), module) for module, accepted in names.items() for name in accepted
               if stem == f'test_{name}' or stem.startswith(f'test_{name}_')]
    return max(matches)[1] if matches else None


def existing_test_files():
    return sorted(path.name for path in TESTS.glob('test_*.py'))


def test_a_test_file_belongs_to_the_module_with_the_longest_matching_name():
    names = accepted_names(['pose', 'ros.pose_estimation', 'command_line', 'bag.evaluate', 'cli.evaluate',
                            'bag.command'])
    assert module_tested_by('test_pose_estimation_depth.py', names) == 'ros.pose_estimation'
    assert module_tested_by('test_pose.py', names) == 'pose'
    assert module_tested_by('test_command_line.py', names) == 'command_line'
    assert module_tested_by('test_bag_command.py', names) == 'bag.command'
    assert module_tested_by('test_cli_evaluate.py', names) == 'cli.evaluate'
    assert module_tested_by('test_evaluate.py', names) is None  # shared by bag/ and cli/: the folder must say which
    assert module_tested_by('test_posed.py', names) is None


def test_every_module_has_a_test_file():
    names = accepted_names(package_modules())
    tested = {module_tested_by(name, names) for name in existing_test_files()}
    missing = [f'openpose_ros/{module.replace(".", "/")}.py: add test/test_{names[module][0]}.py'
               for module in names if module not in tested]
    assert not missing, 'modules without a test file:\n' + '\n'.join(missing)


def test_every_test_file_is_named_after_a_module_or_listed_as_package_wide():
    names = accepted_names(package_modules())
    stray = [name for name in existing_test_files()
             if module_tested_by(name, names) is None and name not in PACKAGE_WIDE]
    assert not stray, ('test files named after no module of openpose_ros (rename them test_<module>[_<aspect>].py, '
                       'or list them in PACKAGE_WIDE):\n' + '\n'.join(stray))
    gone = sorted(set(PACKAGE_WIDE) - set(existing_test_files()))
    assert not gone, f'PACKAGE_WIDE lists test files that are not there: {gone}'


def private_imports(path):
    """'line N: name' of every underscore-prefixed name a file imports from openpose_ros."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('openpose_ros'):
            modules = [node.module] + [f'{node.module}.{alias.name}' for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names if alias.name.startswith('openpose_ros')]
        else:
            continue
        for module in modules:
            if any(part.startswith('_') and part != '__init__' for part in module.split('.')):
                yield f'line {node.lineno}: {module}'


def test_no_test_imports_a_private_name():
    found = [f'{path.name} {where}' for path in sorted(TESTS.glob('*.py')) for where in private_imports(path)]
    assert not found, 'private names imported by tests (make them public or test the public API):\n' + \
        '\n'.join(found)
