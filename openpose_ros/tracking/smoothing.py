"""One Euro filtering of keypoints on real time stamps (Casiez et al., CHI 2012).

The reference filters at a fixed 15 Hz whatever the frame rate; here the filter's time step is the difference of
the frames' stamps, so a 30 Hz camera, a dropped frame or a bag played at another speed are all filtered right.
"""
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike

from openpose_ros.pose import Pose

Poses = TypeVar('Poses', bound=Sequence[Pose])


def _alpha(cutoff: float | np.ndarray, elapsed: float | np.ndarray) -> float | np.ndarray:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / elapsed)


@dataclass
class OneEuroSettings:
    """min_cutoff (Hz): smoothing at rest, lower is smoother; beta: how fast the cutoff rises with speed (less lag);
    d_cutoff (Hz): smoothing of the speed estimate. Shared by reference, so changes apply to running filters.

    The defaults halve the jitter of a still pose from 10 Hz up while a walking person lags by 25-40 ms (pixel
    coordinates; the reference's 1.0 and 0.05 remove only 36-41% at 10-15 Hz)."""
    min_cutoff: float = 0.5
    beta: float = 0.02
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises ValueError unless min_cutoff > 0, d_cutoff > 0 and beta >= 0."""
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ValueError(f'One Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, got {self}')


def one_euro_step(value: np.ndarray, previous: np.ndarray, derivative: np.ndarray, elapsed: float | np.ndarray,
                  settings: OneEuroSettings) -> tuple[np.ndarray, np.ndarray]:
    """One filter step for arrays of samples, each with its own state; `elapsed` (seconds, > 0) broadcasts.

    NaN in `value` is a missing sample (its state restarts); NaN in `previous` is a filter not started yet.
    Returns the smoothed values and the new derivative estimates.
    """
    fresh = np.isnan(previous) & ~np.isnan(value)
    speed = np.nan_to_num(np.where(fresh, 0.0, (value - previous) / elapsed))
    derivative = derivative + _alpha(settings.d_cutoff, elapsed) * (speed - derivative)
    cutoff = settings.min_cutoff + settings.beta * np.abs(derivative)
    smoothed = np.where(fresh, value, previous + _alpha(cutoff, elapsed) * (value - previous))
    return smoothed, np.where(np.isnan(value) | fresh, 0.0, derivative)


@dataclass
class _FilterState:
    value: np.ndarray       # the last smoothed sample, NaN where it is missing
    derivative: np.ndarray  # its speed estimate, of the same shape
    stamp: float


class OneEuroFilter:
    """Filters an array-valued signal; entries that are NaN in a sample restart their own filter."""

    def __init__(self, settings: OneEuroSettings | None = None) -> None:
        """`settings`: the filter's parameters (default: OneEuroSettings())."""
        self.settings = settings or OneEuroSettings()
        self._state: _FilterState | None = None

    def __call__(self, value: ArrayLike, stamp: float) -> np.ndarray:
        """The smoothed `value` (any array-like, as float64) of the sample taken at `stamp` (seconds); a sample
        whose stamp does not move forward, or whose shape changed, restarts the filter."""
        sample = np.asarray(value, np.float64)
        state = self._state
        if state is None or state.value.shape != sample.shape or stamp <= state.stamp:
            self._state = _FilterState(sample.copy(), np.zeros_like(sample), stamp)
        else:
            self._state = _FilterState(*one_euro_step(sample, state.value, state.derivative, stamp - state.stamp,
                                                      self.settings), stamp)
        return self._state.value.copy()


class PoseSmoother:
    """One Euro filtering of every track's (18, 2) keypoints, all tracks in one vectorised step; missing
    keypoints stay missing. A track unseen for `forget_after` seconds is forgotten and starts afresh."""

    def __init__(self, min_cutoff: float = 0.5, beta: float = 0.02, d_cutoff: float = 1.0,
                 forget_after: float = 1.0) -> None:
        """The One Euro parameters (see OneEuroSettings), and how long an unseen track's state is kept (seconds)."""
        self.settings = OneEuroSettings(min_cutoff, beta, d_cutoff)
        self.forget_after = forget_after
        self._states: dict[int, _FilterState] = {}  # track id -> its keypoints' (18, 2) filter state

    def reset(self) -> None:
        """Starts a new stream."""
        self._states = {}

    def update(self, poses: Poses, stamp: float) -> Poses:
        """Smooths `pose.data` in place for every pose with a track id, seen at time `stamp` (seconds); returns
        `poses`."""
        tracked = [pose for pose in poses if pose.id >= 0]
        if tracked:
            value = np.stack([np.where(pose.data >= 0, pose.data, np.nan) for pose in tracked]).astype(np.float64)
            previous, derivative = np.full_like(value, np.nan), np.zeros_like(value)
            elapsed = np.ones((len(tracked), 1, 1))
            for row, pose in enumerate(tracked):
                state = self._states.get(pose.id)
                if state is not None and stamp > state.stamp:  # else (re)start: time went backwards
                    previous[row], derivative[row], elapsed[row] = state.value, state.derivative, stamp - state.stamp
            smoothed, derivative = one_euro_step(value, previous, derivative, elapsed, self.settings)
            for row, pose in enumerate(tracked):
                self._states[pose.id] = _FilterState(smoothed[row], derivative[row], stamp)
                pose.data[:] = np.where(np.isnan(smoothed[row]), -1.0, smoothed[row])
        self._states = {track: state for track, state in self._states.items()
                        if 0 <= stamp - state.stamp <= self.forget_after}
        return poses
