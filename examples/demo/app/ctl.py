"""Control the demo-shop staging app: start | stop | restart | status | reset.

    python app/ctl.py start   [--port 18080] [--state-dir DIR]
    python app/ctl.py restart          # what greenloop runs to "redeploy"

Port: --port, else $DEMO_PORT, else 18080 (bound to 127.0.0.1 only).
State dir: --state-dir, else $DEMO_STATE_DIR, else examples/demo/.state/. It holds the boot
counter (the first boot after `reset` has its upstream pools down), the pid file and the
server log. Standard library only, so it runs under any Python 3.11.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parent
SERVER = APP_DIR / "server.py"
DEFAULT_STATE_DIR = APP_DIR.parent / ".state"
DEFAULT_PORT = 18080
PID_FILE = "server.pid"
LOG_FILE = "server.log"
BOOT_FILE = "boots"  # written by server.py
EXIT_NOT_RUNNING = 3  # `status` when stopped, as LSB init scripts do


class CtlError(Exception):
    """A failure to explain to the user in one message; exit code 1."""


@dataclass(frozen=True)
class Running:
    pid: int
    port: int


def say(message: str) -> None:
    print(f"demo-shop: {message}", flush=True)


# --- the pid file -------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not a server we started
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # A zombie still answers kill(0) but is gone for our purposes; unless only its
        # main thread is: the others still hold its files (the port) until they exit.
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return len(os.listdir(f"/proc/{pid}/task")) > 1
    return True


def _is_our_server(pid: int) -> bool:
    if not _alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): trust the pid file
    # The pid may have been reused by an unrelated process since the file was written.
    return any(arg.endswith(b"server.py") for arg in args)


def read_pid_file(state_dir: Path) -> tuple[Running | None, str | None]:
    """The server the pid file names, and a note when the file was stale (and removed)."""
    path = state_dir / PID_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        running = Running(pid=int(data["pid"]), port=int(data["port"]))
    except FileNotFoundError:
        return None, None
    except (ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None, f"removed unreadable pid file {path}"
    if _is_our_server(running.pid):
        return running, None
    path.unlink(missing_ok=True)
    return None, f"removed stale pid file (pid {running.pid} is not running)"


def write_pid_file(state_dir: Path, running: Running) -> None:
    path = state_dir / PID_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": running.pid, "port": running.port}), encoding="utf-8")
    tmp.replace(path)


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Serialise ctl invocations on one state dir (two restarts at once would race)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    with open(state_dir / "ctl.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- talking to the server ----------------------------------------------------


def health(port: int, timeout: float = 1.0) -> dict[str, Any] | None:
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except (OSError, ValueError):
        return None


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the server sets it: connections in TIME_WAIT from a server that
        # just stopped do not block a restart, a live listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _log_tail(state_dir: Path, lines: int = 8) -> str:
    try:
        text = (state_dir / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def _describe(info: dict[str, Any] | None) -> str:
    if info is None:
        return "not answering /health"
    pools = "ready" if info.get("boot", 1) > 1 else "down until a restart"
    return f"boot {info.get('boot')}, upstream pools {pools}"


# --- actions ------------------------------------------------------------------


def start(port: int, state_dir: Path, timeout: float) -> Running:
    running, note = read_pid_file(state_dir)
    if note:
        say(note)
    if running is not None:
        if running.port != port:
            raise CtlError(
                f"already running as pid {running.pid} on port {running.port}, not {port}; "
                "stop it first"
            )
        say(f"already running: pid {running.pid} on http://127.0.0.1:{port}")
        return running
    if port_in_use(port):
        other = health(port)
        hint = (
            f" (a demo-shop with pid {other['pid']} answers there: started with another state dir?)"
            if other and "pid" in other
            else ""
        )
        raise CtlError(
            f"port {port} on 127.0.0.1 is already in use by another process{hint}; "
            "stop it or choose another port with --port or DEMO_PORT"
        )

    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOG_FILE, "ab") as log:
        # Its own session and no inherited pipes: the server outlives this command, and
        # whoever captures this command's output (greenloop) must see EOF when it exits.
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", str(port), "--state-dir", str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    running = Running(proc.pid, port)
    write_pid_file(state_dir, running)

    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            (state_dir / PID_FILE).unlink(missing_ok=True)
            raise CtlError(
                f"server exited with code {code} during start; log {state_dir / LOG_FILE}:\n"
                + _log_tail(state_dir)
            )
        info = health(port, timeout=0.5)
        if info is not None and info.get("pid") == proc.pid:
            say(f"started pid {proc.pid} on http://127.0.0.1:{port} ({_describe(info)})")
            return running
        if time.monotonic() > deadline:
            _terminate(proc.pid)
            (state_dir / PID_FILE).unlink(missing_ok=True)
            raise CtlError(f"server did not answer /health within {timeout:g}s; stopped it")
        time.sleep(0.05)


def _terminate(pid: int, grace: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    killed = False
    while _alive(pid):
        if time.monotonic() > deadline:
            if killed:
                break  # not gone 2 s after SIGKILL: start says so if its port is held
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + 2.0
        time.sleep(0.02)
    # Reap it when it is our own child (start timed out); otherwise init does.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(state_dir: Path) -> Running | None:
    running, note = read_pid_file(state_dir)
    if note:
        say(note)
    if running is None:
        say("not running")
        return None
    _terminate(running.pid)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    say(f"stopped pid {running.pid}")
    return running


def status(state_dir: Path) -> int:
    running, note = read_pid_file(state_dir)
    if note:
        say(note)
    if running is None:
        say("not running")
        return EXIT_NOT_RUNNING
    info = health(running.port)
    say(f"running: pid {running.pid} on http://127.0.0.1:{running.port} ({_describe(info)})")
    return 0


def reset(state_dir: Path) -> None:
    (state_dir / BOOT_FILE).unlink(missing_ok=True)
    running, _ = read_pid_file(state_dir)
    suffix = (
        f"; the running server (pid {running.pid}) keeps its mode until it restarts"
        if running
        else ""
    )
    say(f"reset boot counter in {state_dir}: the next start is a first boot{suffix}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Control the demo-shop staging app.")
    parser.add_argument("action", choices=["start", "stop", "restart", "status", "reset"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("DEMO_STATE_DIR") or DEFAULT_STATE_DIR),
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for /health")
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()

    try:
        with locked(state_dir):
            if args.action == "start":
                start(args.port, state_dir, args.timeout)
            elif args.action == "stop":
                stop(state_dir)
            elif args.action == "restart":
                stopped = stop(state_dir)
                started = start(args.port, state_dir, args.timeout)
                was = f"pid {stopped.pid}" if stopped else "nothing running"
                say(f"restarted: {was} -> pid {started.pid} on port {started.port}")
            elif args.action == "status":
                return status(state_dir)
            else:
                reset(state_dir)
    except CtlError as exc:
        print(f"demo-shop: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
