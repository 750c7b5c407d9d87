"""How a local run takes the stop signals (greenloop/local/interrupts.py)."""

from __future__ import annotations

import signal

from greenloop.local import interrupts


def test_a_signal_ignored_before_a_run_stays_ignored_during_it() -> None:
    # nohup ignores SIGHUP for the program it starts: a hangup is not for greenloop.
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with interrupts.handled():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
