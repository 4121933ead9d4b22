"""Stopping a long run cleanly: the first Ctrl-C (SIGINT) or SIGTERM asks the run to stop at its next safe point
(after a frame, before a batch), so that its outputs are closed or its checkpoint written; a second Ctrl-C
aborts at once with KeyboardInterrupt.

    with StopRequests(on_request=lambda signum: print('stopping after this frame')) as stop:
        for frame in frames:
            process(frame)
            if stop.requested:
                break

The handlers are installed for the block only; the previous ones (Python's, or rclpy's) come back after it.
"""
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType

DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Catches `signals` while its `with` block runs.

    The first of them marks a stop as requested and calls ``on_request(signum)`` (to tell the user what happens
    next); the run polls `requested`, or calls `raise_if_requested()`, where stopping is safe. A SIGINT while a
    stop is requested raises KeyboardInterrupt at once. Signals can only be caught in the main thread: elsewhere
    nothing is installed and no stop is ever requested.
    """

    def __init__(self, signals: Iterable[int] = DEFAULT_SIGNALS,
                 on_request: Callable[[int], None] | None = None) -> None:
        self.signals = tuple(signals)
        self.on_request = on_request
        self.signum: int | None = None  # the signal that asked for the pending stop
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a signal asked the run to stop."""
        return self.signum is not None

    def raise_if_requested(self) -> None:
        """KeyboardInterrupt when a stop was requested. The request is consumed: the run's handling of the
        KeyboardInterrupt (writing a checkpoint) is not aborted by the next Ctrl-C, only by the one after."""
        if self.requested:
            self.signum = None
            raise KeyboardInterrupt

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        if self.on_request is not None:
            self.on_request(signum)

    def __enter__(self) -> 'StopRequests':
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.signals}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for signum, previous in self._previous.items():
            # None: a handler installed outside Python, which cannot be put back: the default takes its place
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous = {}
