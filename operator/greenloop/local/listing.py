"""List a Go suite's tests before a whole-suite run splits it (docs/design.md §4.1):
``go version`` and ``go test -list '.*' <packages>`` in the suite's workingDir, with the
suite's environment, each bounded like every process greenloop starts (its own process
group, stopped with all it started; at most ``LIST_TIMEOUT_SECONDS`` and the round's
deadline; its output in a capped log). What to make of the listing is the core's
(``core/listing``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from greenloop.core import contract, listing
from greenloop.core.model import Suite
from greenloop.local import procs
from greenloop.local.logs import HEAD_BYTES, CappedLog, tail
from greenloop.local.suites import child_env

__all__ = ["LIST_TIMEOUT_SECONDS", "split_go_suite"]

# A listing compiles each package's test binary (which the shards then reuse from Go's
# build cache): bounded by the suite's own timeout, and by five minutes, after which one
# shard running the whole suite is the better bet.
LIST_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class _Output:
    text: str
    error: str | None


def _run(
    args: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    timeout: float,
    tick: Callable[[float], None] | None,
) -> _Output:
    """Run one listing command; its output, or why there is none to trust."""
    log = CappedLog(log_path)
    try:
        child = procs.start(args, cwd=cwd, env=env, stdout=log.write_fd, stderr=subprocess.STDOUT)
    except OSError as err:
        log.abandon()
        return _Output("", f"{args[0]!r} cannot be started: {err.strerror or err}")
    log.start()
    try:
        timed_out = procs.wait(child, timeout, tick)
    finally:
        procs.stop(child)
        log.finish()
    if timed_out:
        return _Output("", f"{' '.join(args[:3])} ran past {timeout:.0f} s and was stopped")
    if log_path.stat().st_size > HEAD_BYTES:
        # The log kept its head and tail only: names in the middle are gone.
        return _Output("", f"{' '.join(args[:3])} printed more than {HEAD_BYTES >> 20} MiB")
    text = log_path.read_text("utf-8", "replace")
    code = child.proc.returncode
    if code != 0:
        return _Output(text, f"{' '.join(args[:3])} exited with code {code}: {tail(log_path)}")
    return _Output(text, None)


def listing_env(suite: Suite) -> dict[str, str]:
    """The suite's environment without the runner contract: the listing is no run of the
    suite (nothing to select, no report to write) and no shard, and a TestMain runs in it
    too, so none of greenloop's own variables reaches it, not even inherited from our
    caller."""
    env = child_env()
    for name in contract.OWN_NAMES:
        env.pop(name, None)
    env.update((var.name, var.value) for var in contract.own_env(suite))
    return env


def split_go_suite(
    suite: Suite,
    base_dir: Path,
    run_dir: Path,
    stop_by: float | None,
    tick: Callable[[float], None] | None = None,
) -> listing.ListedSplit:
    """The shards of a whole-suite run of this Go suite, from its listing (one shard,
    with the reason, when the listing cannot be trusted). ``tick`` is called about once
    a second while a listing runs."""
    if not listing.takes_args(suite.command):  # nothing to list for
        return listing.split_go(suite.name, suite.command, suite.shards, "not listed", None)
    run_dir.mkdir(parents=True, exist_ok=True)
    cwd = (base_dir / suite.working_dir).resolve()
    env = listing_env(suite)
    timeout = min(LIST_TIMEOUT_SECONDS, float(suite.timeout_seconds))
    if stop_by is not None:
        timeout = max(0.0, min(timeout, stop_by - time.time()))
    began = time.monotonic()
    version = _run(
        ("go", "version"), cwd, env, run_dir / f"{suite.name}.go-version.log", timeout, tick
    )
    if version.error is not None:
        return listing.split_go(suite.name, suite.command, suite.shards, version.error, None)
    timeout = max(0.0, timeout - (time.monotonic() - began))  # one bound for both
    found = _run(
        listing.go_list_args(suite.command),
        cwd,
        env,
        run_dir / f"{suite.name}.list.log",
        timeout,
        tick,
    )
    parsed = listing.parse_go_listing(found.text) if found.error is None else found.error
    return listing.split_go(
        suite.name, suite.command, suite.shards, parsed, listing.go_version(version.text)
    )
