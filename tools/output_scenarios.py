"""Print, as JSON lines, everything greenloop's engine writes for a fixed set of inputs:
seeded random event sequences (the property test's kinds of events, drawn from
``random.Random(seed)`` so both sides of a comparison see the same ones) and, with
``--demo``, ``greenloop run --json`` on copies of examples/demo and examples/auth.

Run by tools/compare-output inside each tree it compares (PYTHONPATH names the tree's
package); only the engine's public API is used, so it runs unchanged on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from greenloop.core import engine, snapshot
from greenloop.core.capabilities import Capabilities
from greenloop.core.engine import (
    AwaitApproval,
    Decision,
    Finish,
    Redeploy,
    RedeployDone,
    RedeployStarted,
    RunSuites,
    SuiteFinished,
    SuiteRun,
)
from greenloop.core.fingerprint import Entry, Fingerprint, fingerprint
from greenloop.core.model import (
    Outcome,
    Policy,
    RedeployPolicy,
    RerunMode,
    StagingValidation,
    Suite,
    Target,
    TestResult,
    ValidationSpec,
)
from greenloop.core.report import render
from greenloop.core.status import build_status

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [
    "httpx.HTTPStatusError: Server error '503 Service Unavailable' for url 'http://app/ws'",
    "httpx.HTTPStatusError: Client error '403 Forbidden' for url 'http://app/api/me'",
    "AssertionError: assert 'draft' == 'paid'",
    "ModuleNotFoundError: No module named 'checkout_client'",
    "",
    "x" * 3000,
    "weird \x00 \u202e `|` text",
]
FINGERPRINTS: list[Fingerprint | None] = [
    None,
    fingerprint([Entry("Deployment/backend", "5d8f", "app", "app:v1")]),
    fingerprint([Entry("Deployment/backend", "7c9a", "app", "app:v2")]),
    fingerprint(Entry(f"StatefulSet/db{n}", "db-1", "db", "db:1") for n in range(45)),
]


class Draw:
    """The few draws the property test makes, from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, items: Sequence[T]) -> T:
        return items[self.rng.randrange(len(items))]

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def bool(self) -> bool:
        return self.rng.random() < 0.5


def _ok(test_id: str) -> TestResult:
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.PASSED)


def _bad(test_id: str, message: str) -> TestResult:
    return TestResult(
        id=test_id, name=test_id, classname="", outcome=Outcome.FAILED, message=message
    )


def _result(d: Draw, test_id: str, pool: list[str]) -> TestResult:
    kind = d.pick(["pass", "pass", "fail", "skip", "dep"])
    if kind == "pass":
        return _ok(test_id)
    if kind == "fail":
        return _bad(test_id, d.pick(MESSAGES))
    if kind == "dep" and pool:
        root = d.pick(pool)
        return TestResult(
            id=test_id,
            name=test_id,
            classname="",
            outcome=Outcome.SKIPPED,
            message=f"greenloop: depends on {root}, which did not pass",
            depends_on=(root,),
        )
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.SKIPPED)


def _suite_run(d: Draw, suite: str, selected: tuple[str, ...] | None) -> SuiteRun:
    if d.int(0, 9) == 0:
        return SuiteRun(
            suite, error=d.pick(["timeout", "OOMKilled"]), permanent=d.bool(), selected=selected
        )
    pool = [f"{suite}::t{k}" for k in range(d.pick([0, 1, 3, 8, 60]))]
    behaviour = d.pick(["honest", "honest", "all", "none"])
    ids = pool
    if selected is not None and behaviour == "honest":
        ids = list(selected)
    elif selected is not None and behaviour == "none":
        ids = []
    results = [_result(d, i, [p for p in pool if p != i]) for i in ids]
    return SuiteRun(suite, tests=tuple(results), selected=selected)


def _spec(d: Draw) -> ValidationSpec:
    names = ["critical", "core", "extended"][: d.int(1, 3)]
    policy = replace(
        Policy(),
        max_iterations=d.int(1, 6),
        flake_retries=d.int(0, 2),
        fail_fast=d.bool(),
        rerun=d.pick(list(RerunMode)),
        redeploy=d.pick(list(RedeployPolicy)),
        deadline_seconds=d.pick([600, 7200]),
    )
    return ValidationSpec(
        suites=tuple(
            Suite(name=n, command=("pytest",), priority=d.pick(["P1", "P2", "P5"])) for n in names
        ),
        target=Target(command=("./restart",)),
        policy=policy,
        expected_tests=d.pick([None, 0, 5, 30]),
    )


def _view(obj: StagingValidation, decision: Decision, now: float) -> dict[str, Any]:
    status = build_status(obj, decision.state, now)
    status["engine"] = snapshot.to_data(decision.state)
    return {
        "status": json.loads(json.dumps(status)),
        "action": repr(decision.action),
        "report": render(obj, decision.state, now),
    }


def _step(spec: ValidationSpec, decision: Decision, d: Draw, now: float) -> Decision:
    """One event of the kinds the property test sends."""
    action = decision.action
    caps = Capabilities(command=True, webhook=False)
    if isinstance(action, Finish):
        way = d.pick(["spec", "rerun", "tick"])
        if way == "spec":
            gen = decision.state.generation + 1
            return engine.on_spec_changed(spec, decision.state, now, generation=gen)
        if way == "rerun":
            return engine.on_rerun(spec, decision.state, d.pick(["", "1", "2"]), now)
        return engine.on_tick(spec, decision.state, now)
    twist = d.int(0, 19)
    seen = d.pick(FINGERPRINTS)
    if twist == 4:
        return engine.on_target_observed(spec, decision.state, seen, now)
    if twist == 0:
        return engine.interrupt(decision.state, now, "interrupted")
    if twist == 1:
        return engine.internal_error(decision.state, now, "boom")
    if isinstance(action, RunSuites):
        if not action.suites:
            gen = decision.state.generation + 1
            return engine.on_spec_changed(spec, decision.state, now, generation=gen)
        sel = d.pick(action.suites)
        event = SuiteFinished(action.id, _suite_run(d, sel.suite, sel.test_ids), fingerprint=seen)
        return engine.on_suite(spec, decision.state, event, now, caps=caps)
    if isinstance(action, AwaitApproval):
        approved = engine.on_approved(decision.state, d.pick([action.token, "wrong"]))
        return engine.on_tick(spec, approved.state, now)
    assert isinstance(action, Redeploy)
    state = decision.state
    if d.bool():
        state = engine.on_redeploy_started(state, RedeployStarted(action.id)).state
    done = RedeployDone(d.bool(), "done", ("note",), action_id=action.id, fingerprint=seen)
    return engine.on_redeploy(spec, state, done, now)


def seeded(seeds: int, steps: int) -> Iterator[dict[str, Any]]:
    for seed in range(seeds):
        d = Draw(seed)
        spec = _spec(d)
        obj = StagingValidation(name=f"seed-{seed}", spec=spec)
        now = 1000.0
        decision = engine.begin(spec, now)
        for step in range(steps):
            yield {"seed": seed, "step": step, **_view(obj, decision, now)}
            now += d.int(0, 600)
            decision = _step(spec, decision, d, now)


def _copy_example(root: Path, name: str, port: int, into: Path) -> Path:
    """A copy of examples/NAME on its own port, so runs never meet another on the machine."""
    dest = into / name
    shutil.copytree(root / "examples" / name, dest, ignore=shutil.ignore_patterns(".state"))
    original = "18080" if name == "demo" else "18081"
    spec = dest / "validation.yaml"
    spec.write_text(spec.read_text().replace(original, str(port)))
    return dest


def _control(ctl: Path, action: str, port: int, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, str(ctl), action, "--port", str(port)],
        env=env,
        capture_output=True,
        check=action == "start",
        timeout=60,
    )


_RUN = "from greenloop.cli import main; raise SystemExit(main())"


def demos(base_port: int, root: Path) -> Iterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="greenloop-compare-") as tmp:
        # auth's ctl.py runs ../demo/app: both copies sit side by side.
        names = {"demo": "app/ctl.py", "auth": "ctl.py"}
        copies = {
            name: _copy_example(root, name, base_port + n, Path(tmp))
            for n, name in enumerate(names)
        }
        for n, (name, ctl) in enumerate(names.items()):
            port, where = base_port + n, copies[name]
            env = {**os.environ, "DEMO_STATE_DIR": str(where / ".state")}
            if name == "demo":
                _control(where / ctl, "reset", port, env)
            _control(where / ctl, "start", port, env)
            try:
                spec, out = where / "validation.yaml", where / ".greenloop"
                done = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        _RUN,
                        "run",
                        "--json",
                        "-q",
                        "--out",
                        str(out),
                        str(spec),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
            finally:
                _control(where / ctl, "stop", port, env)
            obj = json.loads(done.stdout) if done.stdout.strip() else {"stderr": done.stderr}
            yield {"demo": name, "exit": done.returncode, "object": _masked(obj, tmp)}


_TIME_KEYS = re.compile(r"(?i)(time|at|seconds|duration|elapsed|started|ended|finished)$")
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?")
_SECONDS = re.compile(r"\b\d+(\.\d+)? (s|ms)\b")


def _masked(value: Any, tmp: str, key: str = "") -> Any:
    """Times and durations masked: they differ between any two runs."""
    if isinstance(value, dict):
        return {k: _masked(v, tmp, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, tmp, key) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and _TIME_KEYS.search(key):
        return "<time>"
    if isinstance(value, str):
        value = value.replace(tmp, "<tmp>")
        value = _ISO.sub("<time>", value)
        return _SECONDS.sub("<n> s", value)
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=60)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--demo", action="store_true", help="also run examples/demo and auth")
    parser.add_argument("--port", type=int, default=18380, help="first of two demo ports")
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree whose examples run")
    args = parser.parse_args(argv)
    import greenloop

    print(json.dumps({"package": str(Path(greenloop.__file__).parent)}))
    for line in seeded(args.seeds, args.steps):
        print(json.dumps(line, sort_keys=True))
    if args.demo:
        for line in demos(args.port, args.root):
            print(json.dumps(line, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
