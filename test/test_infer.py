"""The `infer` executable and the poses JSON format, on real images and the real video.

Without trained weights a network finds no one, so the tests that check poses put an oracle backend behind the
executable: it answers each real COCO image with the maps its own annotations render to (what a perfect network
would output), so the executable's geometry, JSON and drawing are checked against real people.
"""
import hashlib
import json
import os

import cv2
import numpy as np
import pytest

from conftest import COCO, DATA, MINI_TRAIN_ANNOTATIONS, MMPOSE_ANNOTATIONS, MMPOSE_IMAGES, PHOTO, TEST_MODEL, VIDEO
from openpose_ros.cli import infer as cli
from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.formats.poses_json import FORMAT, pose_to_dict, read_document
from openpose_ros.inference.preprocess import prepare
from openpose_ros.keypoints import NUM_KEYPOINTS
from openpose_ros.training.targets import render_oracle_maps
from test_image_input_bounds import photo  # noqa: F401  (fixture: the photo as an array)

BASE_HEIGHT = 256


def _key(batch):
    return hashlib.sha1(np.ascontiguousarray(batch).tobytes()).hexdigest()


class OracleBackend:
    """Answers the network input of each known real image with the maps its annotations render to."""
    name = 'oracle'

    def __init__(self, records, folder):
        self.maps, self.calls = {}, 0
        for record in records:
            image = cv2.imread(str(folder / record.file_name))
            batch, _ = prepare(image, BASE_HEIGHT, 8)
            heatmaps, pafs, _, _ = render_oracle_maps(record, BASE_HEIGHT, 8)
            self.maps[_key(batch)] = (heatmaps[None], pafs[None])

    def run(self, batch):
        self.calls += 1
        return self.maps[_key(batch)]  # a KeyError here means the executable fed the network something else


@pytest.fixture(scope='module')
def records():
    return {r.file_name: r for r in load_coco_keypoints(str(MMPOSE_ANNOTATIONS))}


@pytest.fixture
def oracle(monkeypatch, records):
    backend = OracleBackend(records.values(), MMPOSE_IMAGES)
    real_build = cli.build_learner

    def build(args):
        learner, name, choice = real_build(args)
        learner.estimator.backend = backend
        return learner, 'oracle', choice

    monkeypatch.setattr(cli, 'build_learner', build)
    return backend


def run_cli(*argv):
    return cli.main([str(a) for a in argv])


def matched_error(poses, people):
    """For each annotated person with >= 5 labelled keypoints, the median distance (px) of the closest pose's
    keypoints to theirs; inf where no pose shares a keypoint."""
    errors = []
    for person in people:
        labelled = person[:, 2] > 0
        if labelled.sum() < 5:
            continue
        best = np.inf
        for pose in poses:
            xy = np.array([k[:2] for k in pose['keypoints']])
            both = labelled & (xy[:, 0] >= 0)
            if both.sum() >= 3:
                best = min(best, float(np.median(np.linalg.norm(xy[both] - person[both, :2], axis=1))))
        errors.append(best)
    return errors


# --- the executable on real people (oracle maps) -----------------------------------------------------------
def test_an_image_gives_its_people_in_image_pixels_an_annotated_copy_and_json(tmp_path, oracle, records):
    out = tmp_path / 'out'
    assert run_cli(PHOTO, '--random-weights', '--output', out, '--backend', 'onnx') == 0
    assert oracle.calls == 1
    doc = json.loads((out / 'poses.json').read_text())
    assert doc['format'] == FORMAT and doc['input_type'] == 'image' and doc['random_weights'] is True
    (frame,) = doc['frames']
    assert frame['file'] == PHOTO.name and (frame['width'], frame['height']) == (640, 425)
    people = records[PHOTO.name].keypoints
    assert len(frame['poses']) == len(people) == 1
    errors = matched_error(frame['poses'], people)
    assert max(errors) < 4.0, errors  # one map pixel is 13 image pixels here; upsampling x4 resolves ~3
    pose = frame['poses'][0]
    assert len(pose['keypoints']) == NUM_KEYPOINTS and 0 < pose['confidence'] <= 1
    x, y, w, h = pose['bbox']
    found = np.array([k for k in pose['keypoints'] if k[0] >= 0])
    assert np.allclose([x, y, x + w, y + h], [*found[:, :2].min(0), *found[:, :2].max(0)], atol=1e-2)
    annotated = cv2.imread(str(out / PHOTO.name))
    original = cv2.imread(str(PHOTO))
    assert annotated.shape == original.shape
    assert np.abs(annotated.astype(int) - original).sum(axis=2).astype(bool).mean() > 0.002  # a skeleton is drawn


def test_a_folder_skips_and_reports_corrupt_images_and_goes_on(tmp_path, oracle, records, caplog):
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in records:
        os.symlink(MMPOSE_IMAGES / name, folder / name)
    (folder / '000000000001.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg' * 10)
    (folder / '000000000002.png').write_bytes(b'')
    (folder / 'notes.txt').write_text('not an image, not even looked at')
    out = tmp_path / 'out'
    assert run_cli(folder, '--random-weights', '--output', out, '--quiet') == 1  # 1: some inputs skipped
    doc = json.loads((out / 'poses.json').read_text())
    assert sorted(e['file'] for e in doc['errors']) == ['000000000001.jpg', '000000000002.png']
    assert 'decode' in doc['errors'][0]['error'] and 'empty' in doc['errors'][1]['error']
    assert [f['file'] for f in doc['frames']] == sorted(records)
    assert 'skipping' in caplog.text and '000000000001.jpg' in caplog.text
    errors = []
    for frame in doc['frames']:
        errors += matched_error(frame['poses'], records[frame['file']].keypoints)
        assert (out / frame['file']).is_file()
        assert all(p['id'] >= 0 for p in frame['poses'])  # tracked (each photo on its own)
    assert len(errors) >= 10
    assert np.mean(np.array(errors) < 4.0) >= 0.9, errors
    assert not (out / 'notes.txt').exists()


def test_no_track_gives_id_minus_one(tmp_path, oracle):
    out = tmp_path / 'out'
    assert run_cli(PHOTO, '--random-weights', '--output', out, '--no-track', '--no-smooth', '--no-images') == 0
    doc = json.loads((out / 'poses.json').read_text())
    assert [p['id'] for p in doc['frames'][0]['poses']] == [-1]
    assert doc['settings']['track'] is False and doc['settings']['smooth'] is False
    assert sorted(p.name for p in out.iterdir()) == ['poses.json']


# --- video -------------------------------------------------------------------------------------------------
def test_a_video_gives_an_annotated_video_stamped_json_and_a_progress_bar(tmp_path, capsys):
    out = tmp_path / 'out'
    assert run_cli(VIDEO, '--random-weights', '--output', out, '--max-frames', 12) == 0
    doc = json.loads((out / 'poses.json').read_text())
    assert doc['input_type'] == 'video' and [f['frame'] for f in doc['frames']] == list(range(12))
    # vtest.avi is 10 fps: the stamps are the video's own, 0.1 s apart
    assert np.allclose([f['stamp'] for f in doc['frames']], np.arange(12) * 0.1, atol=1e-3)
    written = [p for p in out.iterdir() if p.name.startswith('vtest_poses.')]
    assert len(written) == 1
    capture = cv2.VideoCapture(str(written[0]))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 12
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (768, 576)
    assert '12/12' in capsys.readouterr().err
    assert 'MEANINGLESS' in cli.RANDOM_WEIGHTS_WARNING


def test_stamps_come_from_the_video_not_from_a_fixed_rate(tmp_path):
    """A 4 fps video: the stamps must be 0.25 s apart, whatever --fps says."""
    path = tmp_path / 'slow.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 4, (768, 576))
    capture = cv2.VideoCapture(str(VIDEO))
    for _ in range(5):
        writer.write(capture.read()[1])
    writer.release()
    capture.release()
    out = tmp_path / 'out'
    assert run_cli(path, '--random-weights', '--output', out, '--fps', 30, '--no-images', '--quiet') == 0
    stamps = [f['stamp'] for f in json.loads((out / 'poses.json').read_text())['frames']]
    assert np.allclose(stamps, np.arange(5) * 0.25, atol=1e-3)


def test_the_writer_falls_back_to_avi_when_mp4_cannot_be_written(tmp_path, monkeypatch):
    real = cv2.VideoWriter

    def writer(path, fourcc, fps, size):
        return real(path if not path.endswith('.mp4') else str(tmp_path / 'no' / 'such' / 'dir.mp4'),
                    fourcc, fps, size)

    monkeypatch.setattr(cv2, 'VideoWriter', writer)
    out = tmp_path / 'out'
    out.mkdir()
    video, path = cli.open_writer(out, 'clip', 10, (64, 48))
    video.write(np.zeros((48, 64, 3), np.uint8))
    video.release()
    assert path.name == 'clip_poses.avi' and path.stat().st_size > 0


# --- errors ------------------------------------------------------------------------------------------------
def test_missing_weights_say_how_to_get_them(tmp_path, caplog):
    assert run_cli(PHOTO, '--output', tmp_path) == 2
    assert 'download' in caplog.text and 'checkpoint_iter_370000.pth' in caplog.text and '--weights' in caplog.text
    caplog.clear()
    assert run_cli(PHOTO, '--weights', tmp_path / 'nowhere.pth', '--output', tmp_path) == 2
    assert 'no weights at' in caplog.text and 'download' in caplog.text


def test_weights_download_offline_fails_saying_how_to_provide_the_file(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    monkeypatch.setenv('OPENPOSE_ROS_MIRROR', 'http://127.0.0.1:9/models')   # nothing listens there
    assert run_cli(PHOTO, '--weights', 'download', '--output', tmp_path / 'out') == 2
    assert 'could not download http://127.0.0.1:9/models/checkpoint_iter_370000.pth' in caplog.text
    assert 'copy it to' in caplog.text and 'Traceback' not in caplog.text
    assert not (tmp_path / 'cache' / 'openpose_ros' / 'checkpoint_iter_370000.pth').exists()


def test_unreadable_weights_and_conflicting_options_are_errors(tmp_path, caplog):
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'PK\x03\x04 this is no checkpoint')
    assert run_cli(PHOTO, '--weights', corrupt, '--output', tmp_path / 'a') == 2
    assert 'corrupt.pth' in caplog.text and 'Traceback' not in caplog.text
    assert run_cli(PHOTO, '--weights', corrupt, '--random-weights', '--output', tmp_path / 'b') == 2


@pytest.mark.parametrize('make, message', [
    (lambda d: d / 'missing.jpg', 'does not exist'),
    (lambda d: (d / 'broken.jpg').write_bytes(b'\x00' * 100) and d / 'broken.jpg', 'decode'),
    (lambda d: (d / 'empty').mkdir() or d / 'empty', 'holds no images'),
    (lambda d: (d / 'clip.mp4').write_bytes(b'\x00' * 1000) and d / 'clip.mp4', 'video'),
    (lambda d: (d / 'data.xyz').write_bytes(b'1') and d / 'data.xyz', 'unknown file type'),
])
def test_bad_inputs_are_clear_errors(tmp_path, caplog, make, message):
    assert run_cli(make(tmp_path), '--random-weights', '--output', tmp_path / 'out') == 2
    assert message in caplog.text


@pytest.mark.slow
def test_a_saved_model_with_a_quantised_twin_runs_int8_by_default(tmp_path):
    """--save-model keeps the int8 model beside the weights; the next run's backend auto finds and uses it."""
    model = tmp_path / 'model'
    calibration = tmp_path / 'calibration'
    calibration.mkdir()
    for name in sorted(os.listdir(MMPOSE_IMAGES))[:3]:
        if name.endswith('.jpg'):
            os.symlink(MMPOSE_IMAGES / name, calibration / name)
    assert run_cli(PHOTO, '--random-weights', '--backend', 'int8', '--calibration', calibration,
                   '--save-model', model, '--output', tmp_path / 'a', '--no-images') == 0
    assert sorted(p.name for p in model.iterdir()) == ['model.int8.onnx', 'model.json', 'model.onnx', 'model.pth']
    assert run_cli(PHOTO, '--weights', model, '--output', tmp_path / 'b', '--no-images') == 0
    assert json.loads((tmp_path / 'b' / 'poses.json').read_text())['backend'] == 'openvino-cpu-int8'
    assert run_cli(PHOTO, '--weights', model, '--backend', 'torch', '--output', tmp_path / 'c', '--no-images') == 0
    assert json.loads((tmp_path / 'c' / 'poses.json').read_text())['backend'] == 'torch-cpu'


def test_other_real_images_run_end_to_end(tmp_path):
    """Grayscale-free real photos of other sizes (opencv-doc): the run completes and writes valid JSON."""
    out = tmp_path / 'out'
    assert run_cli(DATA / 'images', '--random-weights', '--output', out, '--quiet') == 0
    doc = read_document(out / 'poses.json')
    assert {f['file'] for f in doc['frames']} == {'basketball1.png', 'basketball2.png', 'messi5.jpg'}
    for frame in doc['frames']:
        image = cv2.imread(str(DATA / 'images' / frame['file']))
        assert (frame['height'], frame['width']) == image.shape[:2]
        assert cv2.imread(str(out / frame['file'])).shape == image.shape


def test_a_checkpoint_file_loads_with_its_refinement_stages_read_from_it(tmp_path):
    import torch
    from openpose_ros import LightweightOpenPoseLearner
    torch.manual_seed(0)
    learner = LightweightOpenPoseLearner(device='cpu', num_refinement_stages=2)
    torch.save({'state_dict': learner.model.state_dict(), 'iter': 1}, tmp_path / 'checkpoint.pth')
    out = tmp_path / 'out'
    assert run_cli(PHOTO, '--weights', tmp_path / 'checkpoint.pth', '--backend', 'torch', '--output', out,
                   '--no-images') == 0
    doc = json.loads((out / 'poses.json').read_text())
    assert doc['weights'] == str(tmp_path / 'checkpoint.pth') and doc['random_weights'] is False
    # forcing the wrong architecture is a clear error naming the mismatch
    assert run_cli(PHOTO, '--weights', tmp_path / 'checkpoint.pth', '--num-refinement-stages', 1,
                   '--output', tmp_path / 'bad') == 2


@pytest.mark.slow
@pytest.mark.skipif(not TEST_MODEL.exists(), reason=f'the trained test model {TEST_MODEL} is not there')
def test_the_test_model_finds_its_people_through_the_executable_on_every_backend(tmp_path):
    """The photos the test model was trained on: its six people, on torch, ONNX Runtime, int8 and OpenVINO alike."""
    train = COCO / 'coco-mini' / 'train2017'
    ids = (30752, 37666, 183872, 234748, 442450)
    people = {r.file_name: r.keypoints for r in load_coco_keypoints(str(MINI_TRAIN_ANNOTATIONS), ids)}
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in people:
        os.symlink(train / name, folder / name)
    found = {}
    for backend in ('torch', 'onnx', 'int8', 'openvino'):
        out = tmp_path / backend
        assert run_cli(folder, '--weights', TEST_MODEL, '--backend', backend, '--output', out, '--quiet',
                       '--no-images', *(('--calibration', train) if backend == 'int8' else ())) == 0
        doc = read_document(out / 'poses.json')
        assert doc['backend'].startswith({'torch': 'torch', 'openvino': 'openvino'}.get(backend, 'onnxruntime'))
        errors = []
        for frame in doc['frames']:
            errors += matched_error([pose_to_dict(p) for p in frame['poses']], people[frame['file']])
        found[backend] = errors
        assert len(errors) == 6 and sum(e < 8.0 for e in errors) >= 5, (backend, errors)
    # torch and ONNX Runtime decode the same maps: the same places
    assert np.allclose(found['torch'], found['onnx'], atol=0.5)


# --- the executables ----------------------------------------------------------------------------------------------
def test_infer_skips_a_strip_in_a_folder_and_refuses_a_lone_one(tmp_path, photo):
    from openpose_ros.cli import infer

    folder = tmp_path / 'images'
    folder.mkdir()
    cv2.imwrite(str(folder / 'strip.png'), np.full((1, 200), 100, np.uint8))
    cv2.imwrite(str(folder / 'photo.png'), photo)
    common = ['--weights', str(TEST_MODEL), '--backend', 'torch', '--no-images', '--quiet']
    assert infer.main([str(folder), '--output', str(tmp_path / 'out'), *common]) == 1
    document = json.loads((tmp_path / 'out' / 'poses.json').read_text())
    assert [frame['file'] for frame in document['frames']] == ['photo.png']
    (error,) = document['errors']
    assert error['file'] == 'strip.png' and 'aspect ratio of 200' in error['error']
    assert infer.main([str(folder / 'strip.png'), '--output', str(tmp_path / 'lone'), *common]) == 2
    wide = tmp_path / 'wide.png'  # 20:1, through with a larger bound
    cv2.imwrite(str(wide), cv2.resize(photo, (400, 20)))
    assert infer.main([str(wide), '--output', str(tmp_path / 'wide'), *common]) == 2
    assert infer.main([str(wide), '--output', str(tmp_path / 'wide'), *common, '--max-aspect-ratio', '25']) == 0
    with pytest.raises(SystemExit) as refused:  # argparse refuses it before any work
        infer.main([str(folder), '--output', str(tmp_path / 'bad'), *common, '--max-aspect-ratio', '0.5'])
    assert refused.value.code == 2
