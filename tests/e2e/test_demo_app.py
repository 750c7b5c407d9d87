"""The examples' staging app and suites, as greenloop meets them: real processes on loopback.

No greenloop loop here (tests/e2e/test_run.py drives `greenloop run`); these pin down what
the examples promise: 503s on a first boot that a restart fixes, exactly which demo tests
fail, a rerun of only those through GREENLOOP_SELECT, the 403s of the auth example, and
ctl.py's behaviour when things are not tidy.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.cli import EXAMPLES, REPO, free_port

pytestmark = pytest.mark.e2e

DEMO = EXAMPLES / "demo"
AUTH = EXAMPLES / "auth"
CTL = DEMO / "app" / "ctl.py"

# Load the plugin by module name whether or not greenloop is pip-installed (when it is,
# the entry point is blocked so the module is not registered twice).
PLUGIN = ("-p", "no:greenloop", "-p", "greenloop.pytest_plugin")

FIRST_BOOT_FAILURES = {
    "tests/test_critical.py::test_websocket_connect": ("failure", "HTTP 503"),
    "tests/test_critical.py::test_payments_upstream_reachable": (
        "failure",
        "503 Service Unavailable",
    ),
    "tests/test_core.py::test_inventory_upstream_reachable": ("failure", "HTTP 503"),
    "tests/test_critical.py::test_websocket_echo": (
        "skipped",
        "greenloop: depends on tests/test_critical.py::test_websocket_connect, which did not pass",
    ),
}


@dataclass
class App:
    port: int
    state_dir: Path
    ctl: Path = CTL

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, action: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(self.ctl), action, "--port", str(self.port), *extra],
            env={**os.environ, "DEMO_STATE_DIR": str(self.state_dir)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = App(free_port(), tmp_path / "state")
    try:
        yield app
    finally:
        app.run("stop")


def run_suite(
    app: App, tmp_path: Path, folder: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, ET.Element]]:
    xml = tmp_path / f"junit-{len(list(tmp_path.glob('junit-*')))}.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *PLUGIN, *args],
        cwd=folder,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO / "operator"),
            "BASE_URL": app.url,
            "GREENLOOP_JUNIT_XML": str(xml),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    cases = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        cases[str(props["greenloop.id"])] = case
    return proc, cases


def not_passed(cases: dict[str, ET.Element]) -> dict[str, tuple[str, str]]:
    """id -> (element, message) for every testcase with a failure, error or skip."""
    out = {}
    for test_id, case in cases.items():
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                out[test_id] = (tag, element.get("message", ""))
    return out


def test_connectivity_answers_503_on_first_boot_and_200_after_restart(app: App) -> None:
    started = app.run("start")
    assert started.returncode == 0, started.stderr
    assert "upstream pools down until a restart" in started.stdout

    assert app.get("/health").json()["boot"] == 1
    for path in ("/ws/connect", "/api/connectivity/payments", "/api/connectivity/inventory"):
        resp = app.get(path)
        assert resp.status_code == 503, path
        assert "upstream pool not initialised" in resp.json()["error"]
    assert app.get("/api/products").status_code == 200  # the rest of the app works

    restarted = app.run("restart")
    assert restarted.returncode == 0, restarted.stderr
    assert "restarted: pid" in restarted.stdout
    assert app.get("/health").json()["boot"] == 2
    for path in ("/ws/connect", "/api/connectivity/payments", "/api/connectivity/inventory"):
        assert app.get(path).status_code == 200, path

    # reset makes the next start a first boot again.
    app.run("reset")
    app.run("restart")
    assert app.get("/ws/connect").status_code == 503


def test_demo_suite_fails_exactly_the_connectivity_tests_then_a_selected_rerun_passes(
    app: App, tmp_path: Path
) -> None:
    assert app.run("start").returncode == 0

    first, cases = run_suite(app, tmp_path, DEMO, "-q", "tests")
    assert "3 failed, 37 passed, 1 skipped" in first.stdout, first.stdout
    assert len(cases) == 41  # validation.yaml's expectedTests
    failing = not_passed(cases)
    assert set(failing) == set(FIRST_BOOT_FAILURES)
    for test_id, (tag, text) in FIRST_BOOT_FAILURES.items():
        assert failing[test_id][0] == tag
        assert text in failing[test_id][1], test_id

    assert app.run("restart").returncode == 0
    select = tmp_path / "select.txt"
    select.write_text("".join(f"{test_id}\n" for test_id in FIRST_BOOT_FAILURES))
    rerun, cases = run_suite(
        app, tmp_path, DEMO, "-q", "tests", env={"GREENLOOP_SELECT": str(select)}
    )
    assert rerun.returncode == 0, rerun.stdout
    assert "4 passed, 37 deselected" in rerun.stdout
    assert set(cases) == set(FIRST_BOOT_FAILURES)


@pytest.mark.parametrize(
    ("suite", "count"),
    [("tests/test_critical.py", 13), ("tests/test_core.py", 15), ("tests/test_extended.py", 13)],
)
def test_each_demo_suite_runs_on_its_own(app: App, tmp_path: Path, suite: str, count: int) -> None:
    # How fast the suites run is measured in bench/loop_overhead.py, not asserted here.
    assert app.run("start").returncode == 0
    proc, cases = run_suite(app, tmp_path, DEMO, "-q", suite)
    assert len(cases) == count, proc.stdout


def test_auth_suite_gets_403_on_the_three_authenticated_tests(tmp_path: Path) -> None:
    port = free_port()
    state_dir = tmp_path / "auth-state"
    auth_ctl = App(port, state_dir, ctl=AUTH / "ctl.py")

    def ctl(action: str) -> subprocess.CompletedProcess[str]:
        return auth_ctl.run(action, "--state-dir", str(state_dir))

    try:
        assert ctl("start").returncode == 0
        proc, cases = run_suite(
            auth_ctl, tmp_path, AUTH, "-q", "tests", env={"API_TOKEN": "wrong-token"}
        )
        assert "3 failed, 2 passed" in proc.stdout, proc.stdout
        failing = not_passed(cases)
        assert set(failing) == {
            "tests/test_account.py::test_profile",
            "tests/test_account.py::test_order_history",
            "tests/test_account.py::test_place_order",
        }
        assert all("403" in message for _, message in failing.values()), failing

        marker = state_dir / "redeploys.log"
        assert not marker.exists()
        assert ctl("redeploy").returncode == 0
        assert marker.read_text().count("redeploy\n") == 1
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["boot"] == 2
    finally:
        ctl("stop")


def test_start_refuses_a_port_another_process_holds(app: App) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", app.port))
        other.listen()
        proc = app.run("start")
    assert proc.returncode == 1
    assert f"port {app.port} on 127.0.0.1 is already in use by another process" in proc.stderr
    assert not (app.state_dir / "server.pid").exists()


# A server whose main thread leaves first on SIGTERM while another thread still holds the
# port for a while: the thread-group leader then reads "Z" in /proc/<pid>/stat, yet the
# process is not gone (the main thread leaves with the exit syscall, not exit_group, as a
# busy process's threads can outlive its main one for a moment under load).
HALF_DEAD = """
import ctypes, signal, socket, sys, threading, time
signal.signal(signal.SIGTERM, lambda *_: ctypes.CDLL(None).syscall(60, 0))  # SYS_exit
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
threading.Thread(target=time.sleep, args=(120,)).start()
print("listening", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="SYS_exit's number is x86_64's")
def test_restart_waits_for_every_thread_of_the_old_server_before_starting(
    app: App, tmp_path: Path
) -> None:
    server = tmp_path / "old" / "server.py"  # named as ctl.py's own server
    server.parent.mkdir()
    server.write_text(HALF_DEAD)
    old = subprocess.Popen(
        [sys.executable, str(server), str(app.port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert old.stdout is not None and old.stdout.readline().strip() == "listening"
        app.state_dir.mkdir(parents=True)
        (app.state_dir / "server.pid").write_text(json.dumps({"pid": old.pid, "port": app.port}))
        proc = app.run("restart")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"stopped pid {old.pid}" in proc.stdout
        assert app.get("/health").json()["pid"] != old.pid
    finally:
        old.kill()
        old.wait(timeout=10)
        old.stdout.close()


def test_start_replaces_a_stale_pid_file(app: App) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    app.state_dir.mkdir(parents=True)
    (app.state_dir / "server.pid").write_text(json.dumps({"pid": dead.pid, "port": app.port}))

    proc = app.run("start")
    assert proc.returncode == 0, proc.stderr
    assert f"removed stale pid file (pid {dead.pid} is not running)" in proc.stdout
    assert app.get("/health").json()["pid"] != dead.pid


@pytest.mark.parametrize(
    ("action", "code", "says"),
    [("stop", 0, "not running"), ("status", 3, "not running")],
)
def test_stop_and_status_when_nothing_runs(app: App, action: str, code: int, says: str) -> None:
    proc = app.run(action)
    assert (proc.returncode, proc.stdout.strip()) == (code, f"demo-shop: {says}")


def test_start_twice_keeps_one_server(app: App) -> None:
    assert app.run("start").returncode == 0
    pid = app.get("/health").json()["pid"]
    again = app.run("start")
    assert again.returncode == 0
    assert f"already running: pid {pid}" in again.stdout
    status = app.run("status")
    assert status.returncode == 0
    assert f"running: pid {pid}" in status.stdout
