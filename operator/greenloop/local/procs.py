"""Every process greenloop starts, and how it is stopped so nothing is left behind.

Each process runs in its own session (so its own process group) with a token in its
environment, ``GREENLOOP_PROCESS``, that its descendants inherit. Stopping one signals
its group and every process that carries its token — that finds children that left the
group with ``setsid``. greenloop is also a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``),
so orphans reparent to it instead of to init: they are reaped, and one that scrubbed its
environment is still found as greenloop's child. Not covered: a process that both scrubs
its environment and is adopted elsewhere (a double fork through another subreaper), or
one started through a service manager; a cgroup would catch those, but needs privileges
local mode does not assume.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from greenloop.local import interrupts

__all__ = [
    "KILL_GRACE_SECONDS",
    "TOKEN_VAR",
    "Child",
    "become_subreaper",
    "forget",
    "start",
    "stop",
    "stop_all",
    "wait",
]

TOKEN_VAR = "GREENLOOP_PROCESS"
KILL_GRACE_SECONDS = 5.0
_PR_SET_CHILD_SUBREAPER = 36

# Popen and registration happen under the lock, so the reaper never collects the exit
# status of a child that subprocess is about to wait for (it would read as exit 0).
_lock = threading.Lock()
_live: dict[int, Child] = {}


@dataclass(frozen=True, slots=True)
class Child:
    proc: subprocess.Popen[bytes]
    token: str
    since: int = 0  # its start time (clock ticks since boot): descendants start later


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux only); False where the call is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def start(
    args: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdout: IO[bytes] | int | None,
    stderr: IO[bytes] | int | None,
) -> Child:
    """Start a process in its own session, with a fresh token. Raises OSError as Popen."""
    token = uuid.uuid4().hex
    with _lock:
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env={**env, TOKEN_VAR: token},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        stat = _stat(Path(f"/proc/{proc.pid}"))
        child = Child(proc, token, stat[2] if stat else 0)
        _live[proc.pid] = child
    return child


def wait(child: Child, timeout: float, tick: Callable[[float], None] | None = None) -> bool:
    """Wait for the process to exit, at most ``timeout`` seconds. True when it timed out
    (it is still running: call ``stop``)."""
    start_at = time.monotonic()
    deadline = start_at + timeout
    while True:
        try:
            child.proc.wait(timeout=min(1.0, max(deadline - time.monotonic(), 0.01)))
            return False
        except subprocess.TimeoutExpired:
            _reap_orphans()
            if tick:
                tick(time.monotonic() - start_at)
            if time.monotonic() >= deadline:
                return True


def stop(child: Child, grace: float = KILL_GRACE_SECONDS) -> None:
    """Stop the process and everything it started: SIGTERM, then SIGKILL after ``grace``
    seconds (at once if a second interrupt comes). Returns when they are gone."""
    try:
        if not _signal(child, signal.SIGTERM):
            # Nothing was left (the common case: a suite that exited cleanly).
            with _lock:
                _live.pop(child.proc.pid, None)
            return
        deadline = time.monotonic() + grace
        while _present(child) and time.monotonic() < deadline and not interrupts.hurrying():
            _reap(child, 0.05)
    finally:
        # Also on an interrupt during the grace: whatever is left gets SIGKILL.
        for _ in range(50):
            if not _signal(child, signal.SIGKILL):
                break
            _reap(child, 0.05)
        with _lock:
            _live.pop(child.proc.pid, None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout=5.0)


def forget(child: Child) -> None:
    """The process exited and what it left running is meant to stay (a redeployed service)."""
    with _lock:
        _live.pop(child.proc.pid, None)


def stop_all() -> None:
    """The last resort when a run ends: stop whatever is still registered."""
    for child in list(_live.values()):
        stop(child, grace=1.0)


def _signal(child: Child, sig: int) -> bool:
    """Send ``sig`` to the group and to every process with the token; False when none
    was left to signal."""
    sent = False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.proc.pid, sig)
        sent = True
    for pid in _carriers(child):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            sent = True
    return sent


def _present(child: Child) -> bool:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.proc.pid, 0)
        return True
    return bool(_carriers(child))


def _reap(child: Child, seconds: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.proc.wait(timeout=seconds)
    _reap_orphans()


def _carriers(child: Child) -> list[int]:
    """Live processes whose environment carries the child's token (zombies excluded),
    and adopted orphans of ours that carry no token at all (they scrubbed it)."""
    needle = f"{TOKEN_VAR}={child.token}".encode()
    me = str(os.getpid())
    found = []
    for entry in _processes():
        stat = _stat(entry)
        if stat is None or stat[0] == "Z" or stat[2] < child.since:
            continue  # gone, or older than the child: not one of its descendants
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ or (
            stat[1] == me
            and int(entry.name) not in _live
            and not any(var.startswith(TOKEN_VAR.encode() + b"=") for var in environ)
        ):
            found.append(int(entry.name))
    return found


def _reap_orphans() -> None:
    """Collect the exit status of adopted orphans, so they do not linger as zombies."""
    me = str(os.getpid())
    with _lock:
        for entry in _processes():
            stat = _stat(entry)
            if stat is None or stat[1] != me or stat[0] != "Z" or int(entry.name) in _live:
                continue
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)


def _processes() -> list[Path]:
    try:
        return [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return []


def _stat(entry: Path) -> tuple[str, str, int] | None:
    """(state, parent pid, start time in clock ticks) from /proc/PID/stat, or None if
    the process is gone."""
    try:
        fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], fields[1], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None
