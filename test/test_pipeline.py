"""The per-frame pipeline (PoseStream) on the trained test model's real detections in a real photo of five
people, moved a few pixels per frame like a panning camera."""
import cv2
import numpy as np
import pytest

from conftest import MMPOSE_IMAGES, TEST_MODEL
from openpose_ros.inference.estimator import STAGES
from openpose_ros.inference.pipeline import PoseStream, StreamSettings
from openpose_ros.learner import LightweightOpenPoseLearner

CROWD = MMPOSE_IMAGES / '000000197388.jpg'  # five people, pose scores from about 0.05 to 0.5
STEP_S = 0.1


@pytest.fixture(scope='module')
def learner():
    learner = LightweightOpenPoseLearner(device='cpu')
    learner.load(str(TEST_MODEL))
    return learner


@pytest.fixture(scope='module')
def frames():
    image = cv2.imread(str(CROWD))
    assert image is not None
    return [cv2.warpAffine(image, np.float32([[1, 0, 3 * index], [0, 1, index]]), image.shape[1::-1],
                           borderMode=cv2.BORDER_REPLICATE) for index in range(6)]


def stream_of(learner, **options):
    return PoseStream(learner.estimator, keep_unsmoothed=True, **options)


def run(stream, frames, settings=StreamSettings(), start=0.0):
    return [stream.process(frame, start + index * STEP_S, settings) for index, frame in enumerate(frames)]


def test_the_unsmoothed_poses_are_the_detections_with_their_track_ids(learner, frames):
    results = run(stream_of(learner), frames)
    for frame, result in zip(frames, results):
        detected = learner.estimator.detect(frame)
        assert len(result.unsmoothed) == len(detected) >= 4
        for kept, found in zip(result.unsmoothed, detected):
            np.testing.assert_array_equal(kept.data, found.data)
        assert [pose.id for pose in result.unsmoothed] == [pose.id for pose in result.poses]
    people = {pose.id for pose in results[0].poses if pose.found.sum() >= 5}
    assert len(people) >= 4 and people <= {pose.id for pose in results[-1].poses}  # followed from frame to frame


def test_smoothing_moves_keypoints_and_keeps_missing_ones_missing(learner, frames):
    result = run(stream_of(learner), frames)[-1]
    moved = [np.abs(smooth.data - raw.data)[raw.found].max() for smooth, raw in zip(result.poses, result.unsmoothed)]
    assert max(moved) > 0.5  # the filter lags a moving person
    for smooth, raw in zip(result.poses, result.unsmoothed):
        np.testing.assert_array_equal(smooth.found, raw.found)


def test_poses_under_min_pose_score_are_tracked_but_not_returned(learner, frames):
    threshold = 0.3
    everything = run(stream_of(learner), frames)[-1]
    filtered = run(stream_of(learner), frames, StreamSettings(min_pose_score=threshold))[-1]
    expected = [pose for pose in everything.poses if pose.confidence >= threshold]
    assert 0 < len(filtered.poses) == len(expected) < len(everything.poses)
    assert [pose.id for pose in filtered.poses] == [pose.id for pose in expected]
    for got, want in zip(filtered.poses, expected):
        np.testing.assert_allclose(got.data, want.data)
    hidden = {pose.id for pose in everything.poses} - {pose.id for pose in filtered.poses}
    assert hidden and hidden <= set(filtered.live_track_ids)
    assert len(filtered.unsmoothed) == len(filtered.poses)


def test_without_tracking_ids_are_minus_one_and_smoothing_still_follows_people(learner, frames):
    tracked = run(stream_of(learner), frames)[-1]
    result = run(stream_of(learner), frames, StreamSettings(track=False))[-1]
    assert {pose.id for pose in result.poses} == {pose.id for pose in result.unsmoothed} == {-1}
    assert result.live_track_ids == ()
    for got, want in zip(result.poses, tracked.poses):
        np.testing.assert_allclose(got.data, want.data)  # the same smoothing as with ids


@pytest.mark.slow
def test_time_that_goes_back_restarts_tracking_and_smoothing(learner, frames):
    stream = stream_of(learner)
    first = run(stream, frames, start=10.0)
    again = run(stream, frames, start=0.0)
    assert not any(result.restarted for result in first)
    assert [result.restarted for result in again] == [True] + [False] * (len(frames) - 1)
    fresh = run(stream_of(learner), frames, start=0.0)
    for got, want in zip(again, fresh):  # as if the stream had just started
        assert [pose.id for pose in got.poses] == [pose.id for pose in want.poses]
        for a, b in zip(got.poses, want.poses):
            np.testing.assert_allclose(a.data, b.data)


def test_every_stage_is_timed(learner, frames):
    result = stream_of(learner).process(frames[0], 0.0)
    assert set(result.timings) == set(STAGES)
    assert all(value >= 0 for value in result.timings.values()) and result.timings['network'] > 0


def test_learner_infer_is_the_pipeline(learner, frames):
    stream = stream_of(learner)
    learner.reset()
    for index, frame in enumerate(frames):
        stamp = index * STEP_S
        expected = stream.process(frame, stamp).poses
        got = learner.infer(frame, stamp=stamp)
        assert [pose.id for pose in got] == [pose.id for pose in expected]
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize('stamp', [float('nan'), float('inf')])
def test_a_stamp_that_is_not_finite_is_refused(learner, frames, stamp):
    with pytest.raises(ValueError, match='finite'):
        stream_of(learner).process(frames[0], stamp)


def test_settings_out_of_range_are_refused():
    with pytest.raises(ValueError, match='upsample_ratio'):
        StreamSettings(upsample_ratio=0)
