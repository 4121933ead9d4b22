"""Every module, public function and class, and public method and property of a public class has a docstring.

Public means not underscore-prefixed. Exempt are the conventional overrides whose meaning the base class gives:
torch's ``forward``, the rclpy lifecycle callbacks (``on_configure``, ``on_activate``, ``on_deactivate``,
``on_cleanup``, ``on_shutdown``, ``on_error``) and ``destroy_node`` in classes, and ``main`` in the executables'
modules (the entry points in setup.py and the modules run with ``python -m``). A property's setter and deleter share
the getter's docstring.
"""
import ast
from functools import cache
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / 'openpose_ros'
OVERRIDES = {'forward', 'on_configure', 'on_activate', 'on_deactivate', 'on_cleanup', 'on_shutdown', 'on_error',
             'destroy_node'}
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@cache
def executables() -> frozenset:
    """Paths of the modules run as programs: entry points in setup.py's ENTRY_POINTS, or with a ``__main__`` guard."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    entry_points = next(ast.literal_eval(node.value) for node in tree.body
                        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'ENTRY_POINTS')
    modules = {ROOT / (target.split(':')[0].replace('.', '/') + '.py') for target in entry_points.values()}
    guarded = {path for path in PACKAGE.rglob('*.py') if "if __name__ == '__main__':" in path.read_text()}
    return frozenset(modules | guarded)


def public(name: str) -> bool:
    return not name.startswith('_')


def accessor(function) -> bool:
    """Whether the function is a property's setter or deleter (``@name.setter``)."""
    return any(isinstance(decorator, ast.Attribute) and decorator.attr in ('setter', 'deleter')
               for decorator in function.decorator_list)


def undocumented(path: Path):
    """(line, name) of each module, public function, class, method and property of ``path`` without a docstring."""
    tree = ast.parse(path.read_text(), str(path))
    program = path in executables()
    if ast.get_docstring(tree) is None:
        yield 1, '<module>'
    for node in tree.body:
        if isinstance(node, FUNCTIONS) and public(node.name):
            if ast.get_docstring(node) is None and not (node.name == 'main' and program):
                yield node.lineno, node.name
        elif isinstance(node, ast.ClassDef) and public(node.name):
            if ast.get_docstring(node) is None:
                yield node.lineno, node.name
            yield from ((member.lineno, f'{node.name}.{member.name}') for member in node.body
                        if isinstance(member, FUNCTIONS) and public(member.name) and member.name not in OVERRIDES
                        and not accessor(member) and ast.get_docstring(member) is None)


def modules():
    return sorted(PACKAGE.rglob('*.py'))


def test_the_modules_and_executables_are_found():
    paths = modules()
    assert PACKAGE / 'inference' / 'pipeline.py' in paths and PACKAGE / 'ros' / 'pose_estimation.py' in paths
    assert executables() <= set(paths)
    assert {PACKAGE / 'cli' / 'infer.py', PACKAGE / 'ros' / 'demo.py'} <= executables()


def test_a_missing_docstring_is_found(tmp_path):
    path = tmp_path / 'module.py'
    path.write_text('"""Module."""\n\n\nclass Public:\n    """Class."""\n\n    def method(self):\n        pass\n\n'
                    '    def forward(self):\n        pass\n\n    @property\n    def size(self):\n        """Size."""\n'
                    '\n    @size.setter\n    def size(self, value):\n        pass\n\n\ndef function():\n    pass\n\n\n'
                    'def _private():\n    pass\n')
    assert list(undocumented(path)) == [(7, 'Public.method'), (22, 'function')]


@pytest.mark.parametrize('path', modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_public_names_have_docstrings(path):
    missing = [f'{path.relative_to(ROOT)}:{line} {name}' for line, name in undocumented(path)]
    assert not missing, 'missing docstrings:\n' + '\n'.join(missing)
