"""Print the mutation score per module from a mutmut 3 run (tools/mutate calls it).

Usage: python tools/mutation_score.py MUTANTS_DIR MODULE...
       python tools/mutation_score.py --pending MUTANTS_DIR MODULE...  (names to judge again)

The score is killed / (killed + survived + no tests): a timeout counts as killed (the
test suite noticed the mutant by hanging on it, and pytest-timeout fails it), mutants not
yet checked (a run that ran out of budget) are counted apart. The survivors are listed as
``mutmut show`` names, to read with ``cd .mutmut && ../.venv/bin/mutmut show NAME``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KILLED = {1, 3, 36, 24, -24, 152, 255, 37}  # failed, pytest error, timeout, type check
SURVIVED = {0}
NO_TESTS = {5, 33}


def main(argv: list[str]) -> int:
    if argv[0] == "--pending":
        return pending(Path(argv[1]), argv[2:])
    mutants, modules = Path(argv[0]), argv[1:]
    print(f"{'module':<10} {'killed':>7} {'survived':>9} {'no tests':>9} {'unchecked':>10} score")
    for module in modules:
        meta = mutants / "src" / "greenloop" / "core" / f"{module}.py.meta"
        if not meta.exists():
            print(f"{module:<10} no results yet")
            continue
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        killed = [k for k, c in codes.items() if c in KILLED]
        survived = sorted(k for k, c in codes.items() if c in SURVIVED)
        no_tests = sorted(k for k, c in codes.items() if c in NO_TESTS)
        unchecked = [k for k, c in codes.items() if c is None]
        judged = len(killed) + len(survived) + len(no_tests)
        score = f"{100.0 * len(killed) / judged:.1f}%" if judged else "-"
        print(
            f"{module:<10} {len(killed):>7} {len(survived):>9} {len(no_tests):>9} "
            f"{len(unchecked):>10} {score}"
        )
        for name in survived + no_tests:
            print(f"    survived: {name}")
    return 0


def pending(mutants: Path, modules: list[str]) -> int:
    """Print the names of the mutants still alive or not yet judged, one a line."""
    for module in modules:
        meta = mutants / "src" / "greenloop" / "core" / f"{module}.py.meta"
        if meta.exists():
            codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
            for name, code in sorted(codes.items()):
                if code is None or code in SURVIVED | NO_TESTS:
                    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
