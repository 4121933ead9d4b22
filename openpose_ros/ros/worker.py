"""Newest-frame processing and the figures the diagnostics report. Free of rclpy.

`LatestFrameWorker` holds at most one waiting item: a newer item replaces a waiting one (which counts as
dropped), and one thread processes whatever is newest when it becomes free. So when frames arrive faster than
inference, the frames processed are always recent, and latency does not grow with a queue.

`FrameStats` counts frames (received, processed, dropped, rejected, failed) and keeps the timing samples of the last
seconds for rates and latencies; it is shared between the subscription callback, the worker and the
diagnostics timer, so every method takes a lock.
"""
import logging
import threading
import time
from collections import deque

LOG = logging.getLogger(__name__)


class LatestFrameWorker:
    """Calls `handler(item)` on its own thread for the newest item given to `offer()`.

    `on_error(exception)` is called when the handler raises (the worker goes on with the next item);
    by default the error is logged.
    """

    def __init__(self, handler, name='latest-frame-worker', on_error=None):
        self._handler = handler
        self._on_error = on_error or (lambda error: LOG.exception('frame handler failed: %s', error))
        self._condition = threading.Condition()
        self._item = None
        self._waiting = False
        self._running = False
        self._busy = False
        self._thread = None
        self._name = name

    def start(self):
        """Starts the processing thread (a daemon); does nothing while it is running."""
        with self._condition:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def offer(self, item):
        """Hands over the newest item. Returns True when it replaced a waiting item (that one is dropped)."""
        with self._condition:
            replaced = self._waiting
            self._item, self._waiting = item, True
            self._condition.notify()
        return replaced

    @property
    def busy(self):
        """True while the handler runs."""
        return self._busy

    def discard(self):
        """Drops the waiting item, if any; the thread goes on. Returns the number dropped (0 or 1)."""
        with self._condition:
            dropped = int(self._waiting)
            self._item, self._waiting = None, False
        return dropped

    def wait_idle(self, timeout):
        """Waits at most `timeout` seconds for the item in progress to finish. Returns True when idle."""
        deadline = time.monotonic() + timeout
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._busy

    def stop(self, timeout=None):
        """Stops the thread after the item being processed (if any). Returns the number of items dropped
        (0 or 1: the one still waiting). Safe to call twice."""
        with self._condition:
            self._running = False
            dropped = int(self._waiting)
            self._item, self._waiting = None, False
            self._condition.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None
        return dropped

    def _loop(self):
        while True:
            with self._condition:
                while self._running and not self._waiting:
                    self._condition.wait()
                if not self._running:
                    return
                item, self._item, self._waiting = self._item, None, False
                self._busy = True
            try:
                self._handler(item)
            except Exception as error:  # the worker must survive any one frame
                self._on_error(error)
            finally:
                self._busy = False


def span_rate(times):
    """Events per second between the first and the last of `times` (seconds, in order): the rate while events
    came, not diluted by the quiet time before or after them. 0.0 for fewer than two events."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


class FrameStats:
    """Frame counters and the timing samples of the last `window` seconds (monotonic clock).

    Rejected frames (bad messages) and failed frames (errors while processing) are counted by cause: a short
    text without the message's own values (at most MAX_CAUSES causes each; more count as 'other')."""

    MAX_CAUSES = 16

    def __init__(self, window=5.0, clock=time.monotonic):
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self.received = self.processed = self.dropped = self.rejected = self.failed = 0
        self.poses_published = 0
        self.last_received = None        # monotonic time of the last frame received
        self.last_rejection = ''         # why the last rejected frame was refused
        self.last_failure = ''           # why the last failed frame failed
        self.rejected_by_cause = {}      # cause -> frames
        self.failed_by_cause = {}
        self._arrivals = deque()         # monotonic times of frames received
        self._samples = deque()          # (monotonic time, latency ms, age ms or None, inference ms, poses)
        self._rejections = deque()       # monotonic times of rejected frames
        self._failures = deque()         # monotonic times of failed frames

    def on_received(self):
        """Counts a frame received (input rate, time since the last frame)."""
        now = self._clock()
        with self._lock:
            self.received += 1
            self.last_received = now
            self._arrivals.append(now)
            self._trim(now)

    def on_dropped(self, count=1):
        """Counts `count` frames dropped: replaced while waiting for the worker, or discarded."""
        with self._lock:
            self.dropped += count

    def on_rejected(self, cause, reason):
        """A frame refused as malformed: `cause` groups it, `reason` says what was wrong with this one."""
        now = self._clock()
        with self._lock:
            self.rejected += 1
            self.last_rejection = reason
            _count(self.rejected_by_cause, cause, self.MAX_CAUSES)
            self._rejections.append(now)
            self._trim(now)

    def on_failed(self, cause, reason):
        """A frame whose processing raised: `cause` groups it, `reason` is the error."""
        now = self._clock()
        with self._lock:
            self.failed += 1
            self.last_failure = reason
            _count(self.failed_by_cause, cause, self.MAX_CAUSES)
            self._failures.append(now)
            self._trim(now)

    def on_processed(self, latency_ms, age_ms, inference_ms, poses):
        """Counts a processed frame and keeps its sample: `latency_ms` from its reception to the end of its processing,
        `age_ms` from its header stamp to then (None when unknown), `inference_ms`, and the number of `poses`
        published."""
        now = self._clock()
        with self._lock:
            self.processed += 1
            self.poses_published += poses
            self._samples.append((now, latency_ms, age_ms, inference_ms, poses))
            self._trim(now)

    def _trim(self, now):
        for queue in (self._arrivals, self._samples, self._rejections, self._failures):
            while queue and (queue[0] if queue is not self._samples else queue[0][0]) < now - self.window:
                queue.popleft()

    def snapshot(self):
        """A dict of the counters, the counts by cause ('rejected: <cause>', 'failed: <cause>') and of the last
        window's counts, rates (Hz, from its first to its last frame) and timings (ms: mean and max)."""
        now = self._clock()
        with self._lock:
            self._trim(now)
            samples = list(self._samples)
            arrivals = list(self._arrivals)
            figures = {
                'frames_received': self.received, 'frames_processed': self.processed,
                'frames_dropped': self.dropped, 'frames_rejected': self.rejected, 'frames_failed': self.failed,
                'poses_published': self.poses_published,
                'seconds_since_last_frame': None if self.last_received is None else now - self.last_received,
                'last_rejection': self.last_rejection, 'last_failure': self.last_failure,
                'processed_in_window': len(samples),
                'rejected_in_window': len(self._rejections), 'failed_in_window': len(self._failures),
                **{f'rejected: {cause}': count for cause, count in self.rejected_by_cause.items()},
                **{f'failed: {cause}': count for cause, count in self.failed_by_cause.items()},
            }
        figures['input_rate_hz'] = span_rate(arrivals)
        figures['processing_rate_hz'] = span_rate([sample[0] for sample in samples])
        for key, column in (('latency_ms', 1), ('age_ms', 2), ('inference_ms', 3)):
            values = [s[column] for s in samples if s[column] is not None]
            figures[f'{key}_mean'] = sum(values) / len(values) if values else None
            figures[f'{key}_max'] = max(values) if values else None
        figures['poses_per_frame'] = sum(s[4] for s in samples) / len(samples) if samples else None
        figures['window_s'] = self.window
        return figures


def _count(counts, cause, limit):
    if cause not in counts and len(counts) >= limit:
        cause = 'other'
    counts[cause] = counts.get(cause, 0) + 1
