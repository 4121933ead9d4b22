"""bag_eval's care of the user's files and of broken inputs and outputs: --overwrite removes only its own output
bag, bad ranges are refused before any work, a full disk, a file size limit or a read-only folder end the run
with a readable output bag and a report, a killed mcap recording is read as far as it goes, and the annotated
images are JPEG by default. Real bags, real frames, real filesystems (a tmpfs and a read-only bind mount when
running as root)."""
import contextlib
import json
import subprocess

import cv2
import pytest

pytest.importorskip('rosbags')

from conftest import ROOT  # noqa: E402
from filesystems import limit_file_size, mounted, read_only_folder  # noqa: E402
import openpose_ros.messages.typestore as messages  # noqa: E402
from openpose_ros.bag.report import read_report  # noqa: E402
from openpose_ros.bag.writer import FREE_SPACE_MARGIN, MARKER_NAME  # noqa: E402
from openpose_ros.formats.bag_reader import BagInput  # noqa: E402
from test_bag_evaluate import LOG_DELAY, PERIOD, T0, WITHOUT_ROS, make_bag, moving_frames, read_bag  # noqa: E402
from test_bag_evaluate import run_cli  # noqa: E402
from test_bag_evaluate import learner, model  # noqa: E402,F401  (fixtures: the test model with its ONNX export)


MiB = 2**20


def bag_messages(path):
    """{topic: [log times]} of a bag folder or file, read with BagInput (which reads a folder without
    metadata.yaml from its storage file)."""
    out = {}
    with BagInput(path, messages.typestore()) as bag:
        for connection, log_time, _ in bag.reader.messages(list(bag.reader.connections)):
            out.setdefault(connection.topic, []).append(log_time)
    return out


# --- --overwrite ----------------------------------------------------------------------------------------------
def test_overwrite_never_removes_a_folder_that_bag_eval_did_not_write(model, tmp_path, caplog):
    bag = make_bag(tmp_path / 'camera', count=1)
    theirs = tmp_path / 'out' / 'camera_poses'
    theirs.mkdir(parents=True)
    for name in ('robot.yaml', 'metadata.yaml'):
        (theirs / name).write_text(f'{name}: keep me\n')
    assert run_cli(bag, '--weights', model, '-o', tmp_path / 'out', '--overwrite') == 2
    assert 'is not an output bag of bag_eval' in caplog.text
    assert sorted(p.name for p in theirs.iterdir()) == ['metadata.yaml', 'robot.yaml']
    assert (theirs / 'robot.yaml').read_text() == 'robot.yaml: keep me\n'


def test_overwrite_replaces_its_own_output_bag_and_nothing_with_other_files(model, tmp_path, caplog):
    bag = make_bag(tmp_path / 'camera', count=2)
    output_bag = tmp_path / 'out' / 'camera_poses'
    assert run_cli(bag, '--weights', model, '-o', tmp_path / 'out', '--no-plots') == 0
    assert MARKER_NAME in {p.name for p in output_bag.iterdir()}
    assert run_cli(bag, '--weights', model, '-o', tmp_path / 'out', '--no-plots') == 2
    assert 'exists already' in caplog.text
    first = (output_bag / 'camera_poses.db3').stat().st_mtime_ns
    assert run_cli(bag, '--weights', model, '-o', tmp_path / 'out', '--no-plots', '--overwrite') == 0
    assert (output_bag / 'camera_poses.db3').stat().st_mtime_ns > first
    assert len(read_bag(output_bag)[0]['/poses']) == 2
    (output_bag / 'notes.txt').write_text('mine\n')
    caplog.clear()
    assert run_cli(bag, '--weights', model, '-o', tmp_path / 'out', '--no-plots', '--overwrite') == 2
    assert 'holds files that bag_eval did not write (notes.txt)' in caplog.text
    assert (output_bag / 'notes.txt').read_text() == 'mine\n' and len(read_bag(output_bag)[0]['/poses']) == 2


def test_earlier_outputs_in_the_output_folder_are_refused_unless_overwrite(model, tmp_path, caplog):
    bag = make_bag(tmp_path / 'camera', count=2)
    out = tmp_path / 'out'
    out.mkdir()
    mine = {'report.json': 'my report\n', 'poses.json': 'my poses\n'}
    for name, text in mine.items():
        (out / name).write_text(text)
    # Refused before the model loads: the weights, which do not exist, are never looked at.
    assert run_cli(bag, '--weights', tmp_path / 'nothing.pth', '-o', out) == 2
    assert f'{out / "report.json"} exists already; pass --overwrite' in caplog.text
    assert {p.name: p.read_text() for p in out.iterdir()} == mine
    assert run_cli(bag, '--weights', model, '-o', out, '--no-plots', '--overwrite') == 0
    assert read_report(out / 'report.json')['frames']['processed'] == 2
    assert len(json.loads((out / 'poses.json').read_text())['frames']) == 2


def test_an_output_inside_the_input_bag_is_refused(model, tmp_path, caplog):
    bag = make_bag(tmp_path / 'camera', count=1)
    before = {p.name: p.read_bytes() for p in bag.iterdir()}
    for output in (['-o', bag], ['-o', bag / 'eval'], ['-o', tmp_path / 'out', '--output-bag', bag / 'poses']):
        caplog.clear()
        assert run_cli(bag, '--weights', model, *output) == 2
        assert f'is inside the input bag {bag}' in caplog.text
    assert {p.name: p.read_bytes() for p in bag.iterdir()} == before
    assert not (tmp_path / 'out').exists()


# --- broken outputs -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def small_disk(folder, size):
    """A tmpfs of `size` bytes mounted on `folder`: a real filesystem that fills up."""
    folder.mkdir()
    mounted(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs'], folder,
            'test_a_file_size_limit_mid_run... covers a write failing at the OS level')
    try:
        yield folder
    finally:
        subprocess.run(['umount', '-l', str(folder)], check=True)


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_a_full_disk_mid_run_closes_the_output_bag_and_writes_the_report(model, tmp_path, caplog, storage):
    count = 16
    bag = make_bag(tmp_path / 'camera', storage, count=count)
    # Raw annotated frames of ~0.8 MB: the disk holds the margin kept free and a few frames.
    with small_disk(tmp_path / 'disk', FREE_SPACE_MARGIN + 6 * MiB) as disk:
        status = run_cli(bag, '--weights', model, '-o', disk / 'out', '--annotated', 'raw', '--no-plots')
        assert status == 2
        assert f'the disk of the output bag {disk / "out" / "camera_poses"} is full' in caplog.text
        report = read_report(disk / 'out' / 'report.json')
        processed = report['frames']['processed']
        assert 0 < processed < count and 'is full' in report['error']
        output, _ = read_bag(disk / 'out' / 'camera_poses')          # through its metadata.yaml
        written = len(output['/poses'])
        # The frame that found the disk full was processed, not written.
        assert written == len(output['/image_annotated']) == processed - 1
        assert report['output']['messages'] == {'/poses': written, '/image_annotated': written}
        assert f'{processed} frames processed, {written} in the output bag' in caplog.text
        assert [messages.stamp_ns(m.header) for _, m in output['/poses']] == \
            [T0 + i * PERIOD for i in range(written)]


@pytest.mark.slow
@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_a_file_size_limit_mid_run_leaves_a_readable_bag_and_a_true_report(model, tmp_path, storage):
    count = 10
    bag = make_bag(tmp_path / 'camera', storage, count=count)
    out = tmp_path / 'out'
    done = subprocess.run([*WITHOUT_ROS, str(bag), '--weights', str(model), '-o', str(out), '--annotated', 'raw',
                           '--no-plots', '--quiet'], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=limit_file_size(4 * MiB))
    assert done.returncode == 2, done.stderr
    assert 'Traceback' not in done.stderr and 'writing the output bag' in done.stderr
    report = read_report(out / 'report.json')
    assert 0 < report['frames']['processed'] < count and 'writing the output bag' in report['error']
    written = bag_messages(out / 'camera_poses')
    held = report['output']['messages']
    assert 0 < len(written['/poses']) == held['/poses'] == len(written['/image_annotated']) <= \
        report['frames']['processed']
    assert written['/poses'] == [T0 + i * PERIOD + LOG_DELAY for i in range(held['/poses'])]
    in_bag = [frame for frame in report['per_frame'] if frame.get('output_log_time_ns') is not None]
    assert [frame['output_log_time_ns'] for frame in in_bag] == written['/poses']
    assert f'{held["/poses"]} in the output bag' in done.stderr
    if storage == 'mcap':   # ended after its last complete chunk; no metadata.yaml, and the report says so
        assert 'ended without an index' in report['error'] and 'ros2 bag reindex' in report['error']


def test_a_read_only_output_folder_is_a_clear_error(model, tmp_path, caplog):
    bag = make_bag(tmp_path / 'camera', count=1)
    with read_only_folder(tmp_path / 'locked') as locked:
        assert run_cli(bag, '--weights', model, '-o', locked, '--no-plots') == 2
        assert f'cannot write into {locked}' in caplog.text and 'choose another output folder' in caplog.text
        assert [p.name for p in locked.iterdir()] == ['before.txt']
        caplog.clear()
        assert run_cli(bag, '--weights', model, '-o', tmp_path / 'out', '--output-bag', locked / 'poses') == 2
        assert f'cannot write into {locked}' in caplog.text
        assert not (tmp_path / 'out' / 'report.json').exists()


# --- annotated images -----------------------------------------------------------------------------------------
def test_annotated_images_are_jpeg_by_default_and_raw_on_request(model, tmp_path):
    bag = make_bag(tmp_path / 'camera', count=3)
    sizes = {}
    for annotated in (None, 'raw'):
        out = tmp_path / f'out_{annotated}'
        assert run_cli(bag, '--weights', model, '-o', out, '--no-plots',
                       *(['--annotated', annotated] if annotated else [])) == 0
        output, types = read_bag(out / 'camera_poses')
        sizes[annotated] = (out / 'camera_poses' / 'camera_poses.db3').stat().st_size
        if annotated is None:
            assert types == {'/poses': messages.POSE_ARRAY,
                             '/image_annotated/compressed': messages.COMPRESSED_IMAGE}
            jpeg = output['/image_annotated/compressed'][0][1]
            assert jpeg.format == 'bgr8; jpeg compressed bgr8'
            assert cv2.imdecode(jpeg.data, cv2.IMREAD_COLOR).shape == moving_frames(1)[0][2].shape
        else:
            assert types == {'/poses': messages.POSE_ARRAY, '/image_annotated': messages.IMAGE}
    assert sizes[None] * 5 < sizes['raw']
