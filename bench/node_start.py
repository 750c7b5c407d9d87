"""Real-node figures: cold build, warm start to Ready, Job apply -> Complete.

    python bench/node_start.py [--runs 5] [--cold-build] [--json]

  cold build   (only with --cold-build) tools/node/build --force with an empty Go build
               cache, then tools/images/build --force with an empty image cache
               (debootstrap included); Go modules come from the existing module cache
  warm start   RealNode.start() until the node is Ready and the images are imported,
               binaries and images already built (fixture `node`), median of --runs
  Job          `kubectl apply` of a one-container Job -> its Complete condition, on the
               running node, median of --runs

Needs root. The control plane (etcd, kube-apiserver, controllers) starts once first and
is not timed. Not a pass/fail test: the exit status is 0 unless a start fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.cluster.binaries import ensure_built  # noqa: E402
from tools.cluster.controlplane import ControlPlane  # noqa: E402
from tools.cluster.node import IMAGES, RealNode  # noqa: E402
from tools.cluster.procs import wait_until  # noqa: E402


def cold_build() -> dict[str, float]:
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gl-bench-") as tmp:
        env = {**os.environ, "GOCACHE": str(Path(tmp) / "gocache")}
        env_images = {**os.environ, "GREENLOOP_CACHE": str(Path(tmp) / "cache")}
        t0 = time.perf_counter()
        subprocess.run([str(ROOT / "tools/node/build"), "--force"], env=env, check=True)
        times["node binaries"] = time.perf_counter() - t0
        # the image build reads the pause binary from the real cache's node directory
        node_dir = subprocess.run(
            [str(ROOT / "tools/node/build"), "--print-dir"], capture_output=True, text=True
        ).stdout.strip()
        fake = Path(
            subprocess.run(
                [str(ROOT / "tools/node/build"), "--print-dir"],
                capture_output=True,
                text=True,
                env=env_images,
            ).stdout.strip()
        )
        fake.parent.mkdir(parents=True)
        fake.symlink_to(node_dir)
        t1 = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "tools/images/build.py"), "--force"],
            env=env_images,
            check=True,
        )
        times["images"] = time.perf_counter() - t1
    times["total"] = times["node binaries"] + times["images"]
    return times


def job_seconds(cp: ControlPlane, node: RealNode, ns: str, name: str) -> float:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": node.place(
                    {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": IMAGES["greenloop"],
                                "imagePullPolicy": "Never",
                                "args": ["--version"],
                            }
                        ],
                    }
                )
            },
        },
    }
    t0 = time.perf_counter()
    cp.apply(job)

    def complete() -> bool:
        obj = cp.get_json("job", name, "-n", ns)
        conds = obj.get("status", {}).get("conditions", []) or []
        return any(c["type"] == "Complete" and c["status"] == "True" for c in conds)

    wait_until(f"job {name} Complete", complete, timeout=120, interval=0.1)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold-build", action="store_true", help="also time a cold build")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/node_start.py needs root (a real node)", file=sys.stderr)
        return 1

    summary: dict[str, object] = {}
    if args.cold_build:
        summary["cold build"] = {k: round(v, 1) for k, v in cold_build().items()}
        print(f"cold build: {summary['cold build']}", flush=True)

    bindir, images = ensure_built(output=sys.stderr)  # not timed: warm
    # as the integration fixtures start it: pods reach the API server (serve_pods)
    cp = ControlPlane.start(controllers=True, build=False, serve_pods=True)
    starts: list[float] = []
    jobs: list[float] = []
    try:
        for i in range(args.runs):
            t0 = time.perf_counter()
            node = RealNode(cp, bindir=bindir, images=images).start()
            starts.append(time.perf_counter() - t0)
            try:
                if i == 0:
                    cp.create_namespace("bench")
                jobs.append(job_seconds(cp, node, "bench", f"job-{i}"))
            finally:
                node.stop(remove_workdir=True)
            print(f"  run {i + 1}: start to Ready {starts[-1]:5.2f}s   Job {jobs[-1]:5.2f}s")
    finally:
        cp.stop()
        shutil.rmtree(cp.workdir, ignore_errors=True)

    for name, values in (("warm start to Ready", starts), ("Job apply -> Complete", jobs)):
        summary[name] = {
            "median_s": round(statistics.median(values), 2),
            "min_s": round(min(values), 2),
            "max_s": round(max(values), 2),
        }
        print(
            f"{name:<24} median {statistics.median(values):5.2f}s (min {min(values):.2f}, "
            f"max {max(values):.2f}) over {len(values)} runs"
        )
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
