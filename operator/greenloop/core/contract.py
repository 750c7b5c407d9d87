"""The runner contract's environment: the variables greenloop gives one suite process
(local mode) or suite container (operator mode), docs/runners.md "The contract".

Both shells build a suite's environment from :func:`suite_env`, so a suite sees the same
names in either mode; what differs is only where things are (the shell gives the paths)
and, for an Indexed Job whose pods share one template, that the shard index is read
from the pod and each index's selection arguments are exported by the shard wrapper
(core/pod_command.py) instead of being in the env.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greenloop.core.model import EnvVar, Suite
from greenloop.core.runners import runner_env, select_args, selects_by_args, shell_words
from greenloop.core.shards import SHARD_COUNT_ENV, SHARD_INDEX_ENV

__all__ = [
    "ITERATION_ENV",
    "JUNIT_XML_ENV",
    "OWN_NAMES",
    "SELECT_ARGS_ENV",
    "SELECT_ENV",
    "SUITE_ENV",
    "Selected",
    "ShardVars",
    "own_env",
    "per_index_selection",
    "selected",
    "suite_env",
]

JUNIT_XML_ENV = "GREENLOOP_JUNIT_XML"
SELECT_ENV = "GREENLOOP_SELECT"
SELECT_ARGS_ENV = "GREENLOOP_SELECT_ARGS"
SUITE_ENV = "GREENLOOP_SUITE"
ITERATION_ENV = "GREENLOOP_ITERATION"
#: greenloop's own: set by greenloop alone. A suite's ``env`` naming one is not passed on
#: (greenloop's value wins, and a pod lists each name once), and a process never inherits
#: one from whoever ran greenloop (a shard variable inherited by an unsharded run would
#: make it run a part of the suite).
OWN_NAMES = (
    JUNIT_XML_ENV,
    SUITE_ENV,
    ITERATION_ENV,
    SHARD_INDEX_ENV,
    SHARD_COUNT_ENV,
    SELECT_ENV,
    SELECT_ARGS_ENV,
)


@dataclass(frozen=True, slots=True)
class Selected:
    """A run of only some tests: ``file`` is where the process reads its ids (one a
    line); ``args`` the runner's selection arguments ($GREENLOOP_SELECT_ARGS), None when
    the shard wrapper exports them at run time (each index its own)."""

    file: str
    args: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class ShardVars:
    """One shard of ``count``: ``index`` as a literal (a local process), or the
    Kubernetes ``valueFrom`` it is read from (one pod template for every index)."""

    count: int
    index: int | None = None
    index_from: Mapping[str, Any] | None = field(default=None, hash=False)


def selected(runner: str, file: str, test_ids: Sequence[str]) -> Selected:
    """A process that runs exactly ``test_ids``."""
    return Selected(file, select_args(runner, test_ids))


def per_index_selection(runner: str, file: str) -> Selected:
    """The selection of an Indexed Job's pod template, each index its own ids: a runner
    told them as arguments gets its index's from the shard wrapper; for the others they
    are none, the same for every index."""
    return Selected(file, None if selects_by_args(runner) else ())


def own_env(suite: Suite) -> tuple[EnvVar, ...]:
    """The suite's ``env`` as its processes get it: without greenloop's own names."""
    return tuple(var for var in suite.env if var.name not in OWN_NAMES)


def suite_env(
    suite: Suite,
    iteration: int,
    junit_path: str,
    select: Selected | None,
    shard: ShardVars | None,
) -> tuple[EnvVar, ...]:
    """Every variable one suite process gets, each name once, in an order Kubernetes can
    expand (a name is defined before a value that names it): the runner's reporter
    variables (JEST_JUNIT_OUTPUT_FILE...) unless the suite sets them, the suite's own
    ``env``, then greenloop's own (``OWN_NAMES``). ``select`` is None on a whole-suite
    run; ``shard`` None for an unsharded one."""
    own = own_env(suite)
    named = {var.name for var in own}
    env = [
        EnvVar(name, value)
        for name, value in runner_env(suite.runner, junit_path).items()
        if name not in named
    ]
    env += own
    env += [
        EnvVar(JUNIT_XML_ENV, junit_path),
        EnvVar(SUITE_ENV, suite.name),
        EnvVar(ITERATION_ENV, str(iteration)),
    ]
    if shard is not None:
        index = "" if shard.index is None else str(shard.index)
        env.append(EnvVar(SHARD_INDEX_ENV, index, shard.index_from))
        env.append(EnvVar(SHARD_COUNT_ENV, str(shard.count)))
    if select is not None:
        env.append(EnvVar(SELECT_ENV, select.file))
        if select.args is not None:
            env.append(EnvVar(SELECT_ARGS_ENV, shell_words(select.args)))
    return tuple(env)
