"""The operator's per-object work and the shard merge against their size (issue 17).

The steps of tests/support/scale_steps.py, each at N and 10·N: the watch-fed store
(`k8s/store.py`: watch events, each object's selects, a relist per namespace), waking
units (`k8s/operator.py`: an object's own event, a store change, a deletion) at N
objects, and a sharded suite's merge (`core/shard_results.merge`, 8 shards) at N tests.
For each it prints the Python lines greenloop runs (counted: the same on any machine)
and the CPU seconds (untraced), and their 10·N / N ratios: ≈10 is linear, ≈100 a pass
over every object per object. The size tests (tests/unit/test_k8s_store_scale.py,
test_shard_results_scale.py) assert the line ratio at 100 / 1,000 and 400 / 4,000.

    python bench/store_scale.py [--objects 1000] [--tests 4000]

Exits 1 if a line ratio is above 15.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "operator", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.support.scale_steps import GROUPS, PACKAGE, Builder  # noqa: E402
from tests.unit.counting import lines_of  # noqa: E402

LIMIT = 15.0


def cpu(build: Builder, n: int) -> float:
    step = build(n)
    gc.collect()
    started = time.process_time()
    step()
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000, help="N objects (store, units)")
    parser.add_argument("--tests", type=int, default=4000, help="N tests (the merge)")
    args = parser.parse_args()
    worst = 0.0
    print(f"{'step':<52} {'N':>7} {'lines N':>12} {'lines 10N':>13} {'ratio':>6}"
          f" {'CPU N':>8} {'CPU 10N':>8} {'ratio':>6}")  # fmt: skip
    for group, steps in GROUPS.items():
        n = args.tests if group == "merge" else args.objects
        for name, build in steps.items():
            once, tenfold = lines_of(build(n), PACKAGE), lines_of(build(10 * n), PACKAGE)
            t_once, t_tenfold = cpu(build, n), cpu(build, 10 * n)
            ratio = tenfold / once
            worst = max(worst, ratio)
            print(
                f"{group + ': ' + name:<52} {n:>7,} {once:>12,} {tenfold:>13,} {ratio:>6.1f}"
                f" {t_once:>7.3f}s {t_tenfold:>7.3f}s {t_tenfold / max(t_once, 1e-9):>6.1f}",
                flush=True,
            )
    print(f"worst line ratio {worst:.1f} (linear 10, quadratic 100; fails above {LIMIT:.0f})")
    return 1 if worst > LIMIT else 0


if __name__ == "__main__":
    sys.exit(main())
