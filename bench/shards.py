"""How well a sharded suite is balanced (issue 16): the makespan — how long the slowest
shard runs — of the runner's split (iteration 1: greenloop knows no ids; the pytest
plugin deals the collected tests in hash order onto the emptiest shard,
``shards.split_collected``; the hash modulo the shards, ``shard_of``, it used before, is
shown beside it) and of greenloop's split by the durations the previous results reported
(iteration 2 on: ``shards.assign``, longest first onto the least-loaded shard, in as many
shards as LPT shortens the run, and at the default start cost of 1 s a shard in as many
as are worth starting), each as a ratio to the optimum's lower bound
``max(longest test, total / shards)``. A ratio against the bound is an upper bound on the
ratio against the optimum.

Three suites: a skewed one (one 8 s test, sixty 0.1 s tests), where a hash split puts
the long test beside a share of the short ones; 64 tests of 0.5 s each; and the seed's
466 tests with long-tailed (log-normal, median 2 s, seeded) durations, one in ten unknown
(estimated at the median of the others). Last, the time ``assign`` takes to plan 5,000
tests into 64 shards (it tries fewer shards too), the largest plan a round makes.

    python bench/shards.py           # the plans (pure)
    sudo python bench/shards.py --node  # also the wall times on the real node

Target: the balanced split within 1.15x of the optimum where every duration is known (the
skewed and the even suite); the long-tailed row, planned on estimates, is shown for what
unknown durations cost.

``--node``: the wall times on the real node (root; the machine's one node, after its lock)
of a suite of 64 tests that each wait 0.5 s (not CPU bound), run by ``greenloop
operator`` as one Indexed Job of 1/2/4/8 shards (``policy.parallelism`` = shards): from
``kubectl apply`` until iteration 2 starts (iteration 1, the pytest plugin's split; 8
tests fail there), and from then until Passed (the rerun of the 8 failed tests, split by
greenloop into the shards worth starting; "in N" is how many it used). Pod start-up is
in every figure: it is what a user waits for. Target: 4 shards within 0.35x of 1 shard
for iteration 1.

Measured 2026-12-07 on this 2-core machine, other helpers' tests beside it (h/speed;
docs/benchmarks.md has every run and where the time goes): before, with the hash split,
4 shards took 0.38-0.44x of 1 shard in iteration 1 (the hash put 9/14/20/21 of the 64
tests in 4 shards: a 10.5 s makespan); with the dealt split, a lighter sidecar and
plugin, 37.1 / 20.0 / 12.2 / 12.7 s for 1/2/4/8 shards (0.54x, **0.33x**, 0.34x; load
4.6 -> 4.7), and in three more runs 0.41x, 0.38x and 0.31x for 4 shards (load 3.3-5.2):
the target is met in 2 of 4 runs; the rest is four pods' start-up on two shared cores.
On main after every merge: 0.32x (load 0.5 -> 3.7), 0.36x (a helper's tests beside it,
load 3.7 -> 5.5) and 0.31x with nothing else running (36.1 / 19.0 / 11.2 / 10.7 s).
The rerun of 8 failed tests now starts the shards worth starting (2 of 2/4/8, at the
default 1 s a shard): 4.0-6.1 s, where 8 shards took 8.4-9.5 s before.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))

from greenloop.core.shards import (  # noqa: E402
    SHARD_START_SECONDS,
    assign,
    shard_of,
    split_collected,
)

TARGET = 1.15
SHARDS = (1, 2, 4, 8)

SKEWED = {
    "tests/e2e/test_export.py::test_full_export": 8.0,
    **{f"tests/e2e/test_api.py::test_endpoint_{n:02d}": 0.1 for n in range(60)},
}
EVEN = {f"tests/e2e/test_wait.py::test_wait_{n:02d}": 0.5 for n in range(64)}


def long_tailed(n: int, seed: int = 16) -> dict[str, float]:
    rng = random.Random(seed)
    return {
        f"tests/e2e/test_{k // 20:02d}.py::test_case_{k:03d}": round(
            rng.lognormvariate(math.log(2.0), 1.0), 2
        )
        for k in range(n)
    }


SEED = long_tailed(466)
# What greenloop knows: one in ten durations was never reported.
SEED_KNOWN = {t: d for k, (t, d) in enumerate(SEED.items()) if k % 10}


def hash_makespan(durations: Mapping[str, float], count: int) -> float:
    """The hash modulo the count (the pytest plugin's split before it was dealt)."""
    loads = [0.0] * count
    for test_id, seconds in durations.items():
        loads[shard_of(test_id, count)] += seconds
    return max(loads)


def dealt_makespan(durations: Mapping[str, float], count: int) -> float:
    """The pytest plugin's split (``split_collected``): hash order, dealt by count."""
    loads = [0.0] * count
    for test_id, shard in split_collected(dict.fromkeys(durations, 1), count).items():
        loads[shard] += durations[test_id]
    return max(loads)


def lower_bound(durations: Mapping[str, float], count: int) -> float:
    return max(max(durations.values()), math.fsum(durations.values()) / count)


def plans() -> int:
    worst = 0.0
    print(
        f"{'suite':<22} {'shards':>6}  {'bound':>9}  {'hash':>15}  {'dealt':>15}  "
        f"{'balanced':>20}  {'+1 s a shard':>12}"
    )
    suites = (
        ("skewed 8 s + 60x0.1 s", SKEWED, SKEWED),
        ("even 64x0.5 s", EVEN, EVEN),
        ("seed 466, long tail", SEED, SEED_KNOWN),
    )
    for name, durations, known in suites:
        for count in SHARDS:
            bound = lower_bound(durations, count)
            hashed = hash_makespan(durations, count)
            dealt = dealt_makespan(durations, count)
            shards = assign(list(durations), count, known)
            # The real durations of what was planned on estimates.
            balanced = max(math.fsum(durations[t] for t in s.test_ids or ()) for s in shards)
            costed = assign(list(durations), count, known, start_cost=SHARD_START_SECONDS)
            if known is durations:  # the target holds where every duration is known
                worst = max(worst, balanced / bound)
            print(
                f"{name:<22} {count:>6}  {bound:>7.2f} s  "
                f"{hashed:>7.2f} s {hashed / bound:>5.2f}x  "
                f"{dealt:>7.2f} s {dealt / bound:>5.2f}x  "
                f"{balanced:>7.2f} s {balanced / bound:>5.2f}x in {len(shards)}  "
                f"{'in ' + str(len(costed)):>12}"
            )
    for tests, seconds in ((8, 0.1), (8, 0.5), (64, 0.5)):
        ids = [f"t{k:02d}" for k in range(tests)]
        costed = assign(ids, 8, dict.fromkeys(ids, seconds), start_cost=SHARD_START_SECONDS)
        print(
            f"a rerun of {tests} x {seconds} s, 8 shards, +{SHARD_START_SECONDS:.0f} s a shard: "
            f"in {len(costed)}"
        )
    big = long_tailed(5000)
    start = time.perf_counter()
    assign(list(big), 64, big)
    planning = time.perf_counter() - start
    start = time.perf_counter()
    assign(list(big), 64, big, start_cost=SHARD_START_SECONDS)
    costed_planning = time.perf_counter() - start
    print(
        f"planning 5,000 tests into 64 shards: {planning * 1000:.0f} ms "
        f"({costed_planning * 1000:.0f} ms at +{SHARD_START_SECONDS:.0f} s a shard)"
    )
    verdict = "meets" if worst <= TARGET else "MISSES"
    print(f"balanced split: at most {worst:.2f}x the optimum: {verdict} the target of {TARGET}x")
    print("(hash: the runner's split by SHA-256 modulo the shards, before; dealt: the pytest")
    print(" plugin's split now, hash order onto the emptiest shard (iteration 1); balanced:")
    print(" iteration 2 on, by durations; 'in N': the shards scheduled, fewer when more would")
    print(" not finish sooner; '+1 s a shard': as many as are worth starting at the default")
    print(" start cost)")
    return 0 if worst <= TARGET else 1


# ---------------------------------------------------------------------------
# Wall times on the real node

WALL_TARGET = 0.35
# 64 tests that wait 0.5 s; test_00..test_07 fail in iteration 1 (the rerun's 8).
WAITING_SUITE = 'import os, time\\nIT = int(os.environ["GREENLOOP_ITERATION"])\\n' + "".join(
    f"\\ndef test_{n:02d}():\\n    time.sleep(0.5); assert {'IT != 1' if n < 8 else 'True'}\\n"
    for n in range(64)
)


def _validation(name: str, shards: int) -> dict[str, object]:
    from greenloop.core import crd
    from tools.cluster.node import IMAGES

    command = (
        f"printf '{WAITING_SUITE}' > /tmp/test_wait.py && cd /tmp && "
        "python3 -m pytest -q -p no:cacheprovider test_wait.py"
    )
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": {
            "expectedTests": 64,
            "suites": [
                {
                    "name": "wait",
                    "image": IMAGES["demo-suites"],
                    "command": ["sh", "-c", command],
                    "timeoutSeconds": 300,
                    "shards": shards,
                }
            ],
            "policy": {"maxIterations": 3, "parallelism": shards},
        },
    }


def _wall(cp: object, ns: str, shards: int) -> tuple[float, float, int]:
    """(iteration 1, the rerun, the rerun's shards) in seconds for one suite of ``shards``
    shards."""
    from tools.cluster.controlplane import ControlPlane

    assert isinstance(cp, ControlPlane)
    name = f"wall-{shards}"
    start = time.monotonic()
    cp.apply(_validation(name, shards), namespace=ns)
    first = 0.0
    while time.monotonic() - start < 600:
        status = (cp.get_json("sv", name, "-n", ns, check=False) or {}).get("status") or {}
        if not first and int(status.get("iteration") or 0) >= 2:
            first = time.monotonic() - start
        if status.get("phase") == "Passed" and first:
            rerun = time.monotonic() - start - first
            jobs = (cp.get_json("jobs", "-n", ns, check=False) or {}).get("items") or []
            widths = [
                int(j["spec"].get("completions") or 1)
                for j in jobs
                if j["metadata"]["name"].startswith(f"{name}-2-")
            ]
            return first, rerun, max(widths, default=0)
        if status.get("phase") == "Stalled":
            raise RuntimeError(f"{name} stalled: {status.get('conditions')}")
        time.sleep(0.2)
    raise RuntimeError(f"{name}: no verdict in 600 s")


def node_walls() -> int:
    if os.geteuid() != 0:
        print("--node needs root (a real node)", file=sys.stderr)
        return 1
    from tools.cluster.binaries import ensure_built
    from tools.cluster.controlplane import ControlPlane
    from tools.cluster.crds import ensure_crd
    from tools.cluster.node import RealNode
    from tools.cluster.operator import Operator
    from tools.cluster.procs import free_ports

    bindir, images = ensure_built(output=sys.stderr)
    cp = ControlPlane.start(controllers=True, build=False, serve_pods=True)
    log_dir = Path(tempfile.mkdtemp(prefix="gl-bench-shards-"))
    walls: dict[int, tuple[float, float, int]] = {}
    try:
        node = RealNode(cp, bindir=bindir, images=images).start()
        try:
            ns = "bench-shards"
            cp.create_namespace(ns)
            node.use_namespace(ns)
            ensure_crd(cp)
            port = free_ports(1)[0]
            ip = node.expose_host_port(ns, "greenloop-results", port, service_port=8081)
            op = Operator(
                cp, ns, log_dir / "operator.log", f"http://{ip}:8081", port,
                host=node.host_address,
            )  # fmt: skip
            op.start()
            try:
                for shards in SHARDS:
                    walls[shards] = _wall(cp, ns, shards)
                    first, rerun, width = walls[shards]
                    print(
                        f"  {shards} shard(s): iteration 1 {first:6.1f} s, "
                        f"rerun {rerun:6.1f} s in {width}"
                    )
            finally:
                op.kill()
        finally:
            node.stop(remove_workdir=True)
    finally:
        cp.stop()
        shutil.rmtree(cp.workdir, ignore_errors=True)
        shutil.rmtree(log_dir, ignore_errors=True)
    base_first, base_rerun, _ = walls[1]
    print(f"{'shards':>6}  {'iteration 1':>18}  {'rerun of 8 failed':>24}")
    for shards, (first, rerun, width) in walls.items():
        print(
            f"{shards:>6}  {first:7.1f} s {first / base_first:5.2f}x  "
            f"{rerun:7.1f} s {rerun / base_rerun:5.2f}x in {width}"
        )
    ratio = walls[4][0] / base_first
    verdict = "meets" if ratio <= WALL_TARGET else "MISSES"
    print(
        f"4 shards: {ratio:.2f}x of 1 shard in iteration 1: {verdict} the target of {WALL_TARGET}x"
    )
    print(f"(load average {os.getloadavg()[0]:.1f}: figures compare only on a quiet machine)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--node", action="store_true", help="also the wall times on the real node")
    args = parser.parse_args()
    code = plans()
    if args.node:
        code = node_walls() or code
    return code


if __name__ == "__main__":
    sys.exit(main())
