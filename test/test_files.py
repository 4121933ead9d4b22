"""Atomic writes and learner.save(): what they write, what they refuse, and that they never delete what they did
not create (all in throw-away folders)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import PHOTO, ROOT
from openpose_ros import LightweightOpenPoseLearner, files
from openpose_ros.files import atomic_path

ENV = {**os.environ, 'OMP_NUM_THREADS': '1',
       'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])}


def tiny_learner(**options):
    torch.manual_seed(0)
    options = dict(device='cpu', backbone='mobilenetv2', mobilenetv2_width=0.25, num_refinement_stages=0, **options)
    return LightweightOpenPoseLearner(**options).allow_random_weights()


@pytest.fixture
def working_folder(tmp_path, monkeypatch):
    """A current folder holding files that must survive: sentinel.txt and sub/kept.txt."""
    folder = tmp_path / 'work'
    (folder / 'sub').mkdir(parents=True)
    (folder / 'sentinel.txt').write_text('keep me')
    (folder / 'sub' / 'kept.txt').write_text('keep me too')
    monkeypatch.chdir(folder)
    return folder


def assert_sentinels_intact(folder):
    assert (folder / 'sentinel.txt').read_text() == 'keep me'
    assert (folder / 'sub' / 'kept.txt').read_text() == 'keep me too'


def hidden_entries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith('.'))


# --- paths without a name ------------------------------------------------------------------------------
@pytest.mark.parametrize('path', ['.', '', 'sub/..'])
def test_save_to_a_path_without_a_name_is_refused_and_deletes_nothing(working_folder, path):
    with pytest.raises(ValueError, match='names no file or folder'):
        tiny_learner().save(path)
    assert_sentinels_intact(working_folder)
    assert hidden_entries(working_folder) == []


@pytest.mark.parametrize('path', ['.', '', 'sub/..'])
def test_atomic_path_refuses_a_path_without_a_name(working_folder, path):
    with pytest.raises(ValueError, match='names no file or folder'):
        with atomic_path(path) as temporary:
            temporary.write_text('x')
    assert_sentinels_intact(working_folder)


@pytest.mark.parametrize('path', ['/', '.', '', 'a/..', '/tmp/..'])
def test_paths_without_a_final_name_are_refused(path):
    """'/' is checked on named_target only: atomic_path('/') must never be tried on code that might accept it."""
    with pytest.raises(ValueError, match='names no file or folder'):
        files.named_target(path)


def test_a_failed_write_removes_only_its_own_temporary(working_folder):
    with pytest.raises(RuntimeError, match='failed'):
        with atomic_path('out.txt') as temporary:
            temporary.write_text('half')
            raise RuntimeError('failed')
    assert_sentinels_intact(working_folder)
    assert sorted(p.name for p in working_folder.iterdir()) == ['sentinel.txt', 'sub']


@pytest.mark.slow
def test_the_infer_cli_refuses_save_model_dot(working_folder):
    """`openpose-infer --save-model .` used to delete the current folder, the run's output included."""
    run = subprocess.run([sys.executable, '-m', 'openpose_ros.cli.infer', str(PHOTO), '--random-weights',
                          '--save-model', '.', '--output', 'out', '--no-images'],
                         cwd=working_folder, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert 'names no file or folder' in run.stderr
    assert_sentinels_intact(working_folder)
    assert hidden_entries(working_folder) == []


# --- saving into a folder that holds other things --------------------------------------------------------
def test_save_into_an_existing_folder_writes_only_this_models_files(tmp_path):
    models = tmp_path / 'models'
    tiny_learner().save(models / 'other')
    (models / 'README.md').write_text('my models')
    (models / 'other.int8.onnx').write_text('another model\'s file')
    other_before = {p.name: p.read_bytes() for p in (models / 'other').iterdir()}
    learner = tiny_learner()
    assert learner.save(models) == models
    assert (models / 'README.md').read_text() == 'my models'
    assert (models / 'other.int8.onnx').read_text() == 'another model\'s file'
    assert {p.name: p.read_bytes() for p in (models / 'other').iterdir()} == other_before
    assert sorted(p.name for p in models.iterdir()) == [
        'README.md', 'models.json', 'models.pth', 'other', 'other.int8.onnx']
    assert LightweightOpenPoseLearner(device='cpu').load(models).mobilenetv2_width == 0.25
    assert LightweightOpenPoseLearner(device='cpu').load(models / 'other').mobilenetv2_width == 0.25


@pytest.mark.slow
def test_a_save_removes_this_models_stale_onnx_files_only(tmp_path):
    """A save without ONNX leaves no model.onnx / model.int8.onnx of an earlier save: they would not match the
    new weights. Files of other names stay."""
    folder = tmp_path / 'model'
    learner = tiny_learner(temp_path=tmp_path / 'scratch')
    learner.optimize()
    learner.save(folder)
    assert json.loads((folder / 'model.json').read_text())['onnx'] == 'model.onnx'
    (folder / 'model.int8.onnx').write_bytes(b'from an earlier save')
    (folder / 'notes.onnx').write_bytes(b'not this model\'s')
    tiny_learner().save(folder)
    assert sorted(p.name for p in folder.iterdir()) == ['model.json', 'model.pth', 'notes.onnx']
    metadata = json.loads((folder / 'model.json').read_text())
    assert metadata['onnx'] is None and metadata['int8'] is None and list(metadata['sha256']) == ['model.pth']


def test_save_to_a_file_is_refused_and_leaves_it(tmp_path):
    target = tmp_path / 'notes.txt'
    target.write_text('my notes')
    with pytest.raises(ValueError, match='is a file'):
        tiny_learner().save(target)
    assert target.read_text() == 'my notes'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['notes.txt']


# --- temporaries of killed writers ----------------------------------------------------------------------
KILLED_SAVE = '''
import sys, time, torch
from openpose_ros import LightweightOpenPoseLearner
real_save = torch.save
def save_then_hang(obj, path, *args, **kwargs):
    real_save(obj, path, *args, **kwargs)
    print('written', flush=True)
    time.sleep(300)
torch.save = save_then_hang
torch.manual_seed(0)
LightweightOpenPoseLearner(device='cpu', backbone='mobilenetv2', mobilenetv2_width=0.25,
                           num_refinement_stages=0).save(sys.argv[1])
'''


def temporary_of(target, pid):
    """A temporary folder named as atomic_path names them, as left by the writer `pid`."""
    folder = target.parent / f'.{target.name}.{pid}.abc123{files.TEMPORARY_SUFFIX}'
    folder.mkdir()
    (folder / target.name).write_bytes(b'partial')
    return folder


@pytest.mark.slow
def test_temporaries_left_by_a_killed_save_are_removed_by_the_next(tmp_path):
    target = tmp_path / 'model'
    writer = subprocess.Popen([sys.executable, '-c', KILLED_SAVE, str(target)], env=ENV, stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout.readline().strip() == 'written'  # inside the save, its temporary on disk
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    writer.stdout.close()
    left = hidden_entries(target) + hidden_entries(tmp_path)
    assert len(left) == 1, left  # the killed writer's temporary
    alive = subprocess.Popen(['sleep', '60'])  # a concurrent writer, still running: its temporary stays
    try:
        concurrent = temporary_of(target / 'model.pth', alive.pid)
        old = temporary_of(target / 'model.json', alive.pid)
        two_days_ago = time.time() - 2 * files.STALE_TEMPORARY_SECONDS
        os.utime(old, (two_days_ago, two_days_ago))
        tiny_learner().save(target)
        assert hidden_entries(target) == [concurrent.name] and hidden_entries(tmp_path) == []
    finally:
        alive.kill()
        alive.wait()
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith('.')) == ['model.json', 'model.pth']
