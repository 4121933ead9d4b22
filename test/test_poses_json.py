"""The poses JSON format (openpose_ros.formats.poses_json) on real people: round trip, layout, and malformed
documents refused with the place."""
import json

import numpy as np
import pytest

from openpose_ros.formats.poses_json import (ResultsFormatError, document, frame_record, pose_from_dict,
                                             pose_to_dict, read_document, write_document)
from openpose_ros.inference.decode import decode_poses
from openpose_ros.pose import Pose
from openpose_ros.training.targets import render_oracle_maps
from test_infer import BASE_HEIGHT, records  # noqa: F401  (records: a fixture)


# --- the JSON format ---------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def real_poses(records):
    """Poses decoded from the oracle maps of the mmpose-tests people (12 annotated), in image pixels."""
    poses = []
    for record in records.values():
        heatmaps, pafs, scale, pad = render_oracle_maps(record, BASE_HEIGHT, 8)
        keypoints, keypoint_scores, scores = decode_poses(heatmaps, pafs, 8, 4)
        found = keypoints[..., 0] >= 0
        keypoints[found] = (keypoints[found] - (pad[1], pad[0])) / scale
        poses += [Pose(k, s, c, id=i) for i, (k, c, s) in enumerate(zip(keypoints, keypoint_scores, scores))]
    assert len(poses) >= 10
    return poses


def test_poses_round_trip_through_json(tmp_path, real_poses):
    assert any(not p.found.all() for p in real_poses)  # missing keypoints are part of the test
    doc = document([frame_record(real_poses[:5], 1.5, file='a.jpg', width=640, height=425),
                    frame_record(real_poses[5:], 1.6, frame=7)], source='test')
    path = write_document(tmp_path / 'poses.json', doc)
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)
    back = read_document(path)
    restored = back['frames'][0]['poses'] + back['frames'][1]['poses']
    assert len(restored) == len(real_poses)
    for before, after in zip(real_poses, restored):
        assert np.array_equal(before.found, after.found)
        assert np.abs(before.data - after.data)[before.found].max() <= 1e-3
        assert np.all(after.data[~after.found] == -1)
        assert np.abs(before.keypoint_scores - after.keypoint_scores)[before.found].max() <= 1e-5
        assert after.id == before.id and abs(after.confidence - before.confidence) <= 1e-5
        assert np.allclose(after.bbox, before.bbox, atol=2e-3)
    assert back['frames'][1]['frame'] == 7 and back['frames'][0]['stamp'] == 1.5


def test_a_pose_dict_holds_18_rows_and_missing_keypoints_as_minus_one(real_poses):
    pose = next(p for p in real_poses if not p.found.all())
    data = pose_to_dict(pose)
    json.dumps(data, allow_nan=False)
    rows = np.array(data['keypoints'])
    assert rows.shape == (18, 3)
    assert np.all(rows[~pose.found] == [-1, -1, 0]) and np.all(rows[pose.found, 2] > 0)


def test_malformed_results_are_rejected_with_the_place(tmp_path, real_poses):
    with pytest.raises(ResultsFormatError, match='pose 3'):
        pose_from_dict({'keypoints': [[0, 0, 1]] * 17, 'confidence': 1}, 'pose 3')
    with pytest.raises(ResultsFormatError, match='not a pose'):
        pose_from_dict({'confidence': 1})
    doc = document([frame_record(real_poses[:2], 0.0)])
    doc['version'] = 99
    (tmp_path / 'v.json').write_text(json.dumps(doc))
    with pytest.raises(ResultsFormatError, match='version'):
        read_document(tmp_path / 'v.json')
    (tmp_path / 'x.json').write_text('{"format": "something else"')
    with pytest.raises(ResultsFormatError, match='JSON'):
        read_document(tmp_path / 'x.json')
    with pytest.raises(ValueError):
        pose_to_dict(Pose(np.full((18, 2), np.inf), 0.5, np.ones(18)))
