"""The executables' promises to the user: --help that costs nothing, one default device, no input ever
written over, and bad paths that are exit status 2 with a message, not a traceback."""
import importlib
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import MMPOSE_IMAGES, PHOTO, ROOT
from openpose_ros import cli, training
from openpose_ros.cli import infer

EXECUTABLES = {'infer': 'Pose estimation on an image', 'train': 'Train Lightweight OpenPose',
               'evaluate': 'Evaluate a model on COCO keypoints', 'bag_eval': 'Pose estimation on a recorded camera bag'}
UNREACHABLE_MIRROR = 'http://127.0.0.1:9'  # nothing listens there


# --- --help ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', EXECUTABLES)
def test_help_prints_the_usage_once_offline_and_exits_0(name, tmp_path):
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))
    env = dict(os.environ, OPENPOSE_ROS_MIRROR=UNREACHABLE_MIRROR, XDG_CACHE_HOME=str(tmp_path / 'cache'),
               HOME=str(tmp_path / 'home'), PYTHONPATH=python_path)
    done = subprocess.run([sys.executable, '-m', f'openpose_ros.cli.{name}', '--help'], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    executable = 'openpose-' + name.replace('_', '-')
    assert done.stdout.startswith(f'usage: {executable} ')
    assert done.stdout.count(EXECUTABLES[name]) == 1  # the description, once
    assert '--device' in done.stdout and done.stderr == ''
    assert not (tmp_path / 'cache').exists() and not (tmp_path / 'home').exists()  # nothing fetched or cached


@pytest.mark.parametrize('name', EXECUTABLES)
def test_every_executable_defaults_to_the_shared_device(name):
    parser = importlib.import_module(f'openpose_ros.cli.{name}').build_parser()
    assert cli.DEFAULT_DEVICE == 'auto'
    assert parser.get_default('device') == cli.DEFAULT_DEVICE


# --- bad paths ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['train', 'evaluate'])
def test_a_missing_or_malformed_config_is_exit_2(name, tmp_path, capsys):
    main = importlib.import_module(f'openpose_ros.cli.{name}').main
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
    main = importlib.import_module(f'openpose_ros.cli.{argv[0]}').main
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


# --- training messages -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_logged_loss_names_its_parts(tmp_path, capsys):
    from test_training import small_dataset, tiny_learner
    learner = tiny_learner(tmp_path, num_refinement_stages=1)
    training.fit(learner, small_dataset(), max_iterations=1)
    entry = training.read_losses(tmp_path, 'default')[0]
    heatmaps, pafs, refined_heatmaps, refined_pafs = entry['stage_losses']
    expected = (f'loss {entry["loss"]:.4f} (initial stage: heatmaps {heatmaps:.4f}, PAFs {pafs:.4f}; '
                f'refinement stage 1: heatmaps {refined_heatmaps:.4f}, PAFs {refined_pafs:.4f})')
    assert expected in capsys.readouterr().out
