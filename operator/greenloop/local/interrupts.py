"""Ctrl-C, SIGTERM and SIGHUP all stop a run the same way: the running process is
stopped, the report and status are written, and the exit code says which signal it was
(128 + the signal: 130, 143, 129). A second signal never aborts that work; it only
skips the grace period of the kill (docs/design.md §4)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Interrupted", "exit_code", "handled", "hurrying", "ignored", "settle"]

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class Interrupted(KeyboardInterrupt):
    """Raised by the first of SIGINT/SIGTERM/SIGHUP. A KeyboardInterrupt, so code that
    cleans up after Ctrl-C cleans up after the others too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def what(self) -> str:
        return _NAMES.get(signal.Signals(self.signum), f"signal {self.signum}")


class _State:
    stopping = False  # the first signal was raised, or the run is finishing
    hurry = False  # a signal came while stopping: kill without the grace period
    signum: int | None = None


_state = _State()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _state.stopping:
        _state.hurry = True
        return
    _state.stopping = True
    _state.signum = signum
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Within: the three signals raise Interrupted once, then only hurry the kill.
    Outside the main thread (signals cannot be handled there) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.stopping, _state.hurry, _state.signum = False, False, None
    # A signal ignored when greenloop started stays ignored: that is how `nohup` and a
    # non-interactive shell's background job (`greenloop run x &`) say "not for you".
    previous = {sig: signal.signal(sig, _on_signal) for sig in SIGNALS if not ignored(sig)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ignored(sig: int) -> bool:
    """Whether ``sig`` was set to be ignored before greenloop installed anything."""
    return signal.getsignal(sig) is signal.SIG_IGN


def settle() -> None:
    """From here on, the work is finishing: a signal no longer raises, so the report
    and status are written whole."""
    _state.stopping = True


def hurrying() -> bool:
    return _state.hurry


def exit_code(err: KeyboardInterrupt) -> int:
    """128 + the signal, as a shell reports a process it stopped."""
    return 128 + (err.signum if isinstance(err, Interrupted) else signal.SIGINT)
