"""The public API's type hints, checked by mypy with the configuration in setup.cfg ([mypy]: the modules it
checks, and that every function there is annotated).

mypy keeps its cache in .mypy_cache/ at the repository root: a run after a change takes about a second, the
first one (the cache of numpy's and torch's types) about 15 s.
"""
import importlib.util
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.fixture(scope='module')
def mypy():
    if importlib.util.find_spec('mypy') is None:
        pytest.fail('mypy is not installed: it comes with the test extra (`make setup`, or pip install -e .[test])',
                    pytrace=False)
    return [sys.executable, '-m', 'mypy', '--config-file', str(ROOT / 'setup.cfg')]


def test_the_public_api_type_checks(mypy):
    done = subprocess.run(mypy, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f'mypy found errors:\n{done.stdout}{done.stderr}'


def test_a_function_without_hints_in_the_checked_modules_is_an_error(mypy, tmp_path):
    package = tmp_path / 'openpose_ros' / 'inference'
    package.mkdir(parents=True)
    for folder in (package.parent, package):
        (folder / '__init__.py').write_text('')
    (package / 'unannotated.py').write_text('def scale(value, factor: float):\n    return value * factor\n')
    done = subprocess.run([*mypy, '--cache-dir', str(tmp_path / 'cache'), str(package / 'unannotated.py')],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'unannotated.py:1: error: Function is missing a type annotation' in done.stdout, done.stdout
