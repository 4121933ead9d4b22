"""One Euro smoothing on time stamps: jitter of a still pose, lag of a moving one, at several frame rates."""
import numpy as np
import pytest

from openpose_ros.pose import Pose
from openpose_ros.tracking.smoothing import OneEuroFilter, OneEuroSettings, PoseSmoother


def still_pose():
    rng = np.random.default_rng(1)
    return rng.uniform(100, 400, (18, 2)).astype(np.float32)


def smooth_sequence(truth_at, fps, seconds, noise, smoother=None, seed=0):
    """Feeds noisy observations of truth_at(t) to a PoseSmoother; returns (truth, raw, smoothed) arrays."""
    rng = np.random.default_rng(seed)
    smoother = smoother or PoseSmoother()
    truth, raw, smoothed = [], [], []
    for frame in range(int(fps * seconds)):
        stamp = 1000.0 + frame / fps
        exact = truth_at(frame / fps)
        observed = exact + rng.normal(0, noise, exact.shape).astype(np.float32)
        pose = Pose(observed.copy(), 1.0, id=7)
        smoother.update([pose], stamp)
        truth.append(exact), raw.append(observed), smoothed.append(pose.data.copy())
    return np.array(truth), np.array(raw), np.array(smoothed)


def jitter(sequence, truth):
    return float(np.sqrt(np.mean((sequence - truth) ** 2)))


@pytest.mark.parametrize('fps', [15, 30])
def test_still_pose_loses_at_least_half_of_its_jitter(fps):
    base = still_pose()
    truth, raw, smoothed = smooth_sequence(lambda t: base, fps, 4, noise=3.0)
    settled = slice(fps, None)  # after one second
    before, after = jitter(raw[settled], truth[settled]), jitter(smoothed[settled], truth[settled])
    print(f'{fps} Hz still pose: jitter {before:.2f} px -> {after:.2f} px')
    assert after <= 0.5 * before


@pytest.mark.parametrize('fps', [10, 30, 60])
def test_lag_on_a_moving_pose_stays_bounded_at_any_frame_rate(fps):
    base, speed = still_pose(), np.array([150.0, 60.0], np.float32)  # pixels per second
    truth, _, smoothed = smooth_sequence(lambda t: base + speed * t, fps, 3, noise=0.0)
    lag = np.linalg.norm(smoothed[-1] - truth[-1], axis=1).mean()
    print(f'{fps} Hz, {np.linalg.norm(speed):.0f} px/s: lag {lag:.2f} px ({lag / np.linalg.norm(speed) * 1e3:.0f} ms)')
    assert lag < 0.05 * np.linalg.norm(speed)  # under 50 ms behind


def test_missing_keypoints_stay_missing_and_restart_when_seen_again():
    smoother = PoseSmoother()
    data = still_pose()
    smoother.update([Pose(data.copy(), 1, id=1)], 0.0)
    gone = data.copy()
    gone[4] = -1
    pose = Pose(gone, 1, id=1)
    smoother.update([pose], 0.1)
    assert (pose.data[4] == -1).all()
    moved = data.copy()
    moved[4] += 50
    pose = Pose(moved, 1, id=1)
    smoother.update([pose], 0.2)
    assert np.allclose(pose.data[4], moved[4])  # restarted, not dragged from the old position


def test_time_going_backwards_restarts_the_filter():
    one_euro = OneEuroFilter()
    one_euro(np.zeros(2), 10.0)
    assert np.allclose(one_euro(np.full(2, 100.0), 5.0), 100.0)


def test_settings_apply_to_running_filters_and_are_validated():
    smoother = PoseSmoother()
    base = still_pose()
    smoother.update([Pose(base.copy(), 1, id=3)], 0.0)
    smoother.settings.min_cutoff = 1e6  # no smoothing at all
    pose = Pose(base + 10, 1, id=3)
    smoother.update([pose], 0.1)
    assert np.allclose(pose.data, base + 10, atol=0.05)
    with pytest.raises(ValueError):
        OneEuroSettings(min_cutoff=0)
