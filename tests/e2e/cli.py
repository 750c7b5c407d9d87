"""Drive the greenloop CLI as a user would: a subprocess in a folder."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def greenloop_command() -> list[str]:
    script = Path(sys.executable).parent / "greenloop"
    return [str(script)] if script.exists() else [sys.executable, "-m", "greenloop.cli"]


def as_from_a_terminal() -> None:
    """preexec_fn for a greenloop a test will signal: the stop signals at their defaults,
    as a terminal starts a foreground program, whatever the test runner inherited (a
    non-interactive shell's background job ignores SIGINT; nohup ignores SIGHUP)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def greenloop(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + full_env.get("PATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [*greenloop_command(), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_example(name: str, dest: Path, port: int, default_port: int) -> Path:
    """A private copy of an example on its own port, so tests never share state."""
    target = dest / name
    shutil.copytree(
        EXAMPLES / name,
        target,
        ignore=shutil.ignore_patterns(".state", "__pycache__", ".greenloop"),
    )
    for path in target.rglob("*.yaml"):
        path.write_text(path.read_text().replace(str(default_port), str(port)))
    return target
