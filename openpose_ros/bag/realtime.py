"""What the live node would have published: a newest-frame worker replayed against a bag's clock.

The node keeps one frame (a depth-1 subscription) and one worker: a frame arriving while the worker is busy
replaces the frame waiting, which is dropped; when the worker finishes it takes the waiting frame, if any.
Here frames arrive at their log times, played back `rate` times faster than recorded, and each frame the worker
takes costs the processing time really measured for it on this machine. Times are in seconds of playback
(wall) time from the first frame's arrival.
"""
import math
from dataclasses import dataclass


@dataclass
class Published:
    """A processed frame: when it arrived, when the worker took it and when its poses were published."""
    item: object
    arrival: float
    start: float
    publish: float

    @property
    def age(self):
        """Seconds from the frame's arrival to the publication of its poses."""
        return self.publish - self.arrival


class NewestFrameWorker:
    """Feeds frames in arrival order to `process(item) -> seconds` the way the node's worker would.

    `on_published(Published)` is called after each processed frame and `on_dropped(item, arrival)` for each
    frame superseded while the worker was busy. Call `finish()` after the last frame.
    """

    def __init__(self, rate, process, on_published=None, on_dropped=None):
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f'the playback rate must be a positive number, got {rate}')
        self.rate = float(rate)
        self.process, self.on_published, self.on_dropped = process, on_published, on_dropped
        self.free_at = -math.inf
        self.pending = None          # (item, arrival)
        self.origin_ns = None
        self.busy = 0.0

    def arrival_of(self, log_time_ns):
        """Playback time (s) at which a message logged at `log_time_ns` arrives."""
        if self.origin_ns is None:
            self.origin_ns = int(log_time_ns)
        return (int(log_time_ns) - self.origin_ns) / 1e9 / self.rate

    def bag_time_ns(self, playback_s):
        """The bag-clock time (ns) of a playback time: where a recorder would log a message published then."""
        return self.origin_ns + round(playback_s * self.rate * 1e9)

    def arrive(self, item, log_time_ns):
        """A frame logged at `log_time_ns` (bag clock) arrives: the waiting frame is processed first if the worker is
        free by then; this one is processed at once if the worker is free, else it waits, replacing (and dropping,
        through on_dropped) the frame waiting before it."""
        arrival = self.arrival_of(log_time_ns)
        if self.pending is not None and self.free_at <= arrival:
            waiting, self.pending = self.pending, None
            self._run(*waiting, start=self.free_at)
        if self.free_at <= arrival:
            self._run(item, arrival, start=arrival)
            return
        if self.pending is not None and self.on_dropped is not None:
            self.on_dropped(*self.pending)
        self.pending = (item, arrival)

    def finish(self):
        """Processes the frame still waiting when the bag ends."""
        if self.pending is not None:
            waiting, self.pending = self.pending, None
            self._run(*waiting, start=self.free_at)

    def discard_pending(self):
        """Drops the waiting frame without processing it (the run was interrupted); returns it or None."""
        waiting, self.pending = self.pending, None
        return waiting

    def _run(self, item, arrival, start):
        seconds = float(self.process(item))
        self.busy += seconds
        self.free_at = start + seconds
        if self.on_published is not None:
            self.on_published(Published(item, arrival, start, self.free_at))
