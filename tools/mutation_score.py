"""Print the mutation score per module from a mutmut 3 run (tools/mutate calls it).

Usage: python tools/mutation_score.py MUTANTS_DIR MODULE...
       python tools/mutation_score.py --pending MUTANTS_DIR MODULE...  (names to judge again)
       python tools/mutation_score.py --alive MUTANTS_DIR MODULE...    (the survivors only)

The score is killed / (killed + survived + no tests): a timeout counts as killed (the
test suite noticed the mutant by hanging on it, and pytest-timeout fails it), mutants not
yet checked (a run that ran out of budget) are counted apart. A survivor listed in
tools/mutate-equivalent (no test can tell it from the code: same observable behaviour) is
counted apart too, and both scores are printed. The survivors are listed as ``mutmut show``
names, to read with ``cd .mutmut && ../.venv/bin/mutmut show NAME``.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from pathlib import Path

EQUIVALENT = Path(__file__).with_name("mutate-equivalent")

KILLED = {1, 3, 36, 24, -24, 152, 255, 37}  # failed, pytest error, timeout, type check
SURVIVED = {0}
NO_TESTS = {5, 33}

# A module tools/mutate names that is several files not sharing one stem.
GROUPS = {"shards": ("shards", "shard_results", "shard_pods", "contract")}


def main(argv: list[str]) -> int:
    if argv[0] in ("--pending", "--alive"):
        return pending(Path(argv[1]), argv[2:], unchecked=argv[0] == "--pending")
    mutants, modules = Path(argv[0]), argv[1:]
    known = equivalents()
    print(
        f"{'module':<10} {'killed':>7} {'survived':>9} {'no tests':>9} {'equivalent':>11} "
        f"{'unchecked':>10} score  (without the equivalent ones)"
    )
    for module in modules:
        files = module_files(mutants, module)
        if not files:
            print(f"{module:<10} no results yet")
            continue
        codes: dict[str, int | None] = {}
        sources: dict[str, str] = {}
        for meta in files:
            found = json.loads(meta.read_text())["exit_code_by_key"]
            codes.update(found)
            source = meta.with_suffix("").read_text()
            sources.update(dict.fromkeys(found, source))
        killed = [k for k, c in codes.items() if c in KILLED]
        alive = sorted(k for k, c in codes.items() if c in SURVIVED | NO_TESTS)
        equivalent = {k: why for k in alive if (why := known.get(change(sources[k], k)))}
        survived = [k for k in alive if codes[k] in SURVIVED and k not in equivalent]
        no_tests = [k for k in alive if codes[k] in NO_TESTS and k not in equivalent]
        unchecked = [k for k, c in codes.items() if c is None]
        judged = len(killed) + len(alive)
        score = f"{100.0 * len(killed) / judged:.1f}%" if judged else "-"
        rest = judged - len(equivalent)
        score += f" ({100.0 * len(killed) / rest:.1f}%)" if rest else ""
        print(
            f"{module:<10} {len(killed):>7} {len(survived):>9} {len(no_tests):>9} "
            f"{len(equivalent):>11} {len(unchecked):>10} {score}"
        )
        for name in survived + no_tests:
            print(f"    survived: {name}")
        for name, why in sorted(equivalent.items()):
            print(f"    equivalent: {name}: {why}")
    return 0


def module_files(mutants: Path, module: str) -> list[Path]:
    """The .meta files of a module's mutants: core/<module>.py, and the modules it was
    split into (core/<module>_*.py, or core/<module>/ when it is a package); for a group
    (GROUPS), its files."""
    core = mutants / "src" / "greenloop" / "core"
    if module in GROUPS:
        return sorted(p for name in GROUPS[module] if (p := core / f"{name}.py.meta").exists())
    return sorted(
        [*core.glob(f"{module}.py.meta"), *core.glob(f"{module}_*.py.meta"),
         *core.glob(f"{module}/**/*.py.meta")]
    )  # fmt: skip


def equivalents() -> dict[tuple[str, str], str]:
    """(function, mutated lines) -> why no test can tell; keyed by the change, not by
    mutmut's number, which shifts whenever the function is edited."""
    known: dict[tuple[str, str], str] = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            function, mutated, why = (part.strip() for part in line.split(" | ", 2))
            known[(function, mutated)] = why
    return known


def change(source: str, name: str) -> tuple[str, str]:
    """(function, the mutant's lines that differ from the original, joined by " / ")."""
    mangled = name.rsplit(".", 1)[-1]  # x__finish__mutmut_7
    function = mangled.split("__mutmut_")[0]
    original, mutant = body(source, f"{function}__mutmut_orig"), body(source, mangled)
    diff = list(difflib.ndiff(original, mutant))
    added = [line[1:].strip() for line in diff if line.startswith("+ ") and line[1:].strip()]
    deleted = [line[1:].strip() for line in diff if line.startswith("- ") and line[1:].strip()]
    if len(deleted) > len(added):  # a line removed (what follows it may be re-indented)
        added = [f"deleted: {line}" for line in deleted if line not in added]
    readable = re.sub(r"^x_|^xǁ\w+ǁ", "", function)
    return readable, " / ".join(added)


def body(source: str, mangled: str) -> list[str]:
    """The lines of one mutant function, without its def line (the names differ)."""
    lines = source.splitlines()
    # A method's mutants are indented in their class (xǁClassǁmethod__mutmut_N).
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(f"def {mangled}("))
    indent = len(lines[start]) - len(lines[start].lstrip())
    out: list[str] = []
    for line in lines[start + 1 :]:
        depth = len(line) - len(line.lstrip())
        if line.strip() and depth <= indent and not line.lstrip().startswith((")", "#")):
            break
        out.append(line)
    return out


def pending(mutants: Path, modules: list[str], *, unchecked: bool) -> int:
    """Print the names of the mutants still alive (and, with ``unchecked``, those not yet
    judged), one a line."""
    for module in modules:
        for meta in module_files(mutants, module):
            codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
            for name, code in sorted(codes.items()):
                if (code is None and unchecked) or code in SURVIVED | NO_TESTS:
                    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
