"""Benchmark: greenloop's JUnit reader against junitparser on large generated reports.

    python bench/junit_ingest.py [--cases N] [--repeat R] [--shape bench|text|both]
                                 [--linear M] [--keep]

Two shapes (issue 8 asks for both): ``bench``, a pytest-style report where ~5% fail with
a real-sized traceback and every testcase has 3 lines of system-out; ``text``, where a
fifth of the testcases carry ~20 lines of system-out and 2% fail (character data is the
hot spot there).

First, whole processes as a user runs them: ``greenloop junit FILE --json`` beside a
junitparser script that prints the same counts and failures and beside the pyexpat
floor (empty handlers); time is CPU (user + system, from wait4), the median of
interleaved runs, so a busy machine slows all alike; memory is peak RSS. Then
``--linear M`` (default 10x the cases) runs greenloop's CLI on M testcases of the same
shape and prints the CPU ratio M/N against the ideal M/N.

Then the library calls, each in a fresh interpreter (this script re-invoked with
--worker): parse + iteration inside the worker, imports excluded.
Targets (issue 8): whole CLI >= 2x junitparser's whole process on both shapes, peak RSS
<= 60 MiB at 100k, linear to 1M.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parent.parent
TRACEBACK = """\
    def test_{n}(client):
        resp = client.get("/api/orders/{n}")
>       resp.raise_for_status()

tests/e2e/test_orders_{s}.py:{line}:
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _

self = <Response [503 Service Unavailable]>

    def raise_for_status(self) -> Response:
        request = self._request
        if self.is_success:
            return self
        message = message.format(self, error_type=error_type)
>       raise HTTPStatusError(message, request=request, response=self)
E       httpx.HTTPStatusError: Server error '503 Service Unavailable' for url \
'http://127.0.0.1:8000/api/orders/{n}'
E       For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/503

.venv/lib/python3.11/site-packages/httpx/_models.py:829: HTTPStatusError
"""


def _report(
    path: Path, cases: int, seed: int, testcase: Callable[[random.Random, int, int, int], str]
) -> None:
    """50 suites of ``cases`` testcases in all; ``testcase(rng, n, s, i)`` writes what
    follows the ``time`` attribute of testcase ``n`` (the ``i``-th of suite ``s``)."""
    rng = random.Random(seed)
    suites = 50
    per_suite = max(1, cases // suites)
    written = 0
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n')
        for s in range(suites):
            count = per_suite if s < suites - 1 else cases - written
            out.write(f'<testsuite name="orders_{s}" tests="{count}" errors="0">\n')
            for i in range(count):
                n = written + i
                out.write(
                    f'  <testcase classname="tests.e2e.test_orders_{s}" name="test_{n}" '
                    f'time="{rng.random() * 3:.3f}"'
                )
                out.write(testcase(rng, n, s, i))
            out.write("</testsuite>\n")
            written += count
        out.write("</testsuites>\n")


def _failure(n: int, s: int, i: int) -> str:
    trace = TRACEBACK.format(n=n, s=s, line=10 + i % 400)
    message = (
        "httpx.HTTPStatusError: Server error '503 Service Unavailable' "
        f"for url 'http://127.0.0.1:8000/api/orders/{n}'"
    )
    return f"    <failure message={quoteattr(message)}>{escape(trace)}</failure>\n"


def generate(path: Path, cases: int, *, seed: int = 7) -> None:
    """A pytest-style report: 50 suites, ~5% failures with a real-sized traceback, ~1%
    skips, and a few lines of captured output on every testcase."""

    def testcase(rng: random.Random, n: int, s: int, i: int) -> str:
        parts = [">\n"]
        roll = rng.random()
        if roll < 0.05:
            parts.append(_failure(n, s, i))
        elif roll < 0.06:
            parts.append('    <skipped type="pytest.skip" message="not on staging"/>\n')
        log = "".join(
            f"2026-11-24 03:{k:02d}:00 INFO  GET /api/orders/{n} -> 200 in {k * 7}ms\n"
            for k in range(3)
        )
        parts.append(f"    <system-out>{escape(log)}</system-out>\n  </testcase>\n")
        return "".join(parts)

    _report(path, cases, seed, testcase)


def generate_text_heavy(path: Path, cases: int, *, seed: int = 11) -> None:
    """A report heavy in captured output: a fifth of the testcases carry ~20 lines of
    system-out, 2% fail (with the same traceback as ``generate``)."""

    def testcase(rng: random.Random, n: int, s: int, i: int) -> str:
        fails = rng.random() < 0.02
        talks = rng.random() < 0.2
        if not fails and not talks:
            return "/>\n"
        parts = [">\n"]
        if fails:
            parts.append(_failure(n, s, i))
        if talks:
            log = "".join(
                f"2026-11-24 03:{k:02d}:{n % 60:02d} DEBUG worker-{k % 4} "
                f"GET /api/orders/{n}?page={k} -> 200 in {k * 7}ms <cache=miss>\n"
                for k in range(20)
            )
            parts.append(f"    <system-out>{escape(log)}</system-out>\n")
        parts.append("  </testcase>\n")
        return "".join(parts)

    _report(path, cases, seed, testcase)


SHAPES = {"bench": generate, "text": generate_text_heavy}


# -- workers: run in a fresh interpreter ---------------------------------------------------


def work_greenloop(path: str) -> int:
    from greenloop.core.junit import iter_junit

    seen = 0
    with open(path, "rb") as stream:
        for test in iter_junit(stream):
            seen += len(test.id) + len(test.classname) + int(test.time >= 0)
            seen += len(test.outcome) + len(test.message) + len(test.details) + len(test.output)
    return seen


def work_greenloop_collect(path: str) -> int:
    from greenloop.core.junit import parse_junit

    with open(path, "rb") as stream:
        report = parse_junit(stream)
    seen = 0
    for test in report.tests:
        seen += len(test.id) + len(test.classname) + int(test.time >= 0)
        seen += len(test.outcome) + len(test.message) + len(test.details) + len(test.output)
    return seen


def work_junitparser(path: str) -> int:
    from junitparser import JUnitXml, TestSuite

    xml = JUnitXml.fromfile(path)
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    seen = 0
    for suite in suites:
        for case in suite:
            seen += len(case.name or "") + len(case.classname or "") + int((case.time or 0) >= 0)
            for result in case.result:
                seen += (
                    len(type(result).__name__) + len(result.message or "") + len(result.text or "")
                )
            seen += len(case.system_out or "") + len(case.system_err or "")
    return seen


def work_baseline(path: str) -> int:
    import junitparser  # noqa: F401

    import greenloop.core.junit  # noqa: F401

    return 0


WORKERS = {
    "greenloop (iter_junit)": work_greenloop,
    "greenloop (parse_junit)": work_greenloop_collect,
    "junitparser": work_junitparser,
    "baseline": work_baseline,
}


def worker_main(kind: str, path: str) -> None:
    start, cpu_start = time.perf_counter(), time.process_time()
    checksum = WORKERS[kind](path)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    scale = 1 if sys.platform == "darwin" else 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    print(json.dumps({"seconds": elapsed, "cpu": cpu, "peak_bytes": peak, "checksum": checksum}))


def measure(kind: str, path: Path) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "operator"), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker {kind} failed:\n{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout)
    return result


# Whole processes, as a user runs them (issue 8): greenloop's CLI, a junitparser script
# that prints the same counts and failures, and the pyexpat floor (empty handlers).
JUNITPARSER_SCRIPT = """
import json, sys
from junitparser import JUnitXml, TestSuite
xml = JUnitXml.fromfile(sys.argv[1])
counts, failing = {}, []
for suite in [xml] if isinstance(xml, TestSuite) else xml:
    for case in suite:
        kind = type(case.result[0]).__name__ if case.result else "Passed"
        counts[kind] = counts.get(kind, 0) + 1
        if kind in ("Failure", "Error"):
            failing.append({"id": f"{case.classname}::{case.name}",
                            "message": case.result[0].message})
print(json.dumps({"counts": counts, "failing": failing}))
"""
PYEXPAT_SCRIPT = """
import sys
from xml.parsers import expat
p = expat.ParserCreate()
p.StartElementHandler = lambda tag, attrs: None
p.EndElementHandler = lambda tag: None
with open(sys.argv[1], "rb") as f:
    p.ParseFile(f)
"""


def whole_process(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall time, CPU time (user + system) and peak RSS of one process, from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    scale = 1 if sys.platform == "darwin" else 1024
    return {
        "seconds": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_bytes": usage.ru_maxrss * scale,
    }


def _median(values: list[float]) -> float:
    return statistics.median(values)


def compare_whole_processes(
    path: Path, repeat: int, before: Path | None = None
) -> dict[str, dict[str, float]]:
    """Each command ``repeat`` times, interleaved; medians of wall and CPU, peak RSS.
    ``before``: another checkout's ``operator/`` folder, run as "greenloop before"."""
    greenloop = Path(sys.executable).parent / "greenloop"
    commands = {
        "greenloop junit --json": [str(greenloop), "junit", str(path), "--json"],
        "junitparser script": [sys.executable, "-c", JUNITPARSER_SCRIPT, str(path)],
        "pyexpat floor": [sys.executable, "-c", PYEXPAT_SCRIPT, str(path)],
    }
    envs: dict[str, dict[str, str] | None] = dict.fromkeys(commands)
    if before is not None:
        name = "greenloop before"
        commands[name] = [sys.executable, "-m", "greenloop.cli", "junit", str(path), "--json"]
        envs[name] = dict(os.environ, PYTHONPATH=str(before.resolve()))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            runs[name].append(whole_process(command, envs[name]))
    figures: dict[str, dict[str, float]] = {}
    for name, done in runs.items():
        figures[name] = {
            "seconds": _median([r["seconds"] for r in done]),
            "cpu": _median([r["cpu"] for r in done]),
            "peak_bytes": max(r["peak_bytes"] for r in done),
        }
    return figures


def print_whole_processes(shape: str, figures: dict[str, dict[str, float]]) -> bool:
    ours = figures["greenloop junit --json"]
    theirs = figures["junitparser script"]
    floor = figures["pyexpat floor"]
    for name, f in figures.items():
        print(
            f"  {name:<24} {f['cpu']:7.3f} s cpu  {f['seconds']:7.3f} s wall"
            f"  peak {f['peak_bytes'] / 2**20:6.1f} MiB"
            f"  ({f['cpu'] / floor['cpu']:4.2f}x the pyexpat floor)"
        )
    ratio = theirs["cpu"] / ours["cpu"]
    peak = ours["peak_bytes"] / 2**20
    ok = ratio >= 2 and peak <= 60
    print(
        f"  {shape}: greenloop {ratio:.2f}x faster than junitparser in CPU"
        f" ({theirs['seconds'] / ours['seconds']:.2f}x wall), {peak:.0f} MiB peak"
        f" (targets >= 2x, <= 60 MiB): {'PASS' if ok else 'MISS'}"
    )
    if "greenloop before" in figures:
        was = figures["greenloop before"]
        print(
            f"  {shape}: before {theirs['cpu'] / was['cpu']:.2f}x junitparser"
            f" ({was['cpu']:.3f} s cpu, {was['peak_bytes'] / 2**20:.0f} MiB);"
            f" now {was['cpu'] / ours['cpu']:.2f}x faster than before"
        )
    return ok


def measure_linearity(shape: str, folder: Path, cases: int, big: int, repeat: int) -> float:
    """CPU of greenloop's CLI on ``big`` testcases over ``cases`` testcases (ideal:
    big / cases), medians of ``repeat`` runs each."""
    greenloop = Path(sys.executable).parent / "greenloop"
    cpu: dict[int, float] = {}
    for n in (cases, big):
        path = folder / f"{shape}-{n}.xml"
        if not path.exists():
            SHAPES[shape](path, n)
        cpu[n] = _median(
            [
                whole_process([str(greenloop), "junit", str(path), "--json"])["cpu"]
                for _ in range(repeat)
            ]
        )
        if n == big:
            path.unlink()
    ratio = cpu[big] / cpu[cases]
    ideal = big / cases
    print(
        f"  {shape}: {cases:,} -> {big:,} testcases: {cpu[cases]:.3f} s -> {cpu[big]:.3f} s cpu,"
        f" ratio {ratio:.2f} (ideal {ideal:.0f}; {ratio / ideal:.2f} of linear)"
    )
    return ratio / ideal


def compare_workers(path: Path, repeat: int) -> bool:
    # Rounds interleave the parsers, so a busy machine slows both alike.
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in WORKERS}
    for round_ in range(repeat):
        for kind in WORKERS:
            if kind != "baseline" or round_ == 0:
                runs[kind].append(measure(kind, path))
    results: dict[str, tuple[float, float]] = {}
    for kind, done in runs.items():
        cpu = _median([r["cpu"] for r in done])
        results[kind] = (cpu, max(r["peak_bytes"] for r in done))
        seconds = _median([r["seconds"] for r in done])
        print(
            f"  {kind:<26} {cpu:7.3f} s cpu  {seconds:7.3f} s wall"
            f"  peak {results[kind][1] / 2**20:6.1f} MiB"
        )
    ours_t, ours_m = results["greenloop (iter_junit)"]
    theirs_t, theirs_m = results["junitparser"]
    base_m = results["baseline"][1]
    speedup = theirs_t / ours_t
    memory_ratio = ours_m / theirs_m
    net_ratio = (ours_m - base_m) / max(1.0, theirs_m - base_m)
    collect_t, collect_m = results["greenloop (parse_junit)"]
    print(
        f"  iter_junit {speedup:.2f}x faster than junitparser's library call, memory"
        f" {memory_ratio:.3f} of its peak ({net_ratio:.3f} net of the interpreter);"
        f" parse_junit (keeps every result) {theirs_t / collect_t:.2f}x,"
        f" {collect_m / theirs_m:.3f} of the memory"
    )
    return speedup >= 2 and memory_ratio <= 0.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median)")
    parser.add_argument("--shape", choices=("bench", "text", "both"), default="both")
    parser.add_argument(
        "--linear", type=int, default=None, metavar="M",
        help="also run the CLI on M testcases for the linearity ratio (0: skip;"
        " default 10x --cases)",
    )  # fmt: skip
    parser.add_argument("--no-workers", action="store_true", help="skip the library calls")
    parser.add_argument(
        "--before", type=Path, metavar="DIR",
        help="another checkout's operator/ folder: its CLI is measured beside this one",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the generated reports")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(*args.worker)
        return 0

    shapes = ("bench", "text") if args.shape == "both" else (args.shape,)
    big = args.cases * 10 if args.linear is None else args.linear
    folder = Path(tempfile.mkdtemp(prefix="greenloop-bench-"))
    print(f"python {sys.version.split()[0]}; {args.repeat} interleaved runs a figure, medians")
    ok = True
    paths = {}
    for shape in shapes:
        path = folder / f"{shape}-{args.cases}.xml"
        SHAPES[shape](path, args.cases)
        paths[shape] = path
        size = path.stat().st_size
        print()
        print(f"{shape}: {args.cases:,} testcases, {size / 2**20:.1f} MiB; whole processes:")
        figures = compare_whole_processes(path, args.repeat, args.before)
        ok = print_whole_processes(shape, figures) and ok
    if big:
        print()
        print("linearity of the whole CLI (CPU, medians):")
        for shape in shapes:
            measure_linearity(shape, folder, args.cases, big, max(1, args.repeat // 2))
    if not args.no_workers:
        for shape in shapes:
            print()
            print(f"{shape}: library calls in a fresh interpreter (imports excluded):")
            compare_workers(paths[shape], args.repeat)
    if args.keep:
        print(f"kept {folder}")
    else:
        shutil.rmtree(folder)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
