"""Classification time against line length: linear, for any line (issue 8, Severe 1).

Classifies one failure whose message is a single hostile line (``got`` + N spaces + ``x``,
the probe that hung Python's re, and ``HTTP`` + N spaces + ``503``) and one ordinary line
of N characters, for N from 1 KiB to 1 MiB, and prints the time and its ratio to the
previous row: ~2 per doubling is linear. The peer is the same status-context pattern on
Python's backtracking ``re`` (the engine greenloop used before), run on a few hundred
spaces only, because it is cubic (400 spaces: 1.7 s; 4,000: > 590 s).

    python bench/classify_lines.py [--max 1048576]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from greenloop.core.classify import diagnose  # noqa: E402
from greenloop.core.model import Outcome, TestResult  # noqa: E402

# The built-in status-context pattern as it was on Python's re (classify.py before RE2).
_OLD_STATUS = re.compile(
    r"\b(?:got|received|returned|responded with|actual|but was|but: was)\b\s*[:=]?\s*"
    r"[<\[(\"']?\s*(?:status\s*(?:code\s*)?)?(?:HTTP\s*)?"
    r"(?P<code>[1-5]\d\d)(?![\d.,]\d)(?!\s*(?:ms|s|sec|seconds|bytes|items|rows|%))\b",
    re.IGNORECASE,
)


def best_of(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def failure(message: str) -> TestResult:
    return TestResult(id="t::a", name="a", classname="t", outcome=Outcome.FAILED, message=message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=1 << 20, help="longest line (characters)")
    args = parser.parse_args()
    shapes = {
        "got + spaces + x": lambda n: "got" + " " * n + "x",
        "HTTP + spaces + 503": lambda n: "HTTP" + " " * n + "503",
        "ordinary text": lambda n: ("connection to backend failed after retry " * (n // 41 + 1))[
            :n
        ],
    }
    print(f"{'line':>9}  " + "  ".join(f"{name:>26}" for name in shapes))
    previous: dict[str, float] = {}
    n = 1024
    while n <= args.max:
        cells = []
        for name, make in shapes.items():
            test = failure(make(n))
            seconds = best_of(3, lambda test=test: diagnose(test))  # type: ignore[misc]
            ratio = f"(x{seconds / previous[name]:.1f})" if name in previous else ""
            cells.append(f"{seconds * 1000:>12.2f} ms {ratio:>9}")
            previous[name] = seconds
        print(f"{n:>9}  " + "  ".join(f"{c:>26}" for c in cells))
        n *= 2
    print("\npeer: the same status pattern on Python's re, got + N spaces + x")
    for spaces in (100, 200, 400):
        line = "got" + " " * spaces + "x"
        seconds = best_of(1, lambda line=line: _OLD_STATUS.search(line))  # type: ignore[misc]
        ours = best_of(3, lambda line=line: diagnose(failure(line)))  # type: ignore[misc]
        print(
            f"{spaces:>9}  re: {seconds * 1000:>10.1f} ms   greenloop (RE2, whole diagnosis):"
            f" {ours * 1000:.2f} ms   ({seconds / ours:.0f}x faster)"
        )


if __name__ == "__main__":
    main()
