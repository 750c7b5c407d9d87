"""Find the processes a test started, by a marker in their environment, on any path."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

MARKER_VAR = "GREENLOOP_TEST_MARKER"


def new_marker() -> dict[str, str]:
    """An environment entry every process started under it inherits."""
    return {MARKER_VAR: uuid.uuid4().hex}


def marked(env: dict[str, str]) -> list[int]:
    """Live (non-zombie) processes whose environment carries the marker of ``env``."""
    needle = f"{MARKER_VAR}={env[MARKER_VAR]}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
        except OSError:
            continue
        found.append(int(entry.name))
    return found


def left_running(env: dict[str, str], settle: float = 2.0) -> list[str]:
    """What is still running with the marker (after ``settle`` s for exits in flight),
    as command lines; kills them so one failing test does not leak into the next."""
    deadline = time.monotonic() + settle
    while (pids := marked(env)) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = []
    for pid in pids:
        with contextlib.suppress(OSError):
            lines.append(
                f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return lines
