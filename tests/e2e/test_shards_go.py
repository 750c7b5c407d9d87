"""A whole-suite run of a sharded Go suite in local mode, split from a listing of its
tests (docs/design.md §4.1), on the REAL go toolchain and gotestsum.

Each test appends "<package>.<test> <shard index>" to a file, so the test counts how
often each ran and where. The module has a test name in two packages (Go's one ``-run``
for all packages: they must share a shard), subtests, and a test behind a build tag the
suite's command sets but the listing does not see: it must still run, once."""

from __future__ import annotations

import json
import os
import textwrap
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from greenloop.core.contract import OWN_NAMES
from greenloop.core.model import EnvVar, Suite
from greenloop.core.shards import Shard, ShardPlan
from greenloop.local.listing import split_go_suite
from tests.e2e.cli import greenloop
from tests.e2e.test_runners import GOTESTSUM, installed

pytestmark = pytest.mark.e2e
__all__ = ["installed"]  # the fixture, for pytest

PACKAGES = {
    "alpha": ["TestA1", "TestA2", "TestA3", "TestShared"],
    "beta": ["TestB1", "TestB2", "TestB3", "TestShared"],
    "gamma": ["TestG1", "TestG2", "TestG3", "TestG4"],
}
SUBTESTS = ("one", "two")  # of TestG4


def go_file(package: str, names: list[str]) -> str:
    tests = "".join(
        textwrap.dedent(
            f"""
            func {name}(t *testing.T) {{
            \tmark(t, "{package}.{name}")
            """
        )
        + (
            "".join(f'\tt.Run("{s}", func(t *testing.T) {{}})\n' for s in SUBTESTS)
            if name == "TestG4"
            else ""
        )
        + "}\n"
        for name in names
    )
    imports = '\t"os"\n\t"strings"\n\t"testing"\n\t"time"\n'
    return f"package {package}\n\nimport (\n{imports})\n{MARK}{tests}"


MARK = """
func mark(t *testing.T, name string) {
\tf, err := os.OpenFile(os.Getenv("RAN_FILE"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
\tif err != nil {
\t\tt.Fatal(err)
\t}
\tdefer f.Close()
\tf.WriteString(name + " " + os.Getenv("GREENLOOP_SHARD_INDEX") + "\\n")
\tfor _, flaky := range strings.Fields(os.Getenv("FLAKY")) {
\t\tmarker := os.Getenv("RAN_FILE") + "." + name
\t\tif _, err := os.Stat(marker); flaky == name && err != nil {
\t\t\tos.WriteFile(marker, nil, 0o644)
\t\t\ttime.Sleep(2 * time.Second) // a duration a second rerun shard is worth starting for
\t\t\tt.Fatalf("%s fails the first time", name)
\t\t}
\t}
}
"""

TAGGED = """//go:build extra

package gamma

import "testing"

func TestTagged(t *testing.T) { mark(t, "gamma.TestTagged") }
"""


def go_module(folder: Path) -> None:
    (folder / "go.mod").write_text("module example.com/sharded\n\ngo 1.21\n")
    for package, names in PACKAGES.items():
        (folder / package).mkdir()
        (folder / package / f"{package}_test.go").write_text(go_file(package, names))
    (folder / "gamma" / "tagged_test.go").write_text(TAGGED)


def write_validation(folder: Path, shards: int, flaky: tuple[str, ...] = ()) -> None:
    suite = {
        "name": "go",
        "runner": "go",
        "workingDir": str(folder / "module"),
        # -tags before the placeholder: the listing (only the placeholder's packages)
        # does not see TestTagged.
        "command": [
            str(GOTESTSUM),
            "--junitfile",
            "{greenloop:junit}",
            "--",
            "-tags",
            "extra",
            "{greenloop:select|./...}",
        ],
        "env": [
            {"name": "RAN_FILE", "value": str(folder / "ran.txt")},
            {"name": "FLAKY", "value": " ".join(flaky)},
        ],
        "shards": shards,
        "timeoutSeconds": 300,
    }
    doc = {
        "apiVersion": "greenloop.dev/v1alpha1",
        "kind": "StagingValidation",
        "metadata": {"name": "sharded-go"},
        "spec": {"policy": {"parallelism": shards, "maxIterations": 2}, "suites": [suite]},
    }
    (folder / "validation.yaml").write_text(json.dumps(doc))


def run(folder: Path) -> tuple[dict[str, Any], str]:
    env = {"GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOPROXY": "off"}
    proc = greenloop(
        "run", "validation.yaml", "--json", "--out", "out", cwd=folder, env=env, timeout=600
    )
    assert proc.returncode in (0, 1), proc.stderr
    status: dict[str, Any] = json.loads(proc.stdout)["status"]
    return status, proc.stderr


@pytest.mark.parametrize("shards", [2, 3])
def test_a_sharded_go_suite_runs_each_test_once_across_its_shards(
    shards: int, installed: None, tmp_path: Path
) -> None:
    (tmp_path / "module").mkdir()
    go_module(tmp_path / "module")
    write_validation(tmp_path, shards)
    status, stderr = run(tmp_path)
    assert status["phase"] == "Passed", stderr

    runs = [line.split() for line in (tmp_path / "ran.txt").read_text().splitlines()]
    every = {f"{p}.{n}" for p, names in PACKAGES.items() for n in names} | {"gamma.TestTagged"}
    assert Counter(name for name, _ in runs) == Counter(every)  # each test exactly once
    where = {name: shard for name, shard in runs}
    assert len(set(where.values())) > 1, where  # really split across processes
    assert where["alpha.TestShared"] == where["beta.TestShared"]  # one name, one shard
    assert where["gamma.TestTagged"] == "0"  # unlisted: shard 0 runs all the others' not

    # 13 tests and TestG4's two subtests, each reported once.
    assert status["summary"]["total"] == status["summary"]["passed"] == len(every) + 2
    iteration = tmp_path / "out" / "iteration-1"
    assert len(list(iteration.glob("go.shard-*.xml"))) == len(set(where.values()))
    assert "go: split 12 listed tests (11 names, 3 packages) into" in stderr
    assert os.path.getsize(iteration / "go.list.log") > 0


def test_a_sharded_rerun_keeps_one_name_of_two_packages_in_one_shard(
    installed: None, tmp_path: Path
) -> None:
    # Go's one -run covers every package of a shard's selection: apart, the shard given
    # alpha's TestShared would run beta's too, and neither result would count.
    (tmp_path / "module").mkdir()
    go_module(tmp_path / "module")
    flaky = ("alpha.TestA1", "alpha.TestShared", "beta.TestShared")
    write_validation(tmp_path, 2, flaky)
    status, stderr = run(tmp_path)
    assert status["phase"] == "Passed", stderr
    runs = [line.split() for line in (tmp_path / "ran.txt").read_text().splitlines()]
    assert sorted(name for name, _ in runs[13:]) == sorted(flaky)  # the rerun: each once
    second = tmp_path / "out" / "iteration-2"
    selections = sorted(sorted(p.read_text().split()) for p in second.glob("go.shard-*.select"))
    assert selections == [
        ["example.com/sharded/alpha::TestA1"],
        ["example.com/sharded/alpha::TestShared", "example.com/sharded/beta::TestShared"],
    ]


# A package whose test binary exits unless it runs as a shard: `go test -list` fails there.
REFUSES_TO_LIST = """package beta

import "os"

func init() {
\tif os.Getenv("GREENLOOP_SHARD_INDEX") == "" {
\t\tos.Exit(3)
\t}
}
"""


def test_a_listing_that_fails_runs_the_suite_whole_in_one_shard(
    installed: None, tmp_path: Path
) -> None:
    (tmp_path / "module").mkdir()
    go_module(tmp_path / "module")
    (tmp_path / "module" / "beta" / "init_test.go").write_text(REFUSES_TO_LIST)
    write_validation(tmp_path, 3)
    status, stderr = run(tmp_path)
    assert status["phase"] == "Passed", stderr
    assert "go: not split: the test listing failed (go test -list exited with code 1" in stderr

    runs = [line.split() for line in (tmp_path / "ran.txt").read_text().splitlines()]
    every = {f"{p}.{n}" for p, names in PACKAGES.items() for n in names} | {"gamma.TestTagged"}
    assert Counter(name for name, _ in runs) == Counter(every)
    assert {shard for _, shard in runs} == {"0"}  # one shard ran them all
    assert status["summary"]["total"] == len(every) + 2


# ---------------------------------------------------------------------------
# The listing process (local/listing), on a stand-in `go`: bounded, and never trusted
# when it cannot be

FAKE_GO = """#!/bin/sh
case "$1" in
  version) echo "go version $FAKE_GO_VERSION linux/amd64" ;;
  test) echo "$$" > "$PID_FILE"; eval "$FAKE_GO_LIST" ;;
esac
"""
GOOD = "printf 'TestA\\nTestB\\nTestC\\nTestD\\nok  \\tx/a\\t0.1s\\n'"


def fake_go_suite(folder: Path, listing: str, version: str = "go1.26.0") -> Suite:
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "go").write_text(FAKE_GO)
    (bin_dir / "go").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GO_VERSION": version,
        "FAKE_GO_LIST": listing,
        "PID_FILE": str(folder / "pid"),
    }
    return Suite(
        name="go",
        command=("gotestsum", "--", "{greenloop:select|./...}"),
        runner="go",
        shards=3,
        timeout_seconds=2,
        env=tuple(EnvVar(k, v) for k, v in env.items()),
    )


@pytest.mark.parametrize(
    ("listing", "version", "why"),
    [
        ("sleep 60", "go1.26.0", "go test -list ran past 2 s and was stopped"),
        ("head -c 5000000 /dev/zero | tr '\\0' x", "go1.26.0", "printed more than 4 MiB"),
        ("echo TestA; echo 'FAIL x/a [build failed]'; exit 1", "go1.26.0", "exited with code 1"),
        (GOOD, "go1.19.3", "Go 1.19 has no -skip"),
        ("true", "go1.26.0", "the test listing found no tests"),
    ],
    ids=["too-slow", "too-much", "failed", "old-go", "empty"],
)
def test_a_listing_that_cannot_be_trusted_leaves_one_shard(
    listing: str, version: str, why: str, tmp_path: Path
) -> None:
    suite = fake_go_suite(tmp_path, listing, version)
    split = split_go_suite(suite, tmp_path, tmp_path / "run", None)
    assert split.plan == ShardPlan("go", None, (Shard(0, 1),))
    assert why in split.note and split.note.endswith("one shard")
    if (tmp_path / "pid").exists():  # the listing and all it started are gone
        assert not Path(f"/proc/{(tmp_path / 'pid').read_text().strip()}").exists()


def test_go_not_on_path_leaves_one_shard(tmp_path: Path) -> None:
    suite = fake_go_suite(tmp_path, GOOD)
    (tmp_path / "bin" / "go").unlink()
    env = tuple(EnvVar("PATH", str(tmp_path / "bin")) if v.name == "PATH" else v for v in suite.env)
    split = split_go_suite(replace(suite, env=env), tmp_path, tmp_path / "run", None)
    assert split.plan.shards == (Shard(0, 1),) and "'go' cannot be started" in split.note


def test_a_good_listing_splits_and_is_kept_in_the_runs_folder(tmp_path: Path) -> None:
    split = split_go_suite(fake_go_suite(tmp_path, GOOD), tmp_path, tmp_path / "run", None)
    assert 1 < len(split.plan.shards) <= 3
    assert split.plan.shards[0].args is not None and split.plan.shards[0].args[1] == "-skip"
    assert "TestA" in (tmp_path / "run" / "go.list.log").read_text()


def test_the_listing_inherits_none_of_greenloop_s_own_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`go test -list` runs a TestMain: one reading $GREENLOOP_SELECT (or the shard
    variables) from whoever ran greenloop would list only a part (core/contract.py
    OWN_NAMES)."""
    for name in OWN_NAMES:
        monkeypatch.setenv(name, "inherited")
    own = "|".join(OWN_NAMES)
    listed = f'if env | grep -qE "^({own})="; then exit 1; fi; {GOOD}'
    split = split_go_suite(fake_go_suite(tmp_path, listed), tmp_path, tmp_path / "run", None)
    assert len(split.plan.shards) > 1, split.note
