"""How fast `greenloop operator` reacts, on the test control plane with kwok's node.

    python bench/operator_latency.py [--runs 20] [--json]

For each of `--runs` StagingValidations (one suite each, created one after another):
  applied → Job     from `kubectl create` of the object until its first Job exists
  upload → status   from the results upload's 200 until status.summary shows the tests
  rollout → Job     from the moment the redeployed Deployment is complete by `kubectl
                    rollout status`'s rules (seen through a watch) until iteration 2's
                    Job exists (seen through a watch): an object whose suite fails
                    with HTTP 503 in iteration 1, so the operator rolls its Deployment out
and prints median and p95 against the target (p95 < 1 s each). kwok runs no containers,
so this script plays each Job's results sidecar with the real `greenloop report upload`
logic (the Jobs run under a service account that does not exist, so their pods are never
created and they wait for the upload). Not a pass/fail test: exit status 0 unless a run
breaks. The machine's load is printed with the figures: they are only comparable on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from greenloop.core import crd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.operator_bench import kwok_operator, p95  # noqa: E402
from tests.support.sidecar import upload_when_resumed  # noqa: E402
from tests.support.workloads import roll_out  # noqa: E402
from tools.cluster.controlplane import ControlPlane  # noqa: E402
from tools.cluster.operator import Operator  # noqa: E402
from tools.cluster.procs import wait_until  # noqa: E402

TARGET_P95 = 1.0
XML = b'<testsuite name="s" tests="1"><testcase classname="c" name="ok"/></testsuite>\n'
FAIL_503 = (
    b'<testsuite name="s" tests="1"><testcase classname="c" name="ok">'
    b'<failure message="HTTP 503 Service Unavailable">503</failure></testcase></testsuite>\n'
)


def _sv(name: str, target: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": "no-such-account",
        "suites": [{"name": "core", "command": ["pytest"], "image": "localhost/e2e:dev"}],
    }
    if target:
        spec["target"] = {"workloads": [{"kind": "Deployment", "name": target}]}
        spec["policy"] = {"flakeRetries": 0}
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def _job(cp: ControlPlane, ns: str, name: str, iteration: int = 1) -> dict[str, Any] | None:
    items = cp.get_json(
        "jobs", "-n", ns, "-l", f"greenloop.dev/suite=core,greenloop.dev/iteration={iteration}"
    )["items"]
    mine = [j for j in items if j["metadata"]["annotations"]["greenloop.dev/validation"] == name]
    return mine[0] if mine else None


def one(cp: ControlPlane, op: Operator, ns: str, i: int, tmp: Path) -> tuple[float, float]:
    name = f"bench-{i}"
    t0 = time.perf_counter()
    cp.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(_sv(name)))
    found = wait_until("the first Job", lambda: _job(cp, ns, name), timeout=60, interval=0.02)
    applied = time.perf_counter() - t0
    xml = tmp / f"{name}.xml"
    xml.write_bytes(XML)
    upload_when_resumed(cp, ns, found, xml, op.url)
    t1 = time.perf_counter()

    def shown() -> bool:
        status = (cp.get_json("sv", name, "-n", ns) or {}).get("status") or {}
        return bool((status.get("summary") or {}).get("passed"))

    wait_until("status to show the results", shown, timeout=60, interval=0.02)
    return applied, time.perf_counter() - t1


def rollout_to_job(cp: ControlPlane, op: Operator, ns: str, i: int, tmp: Path) -> float:
    """Seconds from the redeployed Deployment being complete to iteration 2's Job, both
    seen through watches (so the figure is not a polling interval)."""
    from kubernetes import client, config, watch

    name, app = f"roll-{i}", f"app-{i}"
    roll_out(cp, ns, app)
    cp.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(_sv(name, target=app)))
    found = wait_until("the first Job", lambda: _job(cp, ns, name), timeout=60, interval=0.02)
    config.load_kube_config(str(cp.kubeconfig))
    api = client.ApiClient()
    apps, batch = client.AppsV1Api(api), client.BatchV1Api(api)
    seen: dict[str, float] = {}
    uid = found["metadata"]["labels"]["greenloop.dev/validation-uid"]  # not an older object's

    def watch_rollout() -> None:
        w = watch.Watch()
        for event in w.stream(
            apps.list_namespaced_deployment, ns, field_selector=f"metadata.name={app}",
            timeout_seconds=60,
        ):  # fmt: skip
            d = event["object"]
            st, spec = d.status, d.spec
            rolled = (d.metadata.annotations or {}).get("deployment.kubernetes.io/revision")
            if (
                rolled not in (None, "1")
                and (st.observed_generation or 0) >= (d.metadata.generation or 0)
                and (st.updated_replicas or 0) == spec.replicas
                and (st.replicas or 0) == (st.updated_replicas or 0)
                and (st.available_replicas or 0) == (st.updated_replicas or 0)
            ):
                seen["rollout"] = time.perf_counter()
                w.stop()

    def watch_job() -> None:
        w = watch.Watch()
        for _ in w.stream(
            batch.list_namespaced_job, ns,
            label_selector=f"greenloop.dev/validation-uid={uid},greenloop.dev/iteration=2",
            timeout_seconds=60,
        ):  # fmt: skip
            seen["job"] = time.perf_counter()
            w.stop()

    threads = [threading.Thread(target=f, daemon=True) for f in (watch_rollout, watch_job)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # both watches open before the failure that starts the redeploy
    xml = tmp / f"{name}.xml"
    xml.write_bytes(FAIL_503)
    upload_when_resumed(cp, ns, found, xml, op.url)
    for t in threads:
        t.join(70)
    api.close()
    if "rollout" not in seen or "job" not in seen:
        raise RuntimeError(f"{name}: saw {sorted(seen)} of rollout and the next Job")
    return seen["job"] - seen["rollout"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with kwok_operator("bench") as (cp, op, tmp):
        applied, shown, rolled = [], [], []
        for i in range(args.runs):
            a, s = one(cp, op, "bench", i, tmp)
            applied.append(a)
            shown.append(s)
        for i in range(args.runs):
            rolled.append(rollout_to_job(cp, op, "bench", i, tmp))
    rows = {"applied → Job": applied, "upload → status": shown, "rollout → Job": rolled}
    load = os.getloadavg()[0]
    if args.json:
        out = {k: {"median": statistics.median(v), "p95": p95(v)} for k, v in rows.items()}
        print(json.dumps({**out, "runs": args.runs, "load1": load}, indent=2))
        return 0
    print(f"operator latency over {args.runs} objects (load average {load:.1f}, "
          f"{os.cpu_count()} cores):")  # fmt: skip
    for what, values in rows.items():
        mark = "ok" if p95(values) < TARGET_P95 else "over target"
        print(
            f"  {what:<16} median {statistics.median(values):.3f} s   p95 {p95(values):.3f} s"
            f"   (target p95 < {TARGET_P95:.0f} s: {mark})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
