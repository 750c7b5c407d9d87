"""Starting, waiting for and stopping the cluster's processes; the errors they raise.

Standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or queried."""


class NodeError(ControlPlaneError):
    """The real node could not be built, started or stopped cleanly."""


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; nothing to do for a gone process."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held together, then released)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    alive: Callable[[], None] | None = None,
) -> T:
    """Call `probe` until it returns something truthy; raise ControlPlaneError on timeout.

    `alive` is called each round and should raise when waiting is pointless
    (e.g. the process that should become ready has exited).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if alive is not None:
            alive()
        try:
            result = probe()
            if result:
                return result
        except Exception as exc:  # the thing is not up yet
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # it holds the response's socket (a ResourceWarning otherwise)
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Linux: have the kernel SIGTERM the child if the test process dies abruptly."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])
