"""Live equals replay: the same recorded frames give the same poses and track ids, frame by frame, whether the
live node receives them over DDS or bag_eval reads them from the bag, with the same parameter file.

The frames are real COCO photos that the test model (test/models/tiny_coco) was trained on, moved and scaled a
little from frame to frame as a camera following people would see them (the video publisher's motion), one photo
after the other (a cut: its tracks end, new ones start), stamped as a 10 Hz camera would stamp them and recorded
into a bag. The node runs as users start it (`python -m openpose_ros.ros.node`, this checkout's code) and
receives the bag's frames with the bag's stamps, one at a time, each sent after the poses of the one before came
back, so none is dropped. bag_eval runs as its executable on the bag.

The parameters make every per-frame rule count: min_pose_score drops some of the poses found, tracking and
smoothing run. A replay that broke one of those rules would differ, and the test checks that it would: bag_eval
with min_pose_score 0, and with smoothing off, must each be found to differ from the node.
"""
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import TEST_MODEL
from ros_helpers import ROOT, SHARED_DATA, require_ros

pytestmark = [pytest.mark.slow, pytest.mark.ros]

PHOTOS = (SHARED_DATA / 'coco' / 'coco-mini' / 'train2017' / '000000072258.jpg',   # a crowd: poses of low score
          SHARED_DATA / 'coco' / 'coco-mini' / 'train2017' / '000000030752.jpg')
FRAMES_PER_PHOTO = 20
MOTION_PX = 20.0
START_NS = 1_700_000_000_123_456_789   # a camera's stamps: the epoch time of each frame, 10 Hz
PERIOD_NS = 100_000_000
PARAMETERS = {'backend': 'onnx', 'device': 'cpu', 'min_pose_score': 0.15, 'track': True, 'smooth': True,
              'qos_reliability': 'reliable', 'publish_annotated': False}
XY_TOLERANCE_PX = 2e-3      # poses.json keeps a thousandth of a pixel, the message float32
SCORE_TOLERANCE = 1e-4      # poses.json keeps 5 decimals, the message float32
FRAME_TIMEOUT_S = 60.0


@pytest.fixture(scope='module')
def camera_bag(tmp_path_factory):
    """The frames, recorded into a bag as a camera driver's would be."""
    from openpose_ros.formats.image_bags import write_image_bag
    from openpose_ros.ros.video_publisher import FrameSource

    frames = [frame for photo in PHOTOS
              for _, frame in FrameSource([str(photo)], motion=MOTION_PX).frames(FRAMES_PER_PHOTO)]
    path = tmp_path_factory.mktemp('live_equals_replay') / 'camera'
    stamped = [(START_NS + index * PERIOD_NS, frame) for index, frame in enumerate(frames)]
    assert write_image_bag(path, stamped) == len(frames)
    return path


def params_file(folder, name, **changes):
    """The node's parameter file (config/pose_estimation.yaml) with PARAMETERS and `changes` applied."""
    document = yaml.safe_load((ROOT / 'config' / 'pose_estimation.yaml').read_text())
    document['/**']['ros__parameters'].update(PARAMETERS, weights=str(TEST_MODEL), **changes)
    path = folder / f'{name}.yaml'
    with path.open('w') as file:
        yaml.safe_dump(document, file)
    return path


def bag_frames(bag):
    """(header stamp, BGR image) of each frame of the bag, in order, as bag_eval reads them."""
    from openpose_ros.formats.bag_reader import BagInput, decode
    from openpose_ros.messages.typestore import typestore
    with BagInput(bag, typestore()) as source:
        return [(frame.header.stamp, decode(frame)) for frame in source.frames(source.select_topic())]


def live_poses(client, bag, parameters):
    """The poses the node publishes for each frame of the bag, sent with the bag's stamps, one at a time."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from openpose_ros.messages.conversions import bgr_to_image_msg, msg_to_poses
    from openpose_ros.msg import Pose2DArray
    from test_pose_estimation import NodeProcess

    node = NodeProcess('--params-file', str(parameters))
    try:
        node.wait_active()
        received = client.listen(node.poses_topic, Pose2DArray)
        by_stamp = {}
        for stamp, image in bag_frames(bag):
            key = (stamp.sec, stamp.nanosec)
            header = Header(stamp=Time(sec=stamp.sec, nanosec=stamp.nanosec), frame_id='camera')
            client.publish(node.camera_topic, bgr_to_image_msg(image, header))
            client.wait_until(lambda: any(_stamp(msg) == key for _, msg in received), FRAME_TIMEOUT_S,
                              f'the poses of the frame stamped {key} from {node.name}')
            by_stamp[key] = msg_to_poses(next(msg for _, msg in received if _stamp(msg) == key))
        code, log = node.interrupt()
        assert code == 0, log
    finally:
        node.kill()
    return list(by_stamp.values())


def _stamp(msg):
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def replayed_poses(bag, parameters, output):
    """The poses bag_eval gives for each frame of the bag (its poses.json), run as its executable."""
    from openpose_ros.formats.poses_json import read_document
    done = subprocess.run([sys.executable, '-m', 'openpose_ros.bag.command', str(bag), '--weights', str(TEST_MODEL),
                           '--backend', PARAMETERS['backend'], '--device', PARAMETERS['device'], '--params-file',
                           str(parameters), '--output', str(output), '--no-plots', '--annotated', 'none', '--quiet'],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    frames = read_document(output / 'poses.json')['frames']
    assert [frame['frame'] for frame in frames] == list(range(len(PHOTOS) * FRAMES_PER_PHOTO))
    expected = [(START_NS + index * PERIOD_NS) * 1e-9 for index in range(len(frames))]
    assert np.allclose([frame['stamp'] for frame in frames], expected, rtol=0, atol=2e-6)  # on the bag's stamps
    return [frame['poses'] for frame in frames]


def differences(live, replayed):
    """Where two runs' poses differ, frame by frame (an empty list when they agree)."""
    if len(live) != len(replayed):
        return [f'{len(live)} frames live, {len(replayed)} replayed']
    found = []
    for index, (ours, theirs) in enumerate(zip(live, replayed)):
        ids, other_ids = [pose.id for pose in ours], [pose.id for pose in theirs]
        if ids != other_ids:
            found.append(f'frame {index}: track ids {ids} live, {other_ids} replayed')
            continue
        for pose, other in zip(ours, theirs):
            if not np.array_equal(pose.found, other.found):
                found.append(f'frame {index} track {pose.id}: other keypoints found')
                continue
            shift = float(np.abs(pose.data - other.data).max())
            score = max(abs(pose.confidence - other.confidence),
                        float(np.abs(pose.keypoint_scores - other.keypoint_scores).max()))
            if shift > XY_TOLERANCE_PX or score > SCORE_TOLERANCE:
                found.append(f'frame {index} track {pose.id}: keypoints {shift:.4g} px apart, scores {score:.3g}')
    return found


def test_the_live_node_and_bag_eval_give_the_same_poses_and_track_ids(client, camera_bag, tmp_path):
    require_ros()
    parameters = params_file(tmp_path, 'pose_estimation')
    live = live_poses(client, camera_bag, parameters)
    replayed = replayed_poses(camera_bag, parameters, tmp_path / 'replay')

    assert differences(live, replayed) == []
    # The frames exercise what is compared: people in every frame, several tracks, new ones after the cut.
    assert all(live), [len(poses) for poses in live]
    ids = [{pose.id for pose in poses} for poses in live]
    assert min(min(frame) for frame in ids) >= 0
    assert len(set().union(*ids[:FRAMES_PER_PHOTO])) >= 2
    assert not set().union(*ids[:FRAMES_PER_PHOTO]) & set().union(*ids[FRAMES_PER_PHOTO:])

    # A replay that kept the poses under min_pose_score, or did not smooth, would be caught.
    unfiltered = replayed_poses(camera_bag, params_file(tmp_path, 'unfiltered', min_pose_score=0.0),
                                tmp_path / 'unfiltered')
    assert sum(map(len, unfiltered)) > sum(map(len, live))
    assert differences(live, unfiltered)
    unsmoothed = replayed_poses(camera_bag, params_file(tmp_path, 'unsmoothed', smooth=False), tmp_path / 'unsmoothed')
    assert differences(live, unsmoothed)
