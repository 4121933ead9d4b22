"""Dependencies run one way: the library never imports the outer layers (ros/, bag/, cli/), the outer layers
never import each other, and the library imports no rclpy. Every import counts, those inside functions too."""
import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / 'openpose_ros'
OUTER = ('ros', 'bag', 'cli')
ROS_ONLY = ('rclpy', 'launch', 'launch_ros', 'message_filters', 'tf2_ros')


def layer(module: str) -> str:
    """'ros', 'bag', 'cli' or 'library' for a dotted module name of the package."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 and parts[1] in OUTER else 'library'


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix('')
    parts = relative.parts[:-1] if relative.name == '__init__' else relative.parts
    return '.'.join(parts)


def imports(path: Path):
    """(imported module, line) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == '__init__.py' else module_name(path).rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                base = '.'.join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            yield base, node.lineno
            yield from ((f'{base}.{alias.name}', node.lineno) for alias in node.names)


def modules():
    return sorted(PACKAGE.rglob('*.py'))


def test_the_package_is_found():
    names = [module_name(path) for path in modules()]
    assert 'openpose_ros.inference.pipeline' in names and 'openpose_ros.ros.pose_estimation' in names


@pytest.mark.parametrize('path', modules(), ids=lambda path: module_name(path))
def test_imports_follow_the_layers(path):
    own = layer(module_name(path))
    wrong = []
    for imported, line in imports(path):
        if imported.startswith('openpose_ros.msg') or not imported.startswith('openpose_ros.'):
            if own == 'library' and imported.split('.')[0] in ROS_ONLY:
                wrong.append(f'line {line}: {imported} (the library is free of ROS)')
            continue
        target = layer(imported)
        if target != own and target != 'library':
            wrong.append(f'line {line}: {imported} ({own} must not import {target})')
    assert not wrong, '\n'.join(wrong)
