"""How much time greenloop adds per iteration beyond the suites, the redeploy and the wait.

Runs the demo (examples/demo) end to end in this process, several times, timing the
external work (suite processes, the redeploy command, the health wait) separately from
the whole; what is left is greenloop's own overhead: parsing JUnit, classifying,
deciding, writing selection files, status and the report. The peer run is the same
three suites launched directly, as a person's shell loop would, in the same process.

    python bench/loop_overhead.py [--runs 5]

Target: under 0.3 s of overhead per iteration.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from greenloop.local import loop as loop_module  # noqa: E402
from greenloop.local import redeploy as rd  # noqa: E402
from greenloop.local.progress import Progress  # noqa: E402
from greenloop.local.specfile import load_spec  # noqa: E402

TARGET_SECONDS = 0.3
F = TypeVar("F", bound=Callable[..., Any])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stopwatch:
    def __init__(self) -> None:
        self.external = 0.0

    def wrap(self, fn: F) -> F:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.external += time.perf_counter() - started

        return timed  # type: ignore[return-value]


def demo_copy(root: Path, port: int) -> Path:
    demo = root / "demo"
    shutil.copytree(
        REPO / "examples" / "demo", demo, ignore=shutil.ignore_patterns(".state", "__pycache__")
    )
    spec = demo / "validation.yaml"
    spec.write_text(spec.read_text().replace("18080", str(port)))
    return demo


def ctl(demo: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, str(demo / "app" / "ctl.py"), *args],
        check=True,
        capture_output=True,
        env={**os.environ, "DEMO_STATE_DIR": str(demo / ".state")},
    )


def one_greenloop_run(root: Path) -> tuple[float, float, int]:
    port = free_port()
    demo = demo_copy(root, port)
    os.environ["DEMO_STATE_DIR"] = str(demo / ".state")
    ctl(demo, "reset", "--port", str(port))
    ctl(demo, "start", "--port", str(port))
    watch = Stopwatch()
    originals = (loop_module.run_suite, rd.run_command, rd.wait_healthy)
    loop_module.run_suite = watch.wrap(loop_module.run_suite)
    rd.run_command = watch.wrap(rd.run_command)
    rd.wait_healthy = watch.wrap(rd.wait_healthy)
    try:
        (obj,) = load_spec(demo / "validation.yaml").objects
        started = time.perf_counter()
        result = loop_module.LocalRun(
            obj, out_dir=root / "out", progress=Progress(io.StringIO(), quiet=True)
        ).run()
        total = time.perf_counter() - started
    finally:
        loop_module.run_suite, rd.run_command, rd.wait_healthy = originals
        ctl(demo, "stop", "--port", str(port))
    assert result.exit_code == 0, result.report
    return total, watch.external, result.state.iteration


def one_peer_run(root: Path) -> float:
    """The same suites launched directly, once each: what a shell loop spends."""
    port = free_port()
    demo = demo_copy(root, port)
    os.environ["DEMO_STATE_DIR"] = str(demo / ".state")
    ctl(demo, "reset", "--port", str(port))
    ctl(demo, "start", "--port", str(port))
    (obj,) = load_spec(demo / "validation.yaml").objects
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    try:
        for suite in obj.spec.suites:
            suite_env = {**env, **{v.name: v.value for v in suite.env}}
            subprocess.run(list(suite.command), cwd=demo, env=suite_env, capture_output=True)
        return time.perf_counter() - started
    finally:
        ctl(demo, "stop", "--port", str(port))


def one_iteration(root: Path, parallelism: int) -> float:
    """Iteration 1's wall time on the demo with its three suites at one priority, so
    policy.parallelism can run them side by side."""
    port = free_port()
    demo = demo_copy(root, port)
    os.environ["DEMO_STATE_DIR"] = str(demo / ".state")
    ctl(demo, "reset", "--port", str(port))
    ctl(demo, "start", "--port", str(port))
    try:
        (obj,) = load_spec(demo / "validation.yaml").objects
        spec = replace(
            obj.spec,
            suites=tuple(replace(suite, priority="P1") for suite in obj.spec.suites),
            policy=replace(obj.spec.policy, parallelism=parallelism, max_iterations=1),
        )
        result = loop_module.LocalRun(
            replace(obj, spec=spec),
            out_dir=root / "out",
            progress=Progress(io.StringIO(), quiet=True),
        ).run()
    finally:
        ctl(demo, "stop", "--port", str(port))
    first = result.state.history[0]
    assert first.finished is not None, result.report
    return first.finished - first.started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    overheads: list[float] = []
    first_iterations: list[float] = []
    peers: list[float] = []
    iterations = 0
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            total, external, iterations = one_greenloop_run(Path(tmp))
            overheads.append((total - external) / iterations)
            first_iterations.append(total)
        with tempfile.TemporaryDirectory() as tmp:
            peers.append(one_peer_run(Path(tmp)))

    overhead = statistics.median(overheads)
    print(f"demo runs: {args.runs}, iterations per run: {iterations}")
    print(f"greenloop overhead per iteration (median): {overhead * 1000:.1f} ms")
    print(f"  min {min(overheads) * 1000:.1f} ms, max {max(overheads) * 1000:.1f} ms")
    whole = statistics.median(first_iterations)
    print(f"whole greenloop run (2 iterations + redeploy), median: {whole:.2f} s")
    print(f"peer: the 3 suites launched directly once, median: {statistics.median(peers):.2f} s")
    ratio = overhead / TARGET_SECONDS
    print(f"ratio overhead/target: {ratio:.3f} (target < 1, i.e. < {TARGET_SECONDS} s)")
    print(f"ratio overhead/peer suite time: {overhead / statistics.median(peers):.3f}")
    ok = overhead < TARGET_SECONDS
    print("PASS" if ok else "MISS", f"overhead per iteration < {TARGET_SECONDS} s")

    walls: dict[int, list[float]] = {1: [], 3: []}
    for _ in range(args.runs):
        for parallelism in walls:
            with tempfile.TemporaryDirectory() as tmp:
                walls[parallelism].append(one_iteration(Path(tmp), parallelism))
    one, three = statistics.median(walls[1]), statistics.median(walls[3])
    print(
        f"iteration wall time, the 3 demo suites at one priority (median): parallelism 1 "
        f"{one:.2f} s, parallelism 3 {three:.2f} s; ratio 3/1 {three / one:.2f} (target <= 0.5)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
