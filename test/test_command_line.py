"""The executables' promises to the user: --help that costs nothing, one default device, no input or earlier
output ever written over, bad arguments and paths that are exit status 2 with a message (not a traceback) before
the model loads, and the poses of an interrupted run kept."""
import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import DATA, MMPOSE_IMAGES, PHOTO, ROOT, TEST_MODEL, VIDEO
from filesystems import limit_file_size, read_only_folder
from openpose_ros import command_line as cli
from openpose_ros.cli import infer


EXECUTABLES = {'infer': 'Pose estimation on an image', 'train': 'Train Lightweight OpenPose',
               'evaluate': 'Evaluate a model on COCO keypoints', 'bag_eval': 'Pose estimation on a recorded camera bag'}
MODULES = {'infer': 'openpose_ros.cli.infer', 'train': 'openpose_ros.cli.train',
           'evaluate': 'openpose_ros.cli.evaluate', 'bag_eval': 'openpose_ros.bag.command'}
UNREACHABLE_MIRROR = 'http://127.0.0.1:9'  # nothing listens there


# --- --help ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', EXECUTABLES)
def test_help_prints_the_usage_once_offline_and_exits_0(name, tmp_path):
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))
    env = dict(os.environ, OPENPOSE_ROS_MIRROR=UNREACHABLE_MIRROR, XDG_CACHE_HOME=str(tmp_path / 'cache'),
               HOME=str(tmp_path / 'home'), PYTHONPATH=python_path)
    done = subprocess.run([sys.executable, '-m', MODULES[name], '--help'], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    executable = 'openpose-' + name.replace('_', '-')
    assert done.stdout.startswith(f'usage: {executable} ')
    assert done.stdout.count(EXECUTABLES[name]) == 1  # the description, once
    assert '--device' in done.stdout and done.stderr == ''
    assert not (tmp_path / 'cache').exists() and not (tmp_path / 'home').exists()  # nothing fetched or cached


@pytest.mark.parametrize('name', EXECUTABLES)
def test_every_executable_defaults_to_the_shared_device(name):
    parser = importlib.import_module(MODULES[name]).build_parser()
    assert cli.DEFAULT_DEVICE == 'auto'
    assert parser.get_default('device') == cli.DEFAULT_DEVICE


# --- bad paths ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['train', 'evaluate'])
def test_a_missing_or_malformed_config_is_exit_2(name, tmp_path, capsys):
    main = importlib.import_module(MODULES[name]).main
    broken = tmp_path / 'broken.yaml'
    broken.write_text('learner: [unclosed\n')
    for config in (tmp_path / 'missing.yaml', broken):
        with pytest.raises(SystemExit) as exit_:
            main(['--config', str(config), '--dataset-path', str(tmp_path), '--weights', str(tmp_path)])
        assert exit_.value.code == 2
        assert str(config) in capsys.readouterr().err


@pytest.mark.parametrize('argv', [
    ['infer', '{missing}', '--random-weights'],
    ['train', '--dataset-path', '{missing}', '--config', '', '--device', 'cpu'],
    ['evaluate', '--dataset-path', '{missing}', '--weights', str(ROOT / 'test' / 'models' / 'tiny_coco'),
     '--config', '', '--device', 'cpu'],
    ['bag_eval', '{missing}', '--weights', str(ROOT / 'test' / 'models' / 'tiny_coco')],
])
def test_a_missing_input_is_exit_2_with_its_name(argv, tmp_path, capsys, caplog):
    missing = str(tmp_path / 'nowhere')
    main = importlib.import_module(MODULES[argv[0]]).main
    output_flag = '--output' if argv[0] in ('infer', 'bag_eval') else '--temp-path'
    args = [a.replace('{missing}', missing) for a in argv[1:]] + [output_flag, str(tmp_path / 'out')]
    try:
        code = main(args)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    assert 'nowhere' in capsys.readouterr().err + caplog.text


# --- never write over an input -------------------------------------------------------------------------------
@pytest.fixture
def photos(tmp_path):
    """A folder of two real photos (copies, so that a failure cannot harm the shared data)."""
    folder = tmp_path / 'photos'
    folder.mkdir()
    for source in sorted(MMPOSE_IMAGES.glob('*.jpg'))[:2]:
        shutil.copyfile(source, folder / source.name)
    return folder


def _contents(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def _refused(caplog, *argv):
    """Whether infer refuses these arguments: exit status 2 with a message that says why."""
    caplog.clear()
    code = infer.main([str(a) for a in argv] + ['--random-weights'])
    return code == 2 and ('over the input' in caplog.text or 'is a file' in caplog.text)


def test_output_folder_equal_to_the_input_folder_is_refused(photos, caplog):
    before = _contents(photos)
    assert _refused(caplog, photos, '--output', photos)
    assert _contents(photos) == before


@pytest.mark.parametrize('spelling', ['symlink', 'dotdot', 'hardlink'])
def test_output_reaching_an_input_another_way_is_refused(photos, tmp_path, caplog, spelling):
    before = _contents(photos)
    photo = sorted(photos.iterdir())[0]
    if spelling == 'symlink':
        output = tmp_path / 'link'
        output.symlink_to(photos, target_is_directory=True)
    elif spelling == 'dotdot':
        (photos / 'x').mkdir()
        output = f'{photos}/./x/../'
    else:  # an output folder that holds a hard link to the input under its name
        output = tmp_path / 'out'
        output.mkdir()
        os.link(photo, output / photo.name)
    assert _refused(caplog, photo, '--output', output)
    assert _contents(photos) == before


def test_output_equal_to_the_input_file_is_refused(photos, caplog):
    photo = sorted(photos.iterdir())[0]
    before = _contents(photos)
    assert _refused(caplog, photo, '--output', photo)
    assert _refused(caplog, photo, '--output', photos)  # its folder: the annotated copy would take its name
    assert _contents(photos) == before


def test_output_equal_to_the_input_video_is_refused(tmp_path, caplog):
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10, (64, 48))
    for value in (0, 128, 255):
        writer.write(np.full((48, 64, 3), value, np.uint8))
    writer.release()
    before = video.read_bytes()
    assert _refused(caplog, video, '--output', video)
    assert video.read_bytes() == before


def test_save_model_over_a_file_is_refused_and_into_the_input_folder_adds_only_the_model(photos, tmp_path, caplog):
    before = _contents(photos)
    existing = tmp_path / 'notes.txt'
    existing.write_text('keep me')
    assert infer.main([str(photos), '--random-weights', '--save-model', str(existing),
                       '--output', str(tmp_path / 'out')]) == 2
    assert existing.read_text() == 'keep me' and 'is a file' in caplog.text
    assert infer.main([str(photos), '--random-weights', '--save-model', str(photos),
                       '--output', str(tmp_path / 'out'), '--quiet']) == 0
    after = _contents(photos)
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) == {f'{photos.name}{suffix}' for suffix in ('.pth', '.json', '.onnx')}


def test_an_output_beside_the_inputs_still_works(photos, tmp_path):
    """The refusals do not catch a legitimate run: another folder, even inside the input folder."""
    before = _contents(photos)
    assert infer.main([str(PHOTO), '--random-weights', '--output', str(photos / 'annotated'), '--quiet']) == 0
    assert (photos / 'annotated' / PHOTO.name).is_file() and (photos / 'annotated' / 'poses.json').is_file()
    assert _contents(photos) == before


# --- earlier outputs and the output folder ------------------------------------------------------------------
MESSI = DATA / 'images' / 'messi5.jpg'
MISSING_WEIGHTS = '/nonexistent/weights.pth'  # a run that got as far as loading the model would fail on these
INFER = [sys.executable, '-m', 'openpose_ros.cli.infer']
CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))


def test_files_already_in_the_output_folder_are_refused_before_the_model_loads(tmp_path, caplog):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'poses.json').write_text('my own poses\n')
    (out / 'messi5.jpg').write_bytes(b'my own photo')
    (out / 'notes.txt').write_text('mine\n')
    before = _contents(out)
    assert infer.main([str(MESSI), '--weights', MISSING_WEIGHTS, '--output', str(out)]) == 2
    assert f'{out / "messi5.jpg"} exists already; pass --overwrite' in caplog.text  # the first in the way
    caplog.clear()
    assert infer.main([str(MESSI), '--weights', MISSING_WEIGHTS, '--output', str(out), '--no-images']) == 2
    assert f'{out / "poses.json"} exists already' in caplog.text
    assert _contents(out) == before
    assert infer.main([str(MESSI), '--random-weights', '--output', str(out), '--overwrite', '--quiet']) == 0
    assert json.loads((out / 'poses.json').read_text())['frames'][0]['file'] == 'messi5.jpg'
    assert cv2.imread(str(out / 'messi5.jpg')).shape == cv2.imread(str(MESSI)).shape
    assert (out / 'notes.txt').read_text() == 'mine\n'


def test_an_existing_output_folder_without_clashing_files_is_used(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'notes.txt').write_text('mine\n')
    assert infer.main([str(MESSI), '--random-weights', '--output', str(out), '--quiet']) == 0
    assert sorted(p.name for p in out.iterdir()) == ['messi5.jpg', 'notes.txt', 'poses.json']


def test_a_read_only_output_folder_is_refused_before_the_model_loads(tmp_path, caplog):
    with read_only_folder(tmp_path / 'locked') as locked:
        assert infer.main([str(MESSI), '--weights', MISSING_WEIGHTS, '--output', str(locked)]) == 2
        assert f'cannot write into the output folder {locked}' in caplog.text and 'Traceback' not in caplog.text
        assert [p.name for p in locked.iterdir()] == ['before.txt']


@pytest.mark.slow
def test_a_write_failing_mid_run_is_exit_2_with_a_message(tmp_path):
    """A file size limit (as a quota or a full disk) makes writing poses.json fail: a message, not a traceback."""
    done = subprocess.run([*INFER, str(VIDEO), '--weights', str(TEST_MODEL), '--backend', 'torch', '--device', 'cpu',
                           '--max-frames', '3', '--no-images', '--quiet', '--output', str(tmp_path / 'out')],
                          env=CHILD_ENV, capture_output=True, text=True, timeout=120,
                          preexec_fn=limit_file_size(256))
    assert done.returncode == 2, done.stderr
    assert f'cannot write {tmp_path / "out" / "poses.json"}' in done.stderr and 'Traceback' not in done.stderr
    assert not (tmp_path / 'out' / 'poses.json').exists()


@pytest.mark.slow
def test_ctrl_c_keeps_the_poses_of_the_frames_processed(tmp_path):
    out = tmp_path / 'out'
    child = subprocess.Popen([*INFER, str(VIDEO), '--weights', str(TEST_MODEL), '--backend', 'torch', '--device',
                              'cpu', '--output', str(out), '--quiet'], env=CHILD_ENV, stderr=subprocess.PIPE,
                             text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (out / 'vtest_poses.mp4').exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the video opens on the first frame
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    assert 'interrupted: writing the poses of the' in stderr and 'Traceback' not in stderr
    doc = json.loads((out / 'poses.json').read_text())
    total = int(cv2.VideoCapture(str(VIDEO)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert doc['interrupted'] is True and 0 < len(doc['frames']) < total
    assert [frame['frame'] for frame in doc['frames']] == list(range(len(doc['frames'])))
    assert cv2.VideoCapture(str(out / 'vtest_poses.mp4')).read()[0]  # the partial video plays


# --- arguments checked before the model loads ----------------------------------------------------------------
@pytest.mark.parametrize('argument,message', [
    (['--fps', 'nan'], 'argument --fps: must be in (0, 1000], got nan'),
    (['--fps', 'inf'], 'argument --fps: must be in (0, 1000]'),
    (['--fps', '1e300'], 'argument --fps: must be in (0, 1000]'),
    (['--fps', '0'], 'argument --fps: must be in (0, 1000]'),
    (['--base-height', '-1'], 'argument --base-height: must be in [32, 2048], got -1'),
    (['--upsample-ratio', '0'], 'argument --upsample-ratio: must be in [1, 16]'),
    (['--max-aspect-ratio', 'nan'], 'argument --max-aspect-ratio: max_aspect_ratio must be in [1, 32]'),
    (['--max-frames', '0'], 'argument --max-frames: must be in [1, '),
])
def test_out_of_range_arguments_are_exit_2_before_any_work(tmp_path, capsys, argument, message):
    with pytest.raises(SystemExit) as exit_:
        infer.main([str(MESSI), '--weights', MISSING_WEIGHTS, '--output', str(tmp_path / 'out'), *argument])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('stamp', [math.nan, math.inf, -math.inf])
def test_a_non_finite_stamp_is_refused(stamp):
    from test_files import tiny_learner
    learner = tiny_learner()
    with pytest.raises(ValueError, match='stamp must be a finite number'):
        learner.infer(cv2.imread(str(PHOTO)), stamp=stamp)
    assert learner.infer(cv2.imread(str(PHOTO)), stamp=1.0) is not None


def test_a_fifo_or_a_folder_is_refused_where_a_file_is_expected(tmp_path, caplog, capsys):
    fifo = tmp_path / 'camera.jpg'
    os.mkfifo(fifo)  # opening it for reading would wait for a writer
    assert infer.main([str(fifo), '--weights', MISSING_WEIGHTS, '--output', str(tmp_path / 'out')]) == 2
    assert f'input {fifo} is not a regular file' in caplog.text
    from openpose_ros.bag import command as bag_eval
    for path, reason in ((fifo, 'is not a regular file'), (tmp_path, 'is a folder')):
        for option in ('--params-file', '--annotations'):
            with pytest.raises(SystemExit) as exit_:
                bag_eval.build_parser().parse_args([str(tmp_path / 'bag'), option, str(path)])
            assert exit_.value.code == 2 and f'{path} {reason}; give a file' in capsys.readouterr().err
