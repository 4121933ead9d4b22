"""bag_eval: camera bags (sqlite3, mcap; raw and compressed) written here from real frames, evaluated with the
test model, read back with rosbags. No rclpy anywhere."""
import json
import subprocess
import sys
from pathlib import Path
import math

import cv2
import numpy as np
import pytest

pytest.importorskip('rosbags')

from conftest import DATA, ROOT, TEST_MODEL  # noqa: E402
from test_lifting import PERSON_DEPTHS  # noqa: E402
import openpose_ros.messages.typestore as messages  # noqa: E402
from openpose_ros.bag.evaluate import BagEvalOptions, evaluate_bag  # noqa: E402
from openpose_ros.bag.report import read_report  # noqa: E402
from openpose_ros.bag import command as bag_eval  # noqa: E402
from openpose_ros.formats.bag_reader import BagError, BagInput, decode  # noqa: E402
from openpose_ros.formats.image_bags import write_image_bag  # noqa: E402
from openpose_ros.formats.poses_json import read_document  # noqa: E402
from openpose_ros.messages.conversions import bgr_to_image_msg, msg_to_poses  # noqa: E402
from openpose_ros.messages.types import StoreTypes, header as make_header  # noqa: E402
from openpose_ros.runtime.loading import load_for_inference  # noqa: E402
from test_bodies import expected_skeleton, skeleton2d_msg_constants  # noqa: E402


# A training image of the test model with two people (coco-mini train2017); the model finds these people.
COCO_MINI = DATA / 'coco' / 'coco-mini'
TWO_PEOPLE_ID = 442450
TWO_PEOPLE = COCO_MINI / 'train2017' / '000000442450.jpg'
TRAIN_ANNOTATIONS = COCO_MINI / 'annotations' / 'person_keypoints_train2017.json'
T0 = 1_700_000_000_000_000_000      # stamps of the test bags (ns)
PERIOD = 100_000_000                # 10 Hz
LOG_DELAY = 7_000_000               # the recorder logs each frame 7 ms after its stamp


# --- frames -------------------------------------------------------------------------------------------------
def motion(index):
    """The affine map of frame `index`: a walk to the right and down, slowly growing (2x3 matrix)."""
    scale = 1.0 + 0.01 * index
    return np.array([[scale, 0.0, 6.0 * index], [0.0, scale, 3.0 * index]])


def moving_frames(count):
    """(stamp_ns, log_time_ns, frame): the real photo moved a little from frame to frame."""
    photo = cv2.imread(str(TWO_PEOPLE))
    height, width = photo.shape[:2]
    return [(T0 + i * PERIOD, T0 + i * PERIOD + LOG_DELAY,
             cv2.warpAffine(photo, motion(i), (width, height), borderMode=cv2.BORDER_REPLICATE))
            for i in range(count)]


def frame_annotations(count, by='stamp_ns'):
    """COCO keypoint annotations of the moving frames: the photo's official annotations moved like the frames."""
    coco = json.loads(TRAIN_ANNOTATIONS.read_text())
    photo = next(image for image in coco['images'] if image['id'] == TWO_PEOPLE_ID)
    people = [a for a in coco['annotations'] if a['image_id'] == TWO_PEOPLE_ID]
    images, annotations = [], []
    for index in range(count):
        image = dict(photo, id=1000 + index, file_name=f'frame{index}')
        if by == 'stamp_ns':
            image['stamp_ns'] = T0 + index * PERIOD
        else:
            image['frame_index'] = index
        images.append(image)
        matrix = motion(index)
        for person in people:
            points = np.array(person['keypoints'], np.float64).reshape(-1, 3)
            labelled = points[:, 2] > 0
            points[labelled, :2] = points[labelled, :2] @ matrix[:, :2].T + matrix[:, 2]
            x, y, w, h = person['bbox']
            corner = np.array([x, y]) @ matrix[:, :2].T + matrix[:, 2]
            annotations.append(dict(person, id=len(annotations) + 1, image_id=image['id'],
                                    keypoints=points.reshape(-1).tolist(),
                                    bbox=[*corner.tolist(), w * matrix[0, 0], h * matrix[1, 1]],
                                    area=person['area'] * matrix[0, 0] ** 2))
    return {'images': images, 'annotations': annotations, 'categories': coco['categories']}


def make_bag(path, storage='sqlite3', compressed=False, count=8, frames=None, **options):
    frames = frames if frames is not None else moving_frames(count)
    write_image_bag(path, frames, storage=storage, compressed=compressed, **options)
    return path


def read_bag(path):
    """{topic: [(log_time, message)]} of a bag, deserialised with the package's typestore."""
    from rosbags.rosbag2 import Reader
    store = messages.typestore()
    out = {}
    with Reader(path) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for connection, log_time, raw in reader.messages():
            out.setdefault(connection.topic, []).append((log_time, store.deserialize_cdr(raw, connection.msgtype)))
    return out, types


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    """The test model saved with its ONNX export, so that every run here (and the executable's 'auto' backend)
    uses ONNX Runtime without exporting again."""
    if not TEST_MODEL.is_dir():
        pytest.fail(f'the test model is missing: {TEST_MODEL} (benchmarks/overfit.py makes it)')
    folder = tmp_path_factory.mktemp('model')
    learner, _, _ = load_for_inference(TEST_MODEL, 'cpu', 'onnx', temp_path=folder / 'export')
    return learner.save(folder / 'tiny_onnx')


@pytest.fixture(scope='module')
def learner(model):
    learner, _, backend = load_for_inference(model, 'cpu', 'auto', precision='fp32')
    assert backend == 'openvino-cpu-fp32'
    return learner


def people_boxes(index):
    """The annotated boxes (x, y, w, h) of the two people in moving frame `index`, left to right."""
    annotations = frame_annotations(index + 1)
    return sorted((a['bbox'] for a in annotations['annotations'] if a['image_id'] == 1000 + index),
                  key=lambda box: box[0])


def person_ids(poses, index):
    """For each annotated person of frame `index` (left to right), the id of the whole pose (>= 10 keypoints)
    centred on them, None where there is none."""
    def inside(pose, box):
        x, y, w, h = pose.bbox
        return box[0] <= x + w / 2 <= box[0] + box[2] and box[1] <= y + h / 2 <= box[1] + box[3]
    return tuple(next((pose.id for pose in big_poses(poses) if inside(pose, box)), None)
                 for box in people_boxes(index))


def finds_both_people(poses, index):
    return None not in person_ids(poses, index)


def run_eval(learner, bag, output, **options):
    return evaluate_bag(learner, BagEvalOptions(str(bag), str(output), progress=False, **options), 'onnx')


def big_poses(poses, keypoints=10):
    """The poses of whole people (at least `keypoints` keypoints), left to right."""
    return sorted((p for p in poses if p.found.sum() >= keypoints), key=lambda p: p.bbox[0])


# Runs Python with ROS 2's Python packages made unimportable: bag_eval must not need them.
WITHOUT_ROS = [sys.executable, '-c', 'import sys\n'
               'for name in ("rclpy", "sensor_msgs", "std_msgs", "builtin_interfaces", "openpose_ros.msg"):\n'
               '    sys.modules[name] = None\n'
               'from openpose_ros.bag.command import main\n'
               'sys.exit(main(sys.argv[1:]))']


# --- the run ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('storage,compressed', [('sqlite3', False), ('sqlite3', True), ('mcap', False),
                                                ('mcap', True)])
def test_output_bag_has_a_message_per_frame_with_its_stamps_and_stable_ids(learner, tmp_path, storage,
                                                                           compressed):
    count = 8
    bag = make_bag(tmp_path / 'camera', storage, compressed, count)
    result = run_eval(learner, bag, tmp_path / 'out', annotated='raw')
    output, types = read_bag(result.output_bag)
    suffix = '.mcap' if storage == 'mcap' else '.db3'
    assert (result.output_bag / f'camera_poses{suffix}').is_file()
    assert types == {'/poses': messages.POSE_ARRAY, '/image_annotated': messages.IMAGE}
    stamps = [T0 + i * PERIOD for i in range(count)]
    for topic in ('/poses', '/image_annotated'):
        assert [log for log, _ in output[topic]] == [s + LOG_DELAY for s in stamps]
        assert [messages.stamp_ns(m.header) for _, m in output[topic]] == stamps
        assert {m.header.frame_id for _, m in output[topic]} == {'camera'}

    frames = [msg_to_poses(m) for _, m in output['/poses']]
    # The test model finds both people in (nearly) every frame ...
    assert sum(finds_both_people(poses, index) for index, poses in enumerate(frames)) >= count - 1
    # ... and the ids in the bag are those the tracker gives on these frames and stamps.
    learner.reset()
    with BagInput(bag, messages.typestore()) as source:
        direct = [learner.infer(decode(frame), 4, True, True, frame.stamp_ns / 1e9)
                  for frame in source.frames(source.select_topic())]
    assert [[p.id for p in poses] for poses in frames] == [[p.id for p in poses] for poses in direct]
    for got, expected in zip(frames, direct):
        for a, b in zip(got, expected):
            assert np.abs(a.data - b.data).max() < 1e-3
    annotated = output['/image_annotated'][0][1]
    original = moving_frames(1)[0][2]
    drawn = annotated.data.reshape(annotated.height, annotated.width, 3)
    assert drawn.shape == original.shape and annotated.encoding == 'bgr8'
    assert np.mean(np.any(drawn != original, axis=2)) > 0.002, 'no skeleton drawn'
    assert_report_matches_bag(result.report_path, output)


def test_each_person_keeps_one_id_over_moving_frames(learner, tmp_path):
    """With the node's parameters (min_keypoints 3). With the library's min_keypoints 2, a 2-keypoint fragment of
    the right person takes its track id in some frames (tracking.similarity averages OKS over the keypoints two
    poses share, so a fragment can score higher than the whole person)."""
    count = 12
    result = run_eval(learner, make_bag(tmp_path / 'camera', count=count), tmp_path / 'out', annotated='none',
                      plots=False)
    output, _ = read_bag(result.output_bag)
    ids = {person_ids(msg_to_poses(msg), index) for index, (_, msg) in enumerate(output['/poses'])}
    assert len(ids) == 1 and None not in next(iter(ids)), f'ids of the two people over the frames: {ids}'
    assert result.report['tracks']['id_breaks'] == 0


def assert_report_matches_bag(report_path, output):
    report = read_report(report_path)
    poses = [msg_to_poses(m) for _, m in output['/poses']]
    assert report['frames']['processed'] == len(poses) == report['output']['messages']['/poses']
    assert report['people']['poses'] == sum(len(p) for p in poses)
    processed = [f for f in report['per_frame'] if f['status'] == 'processed']
    assert [f['people'] for f in processed] == [len(p) for p in poses]
    assert [sorted(f['ids']) for f in processed] == [sorted(pose.id for pose in p) for p in poses]
    ids = {pose.id for p in poses for pose in p}
    assert report['tracks']['count'] == len(ids) == len(report['track_list'])
    for track in report['track_list']:
        assert track['frames'] == sum(any(pose.id == track['id'] for pose in p) for p in poses)
    written = read_document(report['output']['poses_json'])['frames']
    assert [[p.id for p in f['poses']] for f in written] == [[p.id for p in frame] for frame in poses]
    for frame, expected in zip(written, poses):
        for pose, want in zip(frame['poses'], expected):
            assert np.allclose(pose.data, want.data, atol=0.01)
    assert report['timing']['processing_ms']['p50'] > 0 and report['timing']['processing_fps'] > 0
    assert not report['interrupted'] and report['error'] is None
    for plot in report['plots']:
        assert Path(plot).stat().st_size > 1000 and cv2.imread(plot) is not None


def test_frames_without_header_stamps_use_the_log_time_and_start_end_select_frames(learner, tmp_path):
    frames = [(0, log, frame) for _, log, frame in moving_frames(6)]
    bag = make_bag(tmp_path / 'camera', frames=frames)
    result = run_eval(learner, bag, tmp_path / 'out', start=0.15, end=0.45, namespace='robot1')
    report = result.report
    # Log times are 0, 0.1, ..., 0.5 s from the bag start: [0.15, 0.45) holds frames 2, 3 and 4.
    assert [f['index'] for f in report['per_frame']] == [2, 3, 4]
    assert [f['stamp_ns'] for f in report['per_frame']] == [frames[i][1] for i in (2, 3, 4)]
    assert report['frames']['stamps_from_log_time'] == 3
    output, types = read_bag(result.output_bag)
    assert types == {'/robot1/poses': messages.POSE_ARRAY,
                     '/robot1/image_annotated/compressed': messages.COMPRESSED_IMAGE}
    assert [messages.stamp_ns(m.header) for _, m in output['/robot1/poses']] == [0, 0, 0]   # headers copied
    assert [log for log, _ in output['/robot1/poses']] == [frames[i][1] for i in (2, 3, 4)]
    jpeg = output['/robot1/image_annotated/compressed'][0][1]
    assert cv2.imdecode(jpeg.data, cv2.IMREAD_COLOR).shape == frames[0][2].shape
    assert all(finds_both_people(msg_to_poses(m), index) for index, (_, m) in
               zip((2, 3, 4), output['/robot1/poses']))


def test_coco_ap_of_annotated_frames(learner, tmp_path):
    count = 4
    bag = make_bag(tmp_path / 'camera', count=count)
    by_stamp = tmp_path / 'by_stamp.json'
    by_stamp.write_text(json.dumps(frame_annotations(count, 'stamp_ns')))
    by_index = frame_annotations(count, 'frame_index')
    # Annotations of other frames: the people are where they are in another frame.
    shuffled = frame_annotations(count, 'frame_index')
    for image in shuffled['images']:
        image['frame_index'] = count - 1 - image['frame_index']
    (tmp_path / 'by_index.json').write_text(json.dumps(by_index))
    (tmp_path / 'shuffled.json').write_text(json.dumps(shuffled))
    coco = {}
    for name in ('by_stamp', 'by_index', 'shuffled'):
        report = run_eval(learner, bag, tmp_path / name, annotations=str(tmp_path / f'{name}.json'),
                          annotated='none', plots=False).report
        coco[name] = report['coco']
        assert coco[name]['evaluated_frames'] == count and coco[name]['detections'] >= 2 * count
        assert 0 < coco[name]['unsmoothed']['AP'] <= 1
    assert coco['by_stamp'] == dict(coco['by_index'], results=coco['by_stamp']['results'])
    # Both people found in every frame (the test model's keypoints are coarse: AP50, not AP, is the claim; the
    # smoothed poses trail the moving people a little, so the claim is on the poses before smoothing) ...
    assert coco['by_stamp']['unsmoothed']['AP50'] >= 0.9 and coco['by_stamp']['AP50'] >= 0.6
    # ... and nowhere near where the annotations of other frames put them.
    assert coco['shuffled']['unsmoothed']['AP50'] < 0.5 and coco['shuffled']['AP50'] < 0.5
    assert coco['shuffled']['AP'] < coco['by_stamp']['AP'] / 2


def test_a_node_parameter_file_configures_the_run(learner, model, tmp_path, caplog):
    bag = make_bag(tmp_path / 'camera', count=3)
    baseline = run_eval(learner, bag, tmp_path / 'default', annotated='none', plots=False).report
    scores = [pose.confidence for frame in read_document(baseline['output']['poses_json'])['frames']
              for pose in frame['poses']]
    threshold = round(float(np.median(scores)) + 1e-3, 4)
    params = tmp_path / 'params.yaml'
    params.write_text(f'/**:\n  ros__parameters:\n    track: false\n    min_pose_score: {threshold}\n'
                      f'    weights: download\n'
                      f'/robot/pose_estimation:\n  ros__parameters:\n    upsample_ratio: 2\n')
    status = run_cli(bag, '--weights', model, '--params-file', params, '-o', tmp_path / 'out', '--no-plots')
    assert status == 0
    report = read_report(tmp_path / 'out' / 'report.json')
    assert report['model']['node_settings']['upsample_ratio'] == 2
    assert 0 < report['people']['poses'] < baseline['people']['poses']
    assert report['tracks']['count'] == 0
    output, _ = read_bag(tmp_path / 'out' / 'camera_poses')
    assert {pose.id for _, m in output['/poses'] for pose in msg_to_poses(m)} == {-1}
    assert all(pose.confidence >= threshold for _, m in output['/poses'] for pose in msg_to_poses(m))
    params.write_text('/**:\n  ros__parameters:\n    min_pose_score: .nan\n')
    assert run_cli(bag, '--weights', model, '--params-file', params, '-o', tmp_path / 'bad') == 2
    assert 'min_pose_score must be a finite number, got nan' in caplog.text


# --- errors -------------------------------------------------------------------------------------------------
def run_cli(*args):
    return bag_eval.main([*map(str, args), '--quiet'])


def test_a_bag_breaking_off_mid_way_keeps_what_was_done(learner, tmp_path, monkeypatch):
    bag = make_bag(tmp_path / 'camera', count=5)
    original = BagInput.frames

    def breaking(self, topic, *selection):
        real = self.reader.messages

        def messages_then_error(connections):
            for number, item in enumerate(real(connections)):
                if number == 3:
                    raise OSError('read error')
                yield item
        self.reader.messages = messages_then_error
        return original(self, topic, *selection)
    monkeypatch.setattr(BagInput, 'frames', breaking)
    with pytest.raises(BagError, match='reading stopped after 3 messages'):
        run_eval(learner, bag, tmp_path / 'out', plots=False)
    report = read_report(tmp_path / 'out' / 'report.json')
    assert 'read error' in report['error'] and report['frames']['processed'] == 3
    output, _ = read_bag(tmp_path / 'out' / 'camera_poses')
    assert len(output['/poses']) == 3


# --- depth: people in metres ------------------------------------------------------------------------------------
COLOUR_TOPIC, DEPTH_TOPIC = '/camera/color/image_raw', '/camera/depth/image_raw'
INFO_TOPIC = '/camera/depth/camera_info'
DEPTH_FRAME = 'camera_depth_optical_frame'
DEPTH_OFF_NS = 50_000_000          # the last frame's depth image is 50 ms off: beyond the default slop (10 ms)


def depth_scenes():
    """(photo, depth, intrinsics, labels) of the photos the test model learnt: each annotated person at a known
    distance before a farther tilted wall (test_lifting's scenes), the depth in 16UC1 mm and 32FC1 m in turn."""
    from pycocotools.coco import COCO
    from test_lifting import PHOTOS, TRAIN_IMAGES, camera, person_labels, render
    coco = COCO(str(TRAIN_ANNOTATIONS))
    scenes = []
    for index, image_id in enumerate(PHOTOS):
        photo = cv2.imread(str(TRAIN_IMAGES / coco.loadImgs(image_id)[0]['file_name']))
        labels = person_labels(coco, image_id, photo.shape)
        intrinsics = camera(photo.shape[1], photo.shape[0])
        scenes.append((photo, render(labels, intrinsics, millimetres=index % 2 == 0), intrinsics, labels))
    return scenes


def depth_image_msg(store, depth, header):
    encoding, size = ('16UC1', 2) if depth.dtype == np.uint16 else ('32FC1', 4)
    return store.types[messages.IMAGE](header=header, height=depth.shape[0], width=depth.shape[1],
                                       encoding=encoding, is_bigendian=0, step=depth.shape[1] * size,
                                       data=np.frombuffer(depth.astype(depth.dtype.newbyteorder('<')).tobytes(),
                                                          np.uint8))


def camera_info_msg(store, intrinsics, header):
    return store.types[messages.CAMERA_INFO](
        header=header, height=intrinsics.height, width=intrinsics.width, distortion_model='plumb_bob',
        d=intrinsics.d.copy(), k=intrinsics.k.reshape(-1).copy(), r=np.eye(3).reshape(-1),
        p=np.column_stack([intrinsics.k, np.zeros(3)]).reshape(-1), binning_x=0, binning_y=0,
        roi=store.types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0,
                                                            do_rectify=False))


def make_depth_bag(path, scenes, storage='sqlite3'):
    """A camera bag with colour, aligned depth and CameraInfo; the last frame's depth (and its CameraInfo) is
    stamped DEPTH_OFF_NS after the colour frame. Returns the colour stamps."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    store = messages.typestore()
    types = StoreTypes(store)
    stamps = [T0 + i * PERIOD for i in range(len(scenes))]
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        colour = writer.add_connection(COLOUR_TOPIC, messages.IMAGE, typestore=store)
        depth = writer.add_connection(DEPTH_TOPIC, messages.IMAGE, typestore=store)
        info = writer.add_connection(INFO_TOPIC, messages.CAMERA_INFO, typestore=store)
        for index, (stamp, (photo, depth_image, intrinsics, _)) in enumerate(zip(stamps, scenes)):
            depth_stamp = stamp + (DEPTH_OFF_NS if index == len(scenes) - 1 else 0)
            depth_header = make_header(types, depth_stamp, DEPTH_FRAME)
            writer.write(colour, stamp + LOG_DELAY, bytes(store.serialize_cdr(
                bgr_to_image_msg(photo, make_header(types, stamp, 'camera_color_optical_frame'), types=types),
                messages.IMAGE)))
            writer.write(depth, stamp + 2 * LOG_DELAY, bytes(store.serialize_cdr(
                depth_image_msg(store, depth_image, depth_header), messages.IMAGE)))
            writer.write(info, stamp + 2 * LOG_DELAY, bytes(store.serialize_cdr(
                camera_info_msg(store, intrinsics, depth_header), messages.CAMERA_INFO)))
    return stamps


@pytest.fixture(scope='module')
def depth_bag(tmp_path_factory):
    scenes = depth_scenes()
    path = tmp_path_factory.mktemp('depth') / 'rgbd'
    return path, make_depth_bag(path, scenes), scenes


def test_a_bag_with_depth_gives_poses_3d_and_markers_of_the_frames_with_a_matching_depth(
        learner, depth_bag, tmp_path):
    from openpose_ros.bag.evaluate import node_settings
    from openpose_ros.inference.pipeline import lift
    from openpose_ros.runtime.configured_model import depth_settings
    bag, stamps, scenes = depth_bag
    result = run_eval(learner, bag, tmp_path / 'out', annotated='none', plots=False)
    output, types = read_bag(result.output_bag)
    assert types == {'/poses': messages.POSE_ARRAY, '/poses_3d': messages.POSE_3D_ARRAY,
                     '/skeleton_markers': messages.MARKER_ARRAY}
    poses_2d = [msg_to_poses(m) for _, m in output['/poses']]
    assert [messages.stamp_ns(m.header) for _, m in output['/poses']] == stamps
    # The last frame's depth image is 50 ms off: no 3D for it, and it is counted.
    poses_3d = [m for _, m in output['/poses_3d']]
    assert [messages.stamp_ns(m.header) for m in poses_3d] == stamps[:-1]
    assert {m.header.frame_id for m in poses_3d} == {DEPTH_FRAME}
    assert [log for log, _ in output['/poses_3d']] == [s + LOG_DELAY for s in stamps[:-1]]
    # Each frame's 3D keypoints are lift() of its published 2D poses on its depth, with the node's settings.
    settings = depth_settings(node_settings())
    found = with_depth = on_person = right_depth = 0
    for poses, msg, (photo, depth, intrinsics, labels) in zip(poses_2d, poses_3d, scenes):
        lifted = lift(poses, depth, intrinsics, photo.shape, settings)
        assert len(msg.poses) == len(poses) and [p.track_id for p in msg.poses] == [p.id for p in poses]
        for pose, pose_msg, points, valid in zip(poses, msg.poses, lifted.points, lifted.valid):
            got = np.array([(k.position.x, k.position.y, k.position.z) for k in pose_msg.keypoints])
            assert [k.valid for k in pose_msg.keypoints] == valid.tolist()
            np.testing.assert_allclose(got[valid], points[valid], atol=1e-6)
            assert not got[~valid].any()
            found += int(pose.found.sum())
            with_depth += int(valid.sum())
            # Independently of the lifting code: a valid keypoint well inside a person's mask is at that
            # person's known distance (millimetre depth images round to 1 mm).
            for (x, y), z in zip(np.round(pose.data[valid]).astype(int), got[valid][:, 2]):
                patch = labels[max(y - 3, 0):y + 4, max(x - 3, 0):x + 4]
                if patch.min() >= 0 and (patch == patch[0, 0]).all():
                    on_person += 1
                    right_depth += abs(z - PERSON_DEPTHS[patch[0, 0]]) <= 2e-3
    assert found >= 40 and with_depth >= 0.5 * found
    assert on_person >= 10 and right_depth >= 0.9 * on_person, (right_depth, on_person)
    markers = [m for _, m in output['/skeleton_markers']]
    assert len(markers) == len(poses_3d)
    for array, msg in zip(markers, poses_3d):
        spheres = [m for m in array.markers if m.type == m.SPHERE_LIST]
        assert sum(len(m.points) for m in spheres) == sum(k.valid for p in msg.poses for k in p.keypoints)
        assert all(m.header.frame_id == DEPTH_FRAME and m.lifetime.nanosec > 0 for m in array.markers)
    report = result.report['depth']
    assert (report['topic'], report['info_topic']) == (DEPTH_TOPIC, INFO_TOPIC)
    assert (report['frames_with_depth'], report['frames_without_depth'], report['depth_rejected']) == (4, 1, 0)
    assert (report['keypoints_found'], report['keypoints_with_depth']) == (found, with_depth)
    assert report['valid_depth_fraction'] == round(with_depth / found, 4)
    last = result.report['per_frame'][-1]
    assert last['depth'] == 'unmatched' and last['depth_reason'] == 'no depth image with a matching stamp'
    assert f'{100 * with_depth / found:.1f}% of the found keypoints with valid depth' in \
        result.summary_path.read_text()


def test_poses_3d_and_markers_of_a_bag_deserialise_in_rclpy(learner, depth_bag, tmp_path):
    pytest.importorskip('rclpy')
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader
    from openpose_ros.msg import Pose3DArray
    from visualization_msgs.msg import MarkerArray
    result = run_eval(learner, depth_bag[0], tmp_path / 'out', annotated='none', plots=False)
    store = messages.typestore()
    with Reader(result.output_bag) as reader:
        for topic, rclpy_type in (('/poses_3d', Pose3DArray), ('/skeleton_markers', MarkerArray)):
            connection = next(c for c in reader.connections if c.topic == topic)
            _, _, raw = next(reader.messages([connection]))
            msg, mine = deserialize_message(bytes(raw), rclpy_type), store.deserialize_cdr(raw, connection.msgtype)
            if topic == '/poses_3d':
                assert msg.header.frame_id == DEPTH_FRAME
                assert len(msg.poses) == len(mine.poses) >= 1
                assert [k.position.z for k in msg.poses[0].keypoints] == \
                    [k.position.z for k in mine.poses[0].keypoints]
            else:
                assert [m.type for m in msg.markers] == [m.type for m in mine.markers] and msg.markers
                assert {m.header.frame_id for m in msg.markers} == {DEPTH_FRAME}


def test_bag_eval_executable_on_a_bag_with_depth_and_its_flags(model, depth_bag, tmp_path):
    bag, stamps, _ = depth_bag
    # A slop of 60 ms covers the last frame's 50 ms: every frame has depth.
    done = subprocess.run([sys.executable, '-m', 'openpose_ros.bag.command', str(bag), '--weights', str(model),
                           '-o', str(tmp_path / 'out'), '--quiet', '--no-plots', '--annotated', 'none',
                           '--depth-topic', DEPTH_TOPIC, '--depth-info-topic', INFO_TOPIC, '--depth-slop', '0.06'],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert 'frames with depth' in done.stdout
    report = read_report(tmp_path / 'out' / 'report.json')
    assert report['depth']['frames_with_depth'] == len(stamps) and report['depth']['slop_s'] == 0.06
    output, _ = read_bag(tmp_path / 'out' / 'rgbd_poses')
    assert [messages.stamp_ns(m.header) for _, m in output['/poses_3d']] == stamps
    # --no-depth: the colour topic is still found beside the depth topic, and nothing in 3D.
    assert run_cli(bag, '--weights', model, '-o', tmp_path / 'flat', '--no-depth', '--no-plots') == 0
    report = read_report(tmp_path / 'flat' / 'report.json')
    assert report['depth'] is None and report['input']['topic'] == COLOUR_TOPIC
    assert set(read_bag(tmp_path / 'flat' / 'rgbd_poses')[1]) == {'/poses', '/image_annotated/compressed'}
    # A named depth topic that is not there is a clear error.
    assert run_cli(bag, '--weights', model, '-o', tmp_path / 'bad', '--depth-topic', '/nowhere') == 2


def test_a_bag_without_depth_gives_what_it_gave_before(learner, tmp_path):
    result = run_eval(learner, make_bag(tmp_path / 'camera', count=2), tmp_path / 'out', plots=False)
    assert set(read_bag(result.output_bag)[1]) == {'/poses', '/image_annotated/compressed'}
    assert result.report['depth'] is None and 'frames with depth' not in result.summary_path.read_text()
    assert all('depth' not in frame for frame in result.report['per_frame'])


def test_a_setting_the_learner_refuses_creates_no_output(learner, tmp_path):
    from openpose_ros.bag.evaluate import node_settings
    bag = make_bag(tmp_path / 'camera', count=1)
    with pytest.raises(ValueError, match='max_aspect_ratio'):
        run_eval(learner, bag, tmp_path / 'out', settings=dict(node_settings(), max_aspect_ratio=math.nan))
    assert not (tmp_path / 'out').exists()


def test_bag_eval_hri_writes_the_rep155_topics_of_each_frame(learner, tmp_path):
    from rosbags.rosbag2 import Reader

    from openpose_ros.messages.conversions import msg_to_poses
    from openpose_ros.messages import typestore as messages
    from openpose_ros.bag.evaluate import node_settings
    from test_bag_evaluate import make_bag, moving_frames, run_eval

    count = 8
    result = run_eval(learner, make_bag(tmp_path / 'camera', count=count), tmp_path / 'out', annotated='none',
                      plots=False, settings=node_settings(hri=True))
    store = messages.typestore(hri=True)
    topics = {}
    with Reader(result.output_bag) as reader:
        for connection, _, raw in reader.messages():
            topics.setdefault(connection.topic, []).append(store.deserialize_cdr(raw, connection.msgtype))
    height, width = moving_frames(1)[0][2].shape[:2]
    poses = {messages.stamp_ns(msg.header): msg_to_poses(msg) for msg in topics['/poses']}
    tracked = topics['/humans/bodies/tracked']
    assert [messages.stamp_ns(msg.header) for msg in tracked] == list(poses), 'one IdsList per frame'
    constants = skeleton2d_msg_constants()
    track_of = {}
    for msg in tracked:
        stamp = messages.stamp_ns(msg.header)
        for body in msg.ids:
            track_of.setdefault(body, None)
            skeletons = [m for m in topics.get(f'/humans/bodies/{body}/skeleton2d', [])
                         if messages.stamp_ns(m.header) == stamp]
            rois = [m for m in topics.get(f'/humans/bodies/{body}/roi', []) if messages.stamp_ns(m.header) == stamp]
            if not skeletons:  # tracked but not seen in this frame
                continue
            got = np.array([(p.x, p.y) for p in skeletons[0].skeleton])
            matches = [pose for pose in poses[stamp]
                       if np.allclose(got, expected_skeleton(pose.data, width, height, constants), atol=1e-6)]
            assert len(matches) == 1, f'body {body} at {stamp}: {len(matches)} poses match its skeleton'
            assert track_of[body] in (None, matches[0].id), f'body {body} changed track'
            track_of[body] = matches[0].id
            x, y, w, h = matches[0].bbox
            roi = rois[0]
            assert (roi.xmin, roi.ymin, roi.xmax, roi.ymax) == pytest.approx(
                (x / width, y / height, (x + w) / width, (y + h) / height), abs=1e-6)
    people = [body for body, track in track_of.items() if track is not None]
    assert len(people) >= 2 and len(set(track_of[b] for b in people)) == len(people)
    assert result.report['output']['messages']['/humans/bodies/tracked'] == count
