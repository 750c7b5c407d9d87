"""Benchmark: greenloop's JUnit reader against junitparser on a large generated report.

    python bench/junit_ingest.py [--cases N] [--repeat R] [--keep]

Each measurement runs in a fresh interpreter (this script re-invoked with --worker), so
one parser's allocations cannot lower or raise the other's numbers. A worker reports:
- wall time of parse + iteration, measured inside the worker with perf_counter (the
  interpreter's start-up and imports are excluded for both);
- peak resident memory of the whole worker process, ru_maxrss of RUSAGE_SELF read at its
  end. This is the gross figure, interpreter included: it is what the process costs, and
  it is measured identically for both. The baseline (an interpreter that imports both
  libraries and parses nothing) is printed so the net figures can be read off too.

Both do equivalent work: every testcase's name, classname, time, result kind and
message, result text and system-out/system-err are read.
Targets: at least 2x faster than junitparser and at most 1/5 of its peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
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


def generate(path: Path, cases: int, *, seed: int = 7) -> None:
    """A pytest-style report: 50 suites, ~5% failures with a real-sized traceback, ~1%
    skips, and a few lines of captured output on every testcase."""
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
                    f'time="{rng.random() * 3:.3f}">\n'
                )
                roll = rng.random()
                if roll < 0.05:
                    trace = TRACEBACK.format(n=n, s=s, line=10 + i % 400)
                    message = (
                        "httpx.HTTPStatusError: Server error '503 Service Unavailable' "
                        f"for url 'http://127.0.0.1:8000/api/orders/{n}'"
                    )
                    out.write(f"    <failure message={quoteattr(message)}>{escape(trace)}")
                    out.write("</failure>\n")
                elif roll < 0.06:
                    out.write('    <skipped type="pytest.skip" message="not on staging"/>\n')
                log = "".join(
                    f"2026-11-24 03:{k:02d}:00 INFO  GET /api/orders/{n} -> 200 in {k * 7}ms\n"
                    for k in range(3)
                )
                out.write(f"    <system-out>{escape(log)}</system-out>\n  </testcase>\n")
            out.write("</testsuite>\n")
            written += count
        out.write("</testsuites>\n")


# -- workers: run in a fresh interpreter ---------------------------------------------------


def work_greenloop(path: str) -> int:
    from greenloop.core.junit import iter_junit

    seen = 0
    for test in iter_junit(path):
        seen += len(test.id) + len(test.classname) + int(test.time >= 0)
        seen += len(test.outcome) + len(test.message) + len(test.details) + len(test.output)
    return seen


def work_greenloop_collect(path: str) -> int:
    from greenloop.core.junit import parse_junit

    report = parse_junit(path)
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


def whole_process(command: list[str]) -> dict[str, float]:
    """Wall time, CPU time (user + system) and peak RSS of one process, from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    scale = 1 if sys.platform == "darwin" else 1024
    return {
        "seconds": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_bytes": usage.ru_maxrss * scale,
    }


def compare_whole_processes(path: Path, repeat: int) -> float:
    greenloop = Path(sys.executable).parent / "greenloop"
    commands = {
        "greenloop junit --json": [str(greenloop), "junit", str(path), "--json"],
        "junitparser script": [sys.executable, "-c", JUNITPARSER_SCRIPT, str(path)],
        "pyexpat floor": [sys.executable, "-c", PYEXPAT_SCRIPT, str(path)],
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            runs[name].append(whole_process(command))
    print("whole processes (start-up and imports included; best of runs; peak RSS from wait4):")
    best: dict[str, tuple[float, float, float]] = {}
    for name, done in runs.items():
        best[name] = (
            min(r["seconds"] for r in done),
            min(r["cpu"] for r in done),
            max(r["peak_bytes"] for r in done),
        )
        wall, cpu, peak = best[name]
        print(f"  {name:<26} {wall:8.3f} s wall  {cpu:8.3f} s cpu   peak {peak / 2**20:8.1f} MiB")
    ours, theirs = best["greenloop junit --json"], best["junitparser script"]
    ratio = theirs[1] / ours[1]
    print(
        f"whole process: greenloop {ratio:.2f}x junitparser's CPU time"
        f" ({theirs[0] / ours[0]:.2f}x wall), {ours[2] / 2**20:.0f} MiB peak"
        " (targets: >= 2x, <= 60 MiB)"
    )
    print()
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per parser (best time)")
    parser.add_argument("--keep", action="store_true", help="keep the generated report")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(*args.worker)
        return 0

    folder = Path(tempfile.mkdtemp(prefix="greenloop-bench-"))
    path = folder / "report.xml"
    generate(path, args.cases)
    size = path.stat().st_size
    print(f"report: {args.cases:,} testcases, {size / 2**20:.1f} MiB ({path})")
    print(f"python {sys.version.split()[0]}; each figure from a fresh interpreter;")
    print(
        f"time: best of {args.repeat} interleaved runs, parse + iterate, perf_counter inside"
        " the worker (targets use wall time; cpu time shown for a busy machine)"
    )
    print("memory: peak RSS of the worker process (ru_maxrss, RUSAGE_SELF), interpreter included")
    print()

    compare_whole_processes(path, args.repeat)

    # Rounds interleave the parsers, so a busy machine slows both alike.
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in WORKERS}
    for round_ in range(args.repeat):
        for kind in WORKERS:
            if kind != "baseline" or round_ == 0:
                runs[kind].append(measure(kind, path))
    results: dict[str, tuple[float, float]] = {}
    for kind, done in runs.items():
        results[kind] = (min(r["seconds"] for r in done), max(r["peak_bytes"] for r in done))
        cpu = min(r["cpu"] for r in done)
        seconds, peak = results[kind]
        print(
            f"  {kind:<26} {seconds:8.3f} s wall  {cpu:8.3f} s cpu   peak {peak / 2**20:8.1f} MiB"
        )

    ours_t, ours_m = results["greenloop (iter_junit)"]
    theirs_t, theirs_m = results["junitparser"]
    base_m = results["baseline"][1]
    speedup = theirs_t / ours_t
    memory_ratio = ours_m / theirs_m
    net_ratio = (ours_m - base_m) / max(1.0, theirs_m - base_m)
    print()
    print(f"speed:  greenloop is {speedup:.2f}x faster than junitparser (target >= 2x)")
    print(
        f"memory: greenloop peak is {memory_ratio:.3f} of junitparser's "
        f"(target <= 0.2); net of the baseline interpreter: {net_ratio:.3f}"
    )
    collect_t, collect_m = results["greenloop (parse_junit)"]
    print(
        f"(parse_junit, which keeps every result: {theirs_t / collect_t:.2f}x faster, "
        f"{collect_m / theirs_m:.3f} of the memory)"
    )
    print(f"{'PASS' if speedup >= 2 else 'MISS'}: speed target")
    print(f"{'PASS' if memory_ratio <= 0.2 else 'MISS'}: memory target")
    if args.keep:
        print(f"kept {path}")
    else:
        path.unlink()
        folder.rmdir()
    return 0 if speedup >= 2 and memory_ratio <= 0.2 else 1


if __name__ == "__main__":
    sys.exit(main())
