"""The operator's shard wrapper (core/pod_command.py) run by the real /bin/sh: for every
index of an Indexed Job, the command a pod runs gets exactly the arguments local mode
gives that shard (core/shards.shard_command), whatever the test ids hold - spaces,
quotes, ``$``, ``$(...)``, backquotes: ids are tenant data and never run as shell.

The pod is played as the kubelet plays it: Kubernetes' ``$(VAR)`` expansion of the
command with the pod's environment (:func:`kube_expand`, a port of
k8s.io/kubernetes/third_party/forked/golang/expansion), the selection ConfigMap's keys as
files, ``GREENLOOP_SHARD_INDEX``/``GREENLOOP_SHARD_COUNT`` set. The "runner" is a stub that
prints its argv."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from greenloop.core.model import Suite
from greenloop.core.pod_command import SHELL, shard_wrapper_command
from greenloop.core.shards import SHARD_COUNT_ENV, SHARD_INDEX_ENV, plan, shard_command
from greenloop.k8s.jobs import SELECT_DIR, Owner, SuiteJob, build_selection_configmap

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(SHELL).exists(), reason=f"no {SHELL}"),
]

JUNIT = "/greenloop/results/junit.xml"
STUB = (
    'import json, os, sys\nprint(json.dumps([sys.argv, os.environ.get("GREENLOOP_SELECT_ARGS")]))\n'
)
CANARY = "/tmp/greenloop-pod-command-canary"
# Ids as a tenant's tests may name themselves: every character a shell treats specially.
NASTY = (
    f'a b.test.js::it\'s $(touch {CANARY}) `touch {CANARY}` "q" $HOME ${{X}} a  b',
    "a b.test.js::tab\there; semicolon & amp | pipe > gt * star ? q [x] ~ #h",
    "c.test.js::back\\slash 'single' \"double\" $$ $(",
    "c.test.js::plain",
)
IDS_BY_RUNNER = {
    "jest": NASTY,
    "vitest": tuple(i.replace("::", "::d > ", 1) for i in NASTY),
    "playwright": tuple(i.replace("::", "::d \u203a ", 1) for i in NASTY),
    "go": (
        "example.com/p q::TestA$(x)/sub 'it'",
        "example.com/p::TestB`id`",
        "example.com/p::TestC",
    ),
    "maven": ("com.ex.Cart$Inner::adds(int)[1]", "com.ex.Pay::card $(id)", "com.ex.Pay::cash"),
}
# The suite's own words: the placeholder in the middle, words after it, spaces and quotes.
TAIL = ("--out={greenloop:junit}", "two words", "it's", "$HOME")


def kube_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of a container's command: ``$$`` is ``$``; ``$(NAME)`` is
    the variable's value when the container defines it, else stays as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
            elif nxt == "(":
                end = text.find(")", i + 2)
                if end >= 0:
                    name = text[i + 2 : end]
                    out.append(env.get(name, f"$({name})"))
                    i = end + 1
                    continue
                out.append("$(")
            else:
                out.append("$" + nxt)
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def run_pod(
    command: tuple[str, ...], index: int, count: int, select_dir: Path
) -> tuple[list[str], str | None]:
    env = {"PATH": "/usr/bin:/bin", SHARD_INDEX_ENV: str(index), SHARD_COUNT_ENV: str(count)}
    argv = [kube_expand(arg, env) for arg in command]
    proc = subprocess.run(
        argv, env=env, cwd=select_dir, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    words, select_args = json.loads(proc.stdout)
    return [sys.executable, *words], select_args


def suite_command(stub: Path) -> tuple[str, ...]:
    return (sys.executable, str(stub), "--ci", "{greenloop:select}", *TAIL)


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    path = tmp_path / "runner.py"
    path.write_text(STUB)
    Path(CANARY).unlink(missing_ok=True)
    return path


@pytest.mark.parametrize("runner", sorted(IDS_BY_RUNNER))
def test_each_index_of_a_rerun_runs_its_own_selection_as_local_mode_does(
    runner: str, stub: Path, tmp_path: Path
) -> None:
    ids = IDS_BY_RUNNER[runner]
    command = suite_command(stub)
    shards = plan("e2e", ids, 3, runner=runner).shards
    assert len(shards) > 1
    # The selection ConfigMap as the pod mounts it.
    run = SuiteJob(
        owner=Owner(name="checkout", namespace="staging", uid="u-1"),
        iteration=2,
        suite=Suite(name="e2e", command=command, image="e2e:1", runner=runner, shards=3),
        reporter_image="greenloop:dev",
        results_url="http://results:8081",
        selection=ids,
        shards=shards,
    )
    select_dir = tmp_path / "select"
    select_dir.mkdir()
    for key, text in build_selection_configmap(run, job_uid="job-1")["data"].items():
        (select_dir / key).write_text(text)
    wrapper = shard_wrapper_command(command, runner, shards, JUNIT, str(select_dir))
    assert wrapper[:2] == (SHELL, "-c")
    for shard in shards:
        argv, exported = run_pod(wrapper, shard.index, len(shards), select_dir)
        assert argv == list(shard_command(command, runner, shard, JUNIT)), shard
        local = shard_command(command, runner, shard, JUNIT)
        selected = local[3 : len(local) - len(TAIL)]
        assert exported is not None and shlex.split(exported) == list(selected)
    assert not Path(CANARY).exists(), "a test id ran as shell"


@pytest.mark.parametrize("runner", ["jest", "vitest", "playwright"])
def test_each_index_of_a_whole_suite_run_gets_its_shard_flag(
    runner: str, stub: Path, tmp_path: Path
) -> None:
    command = suite_command(stub)
    shards = plan("e2e", None, 4, runner=runner).shards
    wrapper = shard_wrapper_command(command, runner, shards, JUNIT, str(tmp_path))
    for shard in shards:
        argv, exported = run_pod(wrapper, shard.index, len(shards), tmp_path)
        assert argv == list(shard_command(command, runner, shard, JUNIT))
        assert argv[-1] == f"--shard={shard.index + 1}/4"
        assert exported is None


def test_an_index_without_its_arguments_file_fails_saying_so(stub: Path, tmp_path: Path) -> None:
    shards = plan("e2e", IDS_BY_RUNNER["jest"], 3, runner="jest").shards
    wrapper = shard_wrapper_command(suite_command(stub), "jest", shards, JUNIT, str(tmp_path))
    env = {"PATH": "/usr/bin:/bin", SHARD_INDEX_ENV: "0", SHARD_COUNT_ENV: "3"}
    argv = [kube_expand(arg, env) for arg in wrapper]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2
    assert f"no selection arguments at {tmp_path}/args-0.txt" in proc.stderr
    assert SELECT_DIR  # the pod's own mount; these tests use a folder of their own
