"""Reading camera bags (openpose_ros.formats.bag_reader): every encoding, recordings without metadata, truncated,
corrupt and killed recordings. Bags written here from real frames."""
import os

import cv2
import numpy as np
import pytest

pytest.importorskip('rosbags')

from conftest import DATA, TEST_MODEL  # noqa: E402
import openpose_ros.messages.typestore as messages  # noqa: E402
from openpose_ros.bag.report import read_report  # noqa: E402
from openpose_ros.formats.bag_reader import BagInput, decode  # noqa: E402
from openpose_ros.messages.conversions import bgr_to_image_msg  # noqa: E402
from openpose_ros.messages.types import StoreTypes, header as make_header  # noqa: E402
from test_bag_evaluate import T0, make_bag, moving_frames, read_bag, run_cli  # noqa: E402
from test_bag_evaluate import model  # noqa: E402,F401  (fixture: the test model with its ONNX export)
from openpose_ros.formats.image_bags import video_to_bag  # noqa: E402
from conftest import VIDEO  # noqa: E402


COCO_MINI = DATA / 'coco' / 'coco-mini'


# --- reading ------------------------------------------------------------------------------------------------
def test_every_supported_encoding_with_padded_rows_decodes_to_the_same_frame(tmp_path):
    frame = moving_frames(1)[0][2][:120, :160]
    store = messages.typestore()
    encodings = ('bgr8', 'rgb8', 'bgra8', 'rgba8', 'mono8')
    types = StoreTypes(store)
    frames = [(T0 + i, bgr_to_image_msg(frame, make_header(types, T0 + i), encoding, 5 + i, types))
              for i, encoding in enumerate(encodings)]
    from rosbags.rosbag2 import Writer
    with Writer(tmp_path / 'bag', version=9) as writer:
        connection = writer.add_connection('/camera', messages.IMAGE, typestore=store)
        for stamp, msg in frames:
            writer.write(connection, stamp, bytes(store.serialize_cdr(msg, messages.IMAGE)))
    with BagInput(tmp_path / 'bag', store) as bag:
        decoded = [decode(f) for f in bag.frames(bag.select_topic())]
    assert len(decoded) == len(encodings)
    for encoding, image in zip(encodings, decoded):
        expected = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) \
            if encoding == 'mono8' else frame
        assert image.shape == frame.shape and np.array_equal(image, expected), encoding


def test_a_recording_without_metadata_is_read_from_its_storage_file(tmp_path):
    bag = make_bag(tmp_path / 'bag', count=3, frames=[(T0 + i, np.full((8, 8, 3), i, np.uint8)) for i in range(3)])
    (bag / 'metadata.yaml').unlink()
    with BagInput(bag, messages.typestore()) as source:
        frames = list(source.frames(source.select_topic()))
        assert [f.index for f in frames] == [0, 1, 2] and 'no metadata.yaml' in source.warnings[0]


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_truncated_or_corrupt_bags_are_clear_errors(tmp_path, caplog, storage):
    bag = make_bag(tmp_path / 'camera', storage, count=3)
    data = next(p for p in bag.iterdir() if p.suffix in ('.db3', '.mcap'))
    size = data.stat().st_size
    os.truncate(data, size // 2)
    assert run_cli(bag, '--weights', TEST_MODEL, '-o', tmp_path / 'out') == 2
    assert 'corrupt, truncated or not a bag' in caplog.text and str(bag) in caplog.text
    caplog.clear()
    data.write_bytes(b'\0' * size)
    assert run_cli(data, '--weights', TEST_MODEL, '-o', tmp_path / 'out') == 2
    assert 'corrupt, truncated or not a bag' in caplog.text
    assert not (tmp_path / 'out' / 'camera_poses').exists()


# --- killed recordings ----------------------------------------------------------------------------------------
def record_ends(path):
    """(opcode, end offset) of each top-level record of an mcap file."""
    ends = []
    with open(path, 'rb') as stream:
        stream.seek(8)
        while True:
            head = stream.read(9)
            if len(head) < 9:
                return ends
            stream.seek(int.from_bytes(head[1:], 'little'), 1)
            ends.append((head[0], stream.tell()))


@pytest.mark.parametrize('cut', ['mid_chunk', 'summary'])
def test_a_killed_mcap_recording_is_read_as_far_as_it_goes(model, tmp_path, caplog, cut):
    count = 6
    # Raw 768x576 frames of a real video: every frame fills a chunk of its own (rosbags closes a chunk at 1 MiB).
    assert video_to_bag(VIDEO, tmp_path / 'camera', storage='mcap', max_frames=count) == count
    data = tmp_path / 'camera' / 'camera.mcap'
    chunk_ends = [end for opcode, end in record_ends(data) if opcode == 0x06]
    assert len(chunk_ends) == count
    if cut == 'mid_chunk':   # a recording killed while writing its fifth chunk: no summary, no footer
        size, recovered = (chunk_ends[3] + chunk_ends[4]) // 2, 4
    else:                    # killed while writing the summary, after the data end record
        size, recovered = next(end for opcode, end in record_ends(data) if opcode == 0x0F) + 5, count
    os.truncate(data, size)
    if cut == 'mid_chunk':   # a killed ros2 bag record writes no metadata.yaml; with one, the mcap file is read
        (tmp_path / 'camera' / 'metadata.yaml').unlink()
    assert run_cli(tmp_path / 'camera', '--weights', model, '-o', tmp_path / 'out', '--no-plots') == 0
    assert f'recovered {recovered} messages from a truncated mcap file' in caplog.text
    report = read_report(tmp_path / 'out' / 'report.json')
    assert report['input']['recovered_messages'] == recovered
    assert report['frames']['processed'] == recovered and report['error'] is None
    assert any(f'recovered {recovered} messages' in warning for warning in report['warnings'])
    output, _ = read_bag(tmp_path / 'out' / 'camera_poses')
    assert len(output['/poses']) == recovered
    frames = [cv2.imdecode(m.data, cv2.IMREAD_COLOR) for _, m in output['/image_annotated/compressed']]
    assert len(frames) == recovered and all(frame.shape == (576, 768, 3) for frame in frames)
