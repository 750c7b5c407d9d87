"""`greenloop operator` with N StagingValidations at once (issue 17), on the test control
plane with kwok's node.

    python bench/operator_scale.py [--sizes 10,100,300,1000] [--workers 8]
                                   [--suite-seconds 30] [--finish-within 0] [--after-seconds 60]

For each N, on a fresh control plane: one operator (a host process, as its own user, whose
requests the API server's audit log keeps), N objects of one suite each created at once
(POSTs from 8 threads). kwok runs no pods, so the bench makes each Job's pod (a stand-in
held Pending) and plays its sidecar with the pod's bound token and the
real upload code (`greenloop.k8s.upload.upload`, what `greenloop report upload` runs):
once every Job is resumed, the suites "run" for --suite-seconds and then finish, spread
evenly over --finish-within seconds, --workers uploads at a time. Printed per N:

  RSS after Passed      the operator's resident memory once every object is Passed
  operator CPU s        its CPU seconds from the first create to the last Passed
  applied → first Job   from an object's POST answer to its Job (seen through a watch)
  upload → Passed       from the upload's 200 to the object's phase Passed (a watch)
  req/obj/s running     the operator's API requests while all N suites run (after the
                        last Job is resumed, until the first suite finishes), per
                        object per second: the cost of waiting (the issue's target 0.05)
  req/obj/round         its requests from the first create to the last Passed, per object
  req/min after Passed  its requests in --after-seconds after the last Passed, per minute
  loop lag p95          greenloop_event_loop_lag_seconds (a 100 ms heartbeat) between a
                        scrape before the first create and one after the last Passed;
                        interpolated within its bucket as Prometheus would
and the upload counts: stored, RunnerError iterations (greenloop_iterations_total), reruns
(Jobs beyond each object's first). Issue 17's burst: --sizes 1000 --workers 64
--finish-within 60 (1,000 suites finishing within 60 s, 64 uploads at a time).

Wall-clock figures depend on the machine's load, which is printed with them; the audit
counts do not. Not a pass/fail test: exit status 0 unless a run breaks (a timeout).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenloop.core import crd
from greenloop.k8s.upload import Upload, UploadResult, upload

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.operator_bench import (  # noqa: E402
    api_request,
    audited_kwok_operator,
    audited_requests,
    ensure_stand_in_account,
    histogram,
    histogram_quantile,
    p95,
    process_figures,
    scrape,
    stand_in_token,
    watch_events,
)
from tests.support.sidecar import PASS, junit  # noqa: E402
from tools.cluster.controlplane import ControlPlane  # noqa: E402
from tools.cluster.operator import Operator  # noqa: E402

NS = "scale"
LAG = "greenloop_event_loop_lag_seconds"
XML = junit(PASS.format(c="core", n="ok"))
TIMEOUT = 1200.0  # for any one stage at N=1000 on a loaded machine


def _sv(name: str) -> dict[str, Any]:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": "no-such-account",  # kwok: no pods, the bench uploads
            "suites": [{"name": "core", "command": ["pytest"], "image": "localhost/e2e:dev"}],
            "policy": {"flakeRetries": 0},
        },
    }


@dataclass
class Seen:
    """What the bench's watches saw, with the wall-clock time of each first sight."""

    applied: dict[str, float] = field(default_factory=dict)
    first_job: dict[str, float] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # Job uid -> Job
    resumed: dict[str, str] = field(default_factory=dict)  # object -> its first Job's uid
    every_resumed: dict[str, str] = field(default_factory=dict)  # Job uid -> object
    served: set[str] = field(default_factory=set)  # Job uids whose upload has begun
    rerun_results: dict[str, UploadResult] = field(default_factory=dict)  # by Job uid
    tokens: dict[str, str] = field(default_factory=dict)  # Job uid -> token
    uploaded: dict[str, float] = field(default_factory=dict)
    results: dict[str, UploadResult] = field(default_factory=dict)
    passed: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: called (in the watch's thread) once for each Job as it is resumed
    on_resumed: Callable[[dict[str, Any]], None] | None = None

    def on_job(self, kind: str, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        owner = (meta.get("annotations") or {}).get("greenloop.dev/validation")
        if owner is None or kind == "DELETED":
            return
        now = time.time()
        with self.lock:
            self.first_job.setdefault(owner, now)
            self.jobs[meta["uid"]] = job
            new = job["spec"].get("suspend") is False and meta["uid"] not in self.every_resumed
            if new:
                self.resumed.setdefault(owner, meta["uid"])
                self.every_resumed[meta["uid"]] = owner
        if new and self.on_resumed is not None:
            self.on_resumed(job)

    def got_token(self, job: dict[str, Any], token: str) -> None:
        with self.lock:
            self.tokens[job["metadata"]["uid"]] = token

    def on_validation(self, kind: str, obj: dict[str, Any]) -> None:
        if (obj.get("status") or {}).get("phase") == "Passed":
            with self.lock:
                self.passed.setdefault(obj["metadata"]["name"], time.time())

    def ready(self) -> dict[str, tuple[dict[str, Any], str]]:
        """Each object whose first Job is resumed and has its token: (Job, token)."""
        with self.lock:
            return {
                name: (self.jobs[uid], self.tokens[uid])
                for name, uid in self.resumed.items()
                if uid in self.tokens
            }


def wait_for(what: str, done: Callable[[], bool], op: Operator) -> float:
    """The time `done` first holds (polled every 50 ms; bounded, and the operator alive)."""
    began = time.time()
    while not done():
        if op.proc is None or op.proc.poll() is not None:
            raise RuntimeError(f"{what}: the operator exited\n{op.tail()}")
        if time.time() - began > TIMEOUT:
            raise RuntimeError(f"{what}: not after {TIMEOUT:.0f} s\n{op.tail()}")
        time.sleep(0.05)
    return time.time()


def create_all(cp: ControlPlane, names: list[str], seen: Seen) -> None:
    path = f"/apis/{crd.API_VERSION}/namespaces/{NS}/{crd.PLURAL}"

    def create(name: str) -> None:
        code, body = api_request(cp, "POST", path, _sv(name))
        if code != 201:
            raise RuntimeError(f"create {name}: HTTP {code}: {body[:300]!r}")
        seen.applied[name] = time.time()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, names))


def send(
    seen: Seen, name: str, job: dict[str, Any], token: str, url: str, tmp: Path,
    rerun: bool = False,
) -> None:  # fmt: skip
    xml = tmp / f"{name}.xml"
    xml.write_bytes(XML)
    token_file = tmp / f"{job['metadata']['uid']}.token"
    token_file.write_text(token)
    result = upload(
        Upload(file=xml, url=url, namespace=NS, job=job["metadata"]["name"], token_file=token_file),
        log=io.StringIO(),  # each retry's line: the counts are printed instead
    )  # fmt: skip
    with seen.lock:
        if rerun:
            seen.rerun_results[job["metadata"]["uid"]] = result
        else:
            seen.results[name] = result
        if result.ok:
            seen.uploaded[name] = time.time()


def _raised(done: Future[None]) -> None:
    if done.exception() is not None:
        print(f"    minting a token failed: {done.exception()}", file=sys.stderr, flush=True)


def progress(n: int, what: str) -> None:
    """A line on stderr as each stage ends: what a run cut short still tells."""
    print(f"    N={n}: {what} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)


def run_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    names = [f"sv-{i:04d}" for i in range(n)]
    seen = Seen()
    stop = threading.Event()
    with audited_kwok_operator(NS) as (cp, op, tmp), ThreadPoolExecutor(8) as minting:
        assert op.proc is not None
        pid = op.proc.pid
        ensure_stand_in_account(cp, NS)

        def mint(job: dict[str, Any]) -> None:
            seen.got_token(job, stand_in_token(cp, NS, job))

        # Each Job's sidecar holds a token bound to its pod: the bench makes the pod
        # kwok will not (see stand_in_token) and asks for that token as the Job resumes.
        seen.on_resumed = lambda job: minting.submit(mint, job).add_done_callback(_raised)
        for path, handler in (
            (f"/apis/batch/v1/namespaces/{NS}/jobs", seen.on_job),
            (f"/apis/{crd.API_VERSION}/namespaces/{NS}/{crd.PLURAL}", seen.on_validation),
        ):
            threading.Thread(
                target=watch_events, args=(cp, path, handler, stop), daemon=True
            ).start()
        lag_before = histogram(scrape(op), LAG)
        cpu_before, _ = process_figures(pid)
        t_create = time.time()
        create_all(cp, names, seen)
        all_running = wait_for(f"{n} Jobs resumed", lambda: len(seen.ready()) == n, op)
        firsts = [seen.first_job[k] - seen.applied[k] for k in names]
        progress(n, f"every Job resumed {all_running - t_create:.0f} s after the first create; "
                 f"applied → first Job p50 {statistics.median(firsts):.2f} s, "
                 f"p95 {p95(firsts):.2f} s")  # fmt: skip
        # All N suites run now: what the operator asks the API server meanwhile is the
        # cost of waiting for them.
        time.sleep(args.suite_seconds)
        released = time.time()
        ready = seen.ready()
        rng = random.Random(17)
        finish_at = {name: released + rng.uniform(0, args.finish_within) for name in names}
        with ThreadPoolExecutor(args.workers) as pool:
            for name in sorted(names, key=finish_at.__getitem__):
                time.sleep(max(0.0, finish_at[name] - time.time()))
                job, token = ready[name]
                seen.served.add(job["metadata"]["uid"])
                pool.submit(send, seen, name, job, token, op.url, tmp)
        stored = sum(1 for r in seen.results.values() if r.ok)
        progress(n, f"{stored} of {n} uploads stored, {time.time() - released:.0f} s after the "
                 f"first suite finished")  # fmt: skip
        with ThreadPoolExecutor(args.workers) as pool:

            def passed_serving_reruns() -> bool:
                """A rerun's Job (an upload gave up: RunnerError) is served as its own
                sidecar would serve it, so the round can still end Passed."""
                with seen.lock:
                    due = [
                        (uid, name) for uid, name in seen.every_resumed.items()
                        if uid not in seen.served and uid in seen.tokens
                    ]  # fmt: skip
                for uid, name in due:
                    seen.served.add(uid)
                    job, token = seen.jobs[uid], seen.tokens[uid]
                    pool.submit(send, seen, name, job, token, op.url, tmp, rerun=True)
                return len(seen.passed) == n

            all_passed = wait_for(f"{n} objects Passed", passed_serving_reruns, op)
        cpu_after, rss = process_figures(pid)
        metrics = scrape(op)
        lag_p95 = histogram_quantile(0.95, lag_before, histogram(metrics, LAG))
        time.sleep(args.after_seconds)
        stop.set()
        requests = audited_requests(cp.operator_audit_log)
    load = os.getloadavg()[0]
    runner_errors = sum(
        float(line.rpartition(" ")[2])
        for line in metrics.splitlines()
        if line.startswith("greenloop_iterations_total{") and 'outcome="runner_error"' in line
    )
    reruns = len(seen.jobs) - len(seen.first_job)
    steady = [t for t, _, _ in requests if all_running + 1 <= t < released]
    round_ = [t for t, _, _ in requests if t_create <= t <= all_passed]
    after = [t for t, _, _ in requests if all_passed < t <= all_passed + args.after_seconds]
    applied = [seen.first_job[k] - seen.applied[k] for k in names if k in seen.first_job]
    shown = [seen.passed[k] - seen.uploaded[k] for k in names if k in seen.passed]
    return {
        "n": n,
        "rss_mib": rss,
        "cpu_s": cpu_after - cpu_before,
        "applied_p50": statistics.median(applied),
        "applied_p95": p95(applied),
        "passed_p95": p95(shown) if shown else float("nan"),
        "req_obj_s": len(steady) / (n * max(released - all_running - 1, 1e-9)),
        "req_obj_round": len(round_) / n,
        "req_min_after": len(after) * 60 / args.after_seconds,
        "lag_p95": lag_p95,
        "stored": stored,
        "gave_up": [f"{k}: {r.message}" for k, r in seen.results.items() if not r.ok][:5],
        "attempts_max": max((r.attempts for r in seen.results.values()), default=0),
        "retried": sum(1 for r in seen.results.values() if r.attempts > 1),
        "runner_errors": int(runner_errors),
        "reruns": reruns,
        "round_s": all_passed - t_create,
        "upload_s": all_passed - released,
        "load": load,
        "top": top_requests(requests, t_create, all_passed),
    }


def top_requests(requests: list[tuple[float, str, str]], start: float, end: float) -> str:
    from collections import Counter

    tally = Counter(f"{verb} {res}" for t, verb, res in requests if start <= t <= end)
    return ", ".join(f"{k} {v}" for k, v in tally.most_common(6))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,300,1000", help="N, comma-separated")
    parser.add_argument("--workers", type=int, default=8, help="uploads at a time")
    parser.add_argument("--suite-seconds", type=float, default=30.0,
                        help="how long every suite runs once all N Jobs are resumed")  # fmt: skip
    parser.add_argument("--finish-within", type=float, default=0.0,
                        help="the suites finish spread over this many seconds")  # fmt: skip
    parser.add_argument("--after-seconds", type=float, default=60.0,
                        help="how long to count requests after the last Passed")  # fmt: skip
    args = parser.parse_args()
    print(
        f"greenloop operator, N objects at once (kwok, {os.cpu_count()} cores; suites run "
        f"{args.suite_seconds:.0f} s, finish within {args.finish_within:.0f} s, "
        f"{args.workers} uploads at a time)"
    )
    print(
        "| N | RSS after Passed | operator CPU s | applied → first Job p50/p95 | "
        "upload → Passed p95 | req/obj/s while suites run | req/obj/round | "
        "req/min after Passed | loop lag p95 | stored / RunnerError / reruns | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        r = run_size(n, args)
        print(
            f"| {n} | {r['rss_mib']:.0f} MiB | {r['cpu_s']:.1f} | {r['applied_p50']:.2f} / "
            f"{r['applied_p95']:.2f} s | {r['passed_p95']:.2f} s | {r['req_obj_s']:.3f} | "
            f"{r['req_obj_round']:.1f} | {r['req_min_after']:.0f} | "
            f"{r['lag_p95'] * 1000:.0f} ms | {r['stored']} / {r['runner_errors']} / "
            f"{r['reruns']} | {r['load']:.1f} |",
            flush=True,
        )
        print(
            f"    N={n}: create → all Passed {r['round_s']:.0f} s, first upload → all Passed "
            f"{r['upload_s']:.0f} s, uploads retried {r['retried']} (most attempts "
            f"{r['attempts_max']}); requests "
            f"in the round: {r['top']}",
            flush=True,
        )
        for line in r["gave_up"]:
            print(f"    gave up: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
