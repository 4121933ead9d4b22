"""pose_estimation_node's health over time: memory across lifecycle cycles, diagnostics of failing frames.

Real node processes over DDS with the small test model, as in test_pose_estimation.py (whose process and client classes
this module reuses).
"""
import time

import cv2
import numpy as np
import pytest

from conftest import TEST_MODEL
from test_pose_estimation import ONE_PERSON, NodeProcess, image_msg, stamp_of


def stream_frames(client, topic, image, rate=10.0):
    """Publishes `image` on `topic` at `rate` Hz while the client spins (a timer of the client's node)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    publisher = client.node.create_publisher(type(image_msg(image)), topic,
                                             QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    return client.node.create_timer(1.0 / rate, lambda: publisher.publish(image_msg(image)))


@pytest.mark.slow
@pytest.mark.ros
def test_memory_stays_flat_over_lifecycle_cycles_with_frames_flowing(client):
    """Each cycle unloads and reloads the model, with frames flowing. Resident memory after each activation,
    after a few cycles of warm-up, stays within a few MiB (it grew by 1 to 3.5 MiB a cycle when every activation
    started a worker thread of its own and the transitions shared the executor with a timer)."""
    cycles, warm_up = 16, 4
    node = NodeProcess()
    node.wait_active()
    try:
        timer = stream_frames(client, node.camera_topic, cv2.imread(str(ONE_PERSON)))
        client.spin(1.0)
        rss = []
        for cycle in range(cycles):
            assert client.change_state(node.name, 'deactivate')
            assert client.change_state(node.name, 'activate')
            client.spin(0.5)  # frames flow through the reloaded model
            rss.append(node.rss_mib())
        client.node.destroy_timer(timer)
        print(f'\nresident memory after each activation (MiB): {[round(value) for value in rss]}')
        growth = rss[-1] - rss[warm_up - 1]
        assert growth < 12, f'{growth:.0f} MiB more after {cycles - warm_up} cycles: {rss}'
        assert node.process.poll() is None
    finally:
        code, log = node.interrupt()
    assert code == 0, log


def test_rejection_causes_and_echoes_leave_out_the_values_a_message_brings():
    from openpose_ros.messages.conversions import image_msg_to_bgr
    from openpose_ros.ros.pose_estimation import ECHO_LIMIT, echo, rejection_cause

    causes, echoes = set(), []
    for encoding in ('yuv422', 'x' * 5000, 'bad\nencoding\x1b[31m', "it's"):
        msg = image_msg(np.zeros((4, 4, 3), np.uint8), encoding='bgr8')
        msg.encoding = encoding
        with pytest.raises(ValueError) as error:
            image_msg_to_bgr(msg)
        causes.add(rejection_cause(error.value))
        echoes.append(echo(error.value))
    assert causes == {'unsupported image encoding'}
    assert all(len(text) <= 4 * ECHO_LIMIT and text.isprintable() for text in echoes), echoes
    assert "'yuv422'" in echoes[0] and 'x' * (ECHO_LIMIT - 3) + '...' in echoes[1]


def failing_model(folder):
    """The test model with its ONNX network fixed to 64 x 64 pixel input: it loads, and every real frame fails
    in ONNX Runtime (invalid input dimensions), as a model exported for another input would."""
    import shutil

    import onnx

    from openpose_ros.learner import LightweightOpenPoseLearner

    model = folder / TEST_MODEL.name
    shutil.copytree(TEST_MODEL, model)
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=str(folder / 'export'))
    learner.load(model)
    graph = onnx.load(str(learner.optimize()))
    for dimension in graph.graph.input[0].type.tensor_type.shape.dim[2:]:
        dimension.ClearField('dim_param')
        dimension.dim_value = 64
    onnx.save(graph, str(model / f'{model.name}.onnx'))
    listed_as_saved(model, f'{model.name}.onnx')
    return model


def listed_as_saved(model, name):
    """Lists the file `name` in the model folder's metadata with its checksum, as learner.save() would."""
    import json

    from openpose_ros.files import file_sha256, write_text

    metadata_path = model / f'{model.name}.json'
    metadata = json.loads(metadata_path.read_text())
    metadata['onnx'] = name
    metadata['sha256'][name] = file_sha256(model / name)
    write_text(metadata_path, json.dumps(metadata, indent=2))


@pytest.mark.slow
@pytest.mark.ros
def test_diagnostics_report_failing_frames_as_an_error_by_cause(client, tmp_path):
    node = NodeProcess('-p', 'backend:=onnx', weights=failing_model(tmp_path))
    node.wait_active()
    try:
        assert 'tiny_coco.onnx' in node.log or 'onnxruntime' in node.log
        timer = stream_frames(client, node.camera_topic, cv2.imread(str(ONE_PERSON)))
        status = client.diagnostics(node.name, timeout=60, condition=lambda s: int(s['frames_failed']) >= 10)
        client.node.destroy_timer(timer)
        print(f'\n{status["message"]}')
        assert status['level'] == 2, status  # ERROR: every frame of the window failed
        assert int(status['frames_processed']) == 0 and 'failed' in status['message']
        causes = {key: int(value) for key, value in status.items() if key.startswith('failed: ')}
        assert sum(causes.values()) == int(status['frames_failed']) and len(causes) == 1, causes
        errors = [line for line in node.lines if 'processing a frame failed' in line]
        assert 1 <= len(errors) <= 3, errors  # one per cause per 5 s
    finally:
        code, log = node.interrupt()
    assert code == 0, log


@pytest.mark.slow
@pytest.mark.ros
def test_a_flood_of_distinct_bad_encodings_gives_few_short_warnings_and_one_cause(client):
    from openpose_ros.msg import Pose2DArray

    node = NodeProcess()
    node.wait_active()
    try:
        photo = cv2.imread(str(ONE_PERSON))
        bad_frames = 200
        poses = client.listen(node.poses_topic, Pose2DArray)
        client.wait_for_publisher(node.poses_topic)
        for index in range(bad_frames):
            msg = image_msg(photo)
            msg.encoding = f'{index}-' + 'z' * 20000
            client.publish(node.camera_topic, msg)
            client.spin(0.01)
        status = client.diagnostics(node.name, after=time.time(), timeout=30, condition=lambda s: int(
            s['frames_rejected']) + int(s['frames_dropped']) == int(s['frames_received']) >= 20)
        rejected = int(status['frames_rejected'])
        assert status['level'] == 2 and 'rejected' in status['message'], status  # none processed: ERROR
        assert status['rejected: unsupported image encoding'] == str(rejected) and rejected > 10, status
        assert len(status['last_rejection']) <= 256 and len(status['message']) <= 512, status
        warnings = [line for line in node.lines if 'rejected an input frame' in line]
        assert 1 <= len(warnings) <= 3 and all(len(line) < 600 for line in warnings), warnings
        # Good frames again: a window with some processed frames and some refused ones only warns.
        good = image_msg(photo)
        client.publish(node.camera_topic, good)
        client.wait_until(lambda: stamp_of(good) in {stamp_of(msg) for _, msg in poses}, 30, 'poses of a good frame')
        status = client.diagnostics(node.name, after=time.time())
        assert status['level'] in (0, 1), status
    finally:
        code, log = node.interrupt()
    assert code == 0, log
    assert len(log) < 20000, f'{len(log)} characters of log'


@pytest.mark.slow
@pytest.mark.ros
def test_decimal_parameters_take_whole_numbers_at_start_and_at_run_time(client):
    from openpose_ros.msg import Pose2DArray

    node = NodeProcess('-p', 'annotated_max_rate:=0', '-p', 'min_pose_score:=0')  # the README's "0 = every frame"
    node.wait_active()
    try:
        poses = client.listen(node.poses_topic, Pose2DArray)
        client.wait_for_publisher(node.poses_topic)

        def poses_of_a_frame():
            frame = image_msg(cv2.imread(str(ONE_PERSON)))
            client.publish(node.camera_topic, frame)
            client.wait_until(lambda: stamp_of(frame) in {stamp_of(msg) for _, msg in poses}, 30, 'poses')
            return next(msg for _, msg in poses if stamp_of(msg) == stamp_of(frame)).poses

        assert len(poses_of_a_frame()) >= 1
        # As `ros2 param set /pose_estimation min_pose_score 1` sends it: an integer. It takes effect (the test
        # model scores people 0.5-0.7), and its range is still checked.
        assert client.set_parameters(node.name, min_pose_score=1) == {'min_pose_score': (True, '')}
        assert len(poses_of_a_frame()) == 0
        assert client.set_parameters(node.name, min_pose_score=0) == {'min_pose_score': (True, '')}
        assert len(poses_of_a_frame()) >= 1
        ((successful, reason),) = client.set_parameters(node.name, min_pose_score=2).values()
        assert not successful and 'min_pose_score must be in [0, 1], got 2' in reason, reason
        ((successful, reason),) = client.set_parameters(node.name, smoothing_beta='fast').values()
        assert not successful and 'smoothing_beta must be a double' in reason, reason
        ((successful, reason),) = client.set_parameters(node.name, upsample_ratio=2.0).values()
        assert not successful and 'type' in reason.lower(), reason  # rclpy's: an int stays an int
    finally:
        code, log = node.interrupt()
    assert code == 0, log
    assert 'min_pose_score=1.0' in log and 'min_pose_score=0.0' in log, log
