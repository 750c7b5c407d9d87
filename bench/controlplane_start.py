"""Warm start time of the integration-test control plane (binaries already built).

    python bench/controlplane_start.py [--runs 5] [--json]

Measures, `--runs` times each, from nothing running to ready:
  apiserver  etcd + kube-apiserver until /readyz is ok (fixture `apiserver`)
  whole set  + kube-controller-manager, kube-scheduler, kwok, one Ready node and the
             default ServiceAccount (fixture `cluster`)
and prints the medians against the targets (15 s and 30 s on a 2-core machine).
Each run uses a fresh work directory and fresh ports and is stopped before the next.
Not a pass/fail test: the exit status is 0 unless a start fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.cluster.binaries import ensure_binaries  # noqa: E402
from tools.cluster.controlplane import ControlPlane  # noqa: E402

TARGETS = {"apiserver": 15.0, "whole set": 30.0}


def one_start(controllers: bool) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    cp = ControlPlane.start(controllers=controllers, build=False)
    elapsed = time.perf_counter() - t0
    timings = dict(cp.timings)
    cp.stop()
    shutil.rmtree(cp.workdir, ignore_errors=True)
    return elapsed, timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()

    bindir = ensure_binaries(output=sys.stderr)  # not timed: the cache must be warm
    print(f"binaries: {bindir}  cpus: {os.cpu_count()}  runs: {args.runs}")
    results: dict[str, list[float]] = {"apiserver": [], "whole set": []}
    parts: list[dict[str, float]] = []
    for i in range(args.runs):
        t, _ = one_start(controllers=False)
        results["apiserver"].append(t)
        t2, timings = one_start(controllers=True)
        results["whole set"].append(t2)
        parts.append(timings)
        print(
            f"  run {i + 1}: apiserver {t:5.2f}s   whole set {t2:5.2f}s "
            f"(apiserver {timings.get('apiserver', 0):.2f}s + controllers "
            f"{timings.get('controllers', 0):.2f}s)",
            flush=True,
        )

    print()
    print(f"{'':<10} {'median':>8} {'min':>7} {'max':>7} {'target':>7} {'ratio':>6}")
    summary = {}
    for name, values in results.items():
        med = statistics.median(values)
        target = TARGETS[name]
        ratio = med / target
        verdict = "ok" if med <= target else "OVER TARGET"
        summary[name] = {
            "median_s": round(med, 2),
            "min_s": round(min(values), 2),
            "max_s": round(max(values), 2),
            "target_s": target,
            "ratio_to_target": round(ratio, 2),
            "runs": [round(v, 2) for v in values],
        }
        print(
            f"{name:<10} {med:7.2f}s {min(values):6.2f}s {max(values):6.2f}s "
            f"{target:6.0f}s {ratio:6.2f}  {verdict}"
        )
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
