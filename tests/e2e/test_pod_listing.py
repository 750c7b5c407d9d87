"""The operator's in-pod listing wrapper (core/pod_listing.py) run as each pod of the
Indexed Job runs it: the exact command the Job carries, Kubernetes' ``$(VAR)`` expansion,
the real /bin/sh, ``GREENLOOP_SHARD_INDEX``/``GREENLOOP_SHARD_COUNT`` as the Job sets
them, one working copy per index (each pod has its own files).

- For any listing, every listed name runs in exactly one index (a stub ``go``; property
  test), and every fallback the image can cause runs the whole suite in index 0 and
  nothing elsewhere, the reason in the idle indexes' reports.
- On the REAL go + gotestsum over a multi-package module (the local split's fixture:
  a name in two packages, subtests, a test behind a build tag the listing is not given)
  and the REAL mvn offline over a two-module project, the union of the indexes' JUnit
  has every test exactly once; a POM that sets Surefire's includes falls back."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.core.junit import parse_junit
from greenloop.core.pod_command import SHELL
from greenloop.core.pod_listing import listing_wrapper_command
from greenloop.core.shard_results import MergedSuite, ShardOutcome, merge
from greenloop.core.shards import SHARD_COUNT_ENV, SHARD_INDEX_ENV, Shard, ShardPlan
from tests.e2e.test_pod_command import kube_expand
from tests.e2e.test_runners import GOTESTSUM, installed
from tests.e2e.test_shards_go import PACKAGES, SUBTESTS, go_module

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(SHELL).exists(), reason=f"no {SHELL}"),
]
__all__ = ["installed"]  # the fixture, for pytest

GO_BIN = "/usr/local/go/bin"


def run_index(
    command: tuple[str, ...], index: int, count: int, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """One pod: the Job's command as the kubelet expands it, in its own working copy."""
    full = {**env, SHARD_INDEX_ENV: str(index), SHARD_COUNT_ENV: str(count)}
    argv = [kube_expand(arg, full) for arg in command]
    return subprocess.run(
        argv, env=full, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def note_of(junit: Path) -> str:
    report = parse_junit(junit.read_bytes(), name=junit.name)
    assert report.tests == ()
    (note,) = report.notes
    return note


# ---------------------------------------------------------------------------
# A stub go: the split itself, and the fallbacks the image decides

STUB_GO = """\
#!/bin/sh
if [ "$1" = version ]; then echo "$STUB_VERSION"; exit 0; fi
[ "$1 $2 $3" = "test -list .*" ] || { echo "stub go: unexpected $*" >&2; exit 9; }
if [ "${GREENLOOP_SHARD_INDEX}" = "${STUB_FAIL_INDEX:-none}" ]; then
  echo "go: example.com/dep@v1.2.0: dial tcp: lookup proxy.golang.org: no such host" >&2
  exit 1
fi
if [ "${GREENLOOP_SHARD_INDEX}" = "${STUB_PARTIAL_INDEX:-none}" ]; then
  cat "$STUB_PARTIAL_LISTING"
  exit 1
fi
cat "$STUB_LISTING"
exit "${STUB_LIST_EXIT:-0}"
"""
STUB_RUNNER = "import json, sys\nprint(json.dumps(sys.argv[1:]))\n"


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stubs")
    go = folder / "go"
    go.write_text(STUB_GO)
    go.chmod(0o755)
    (folder / "runner.py").write_text(STUB_RUNNER)
    return folder


def stub_pods(
    stubs: Path,
    work: Path,
    listing: str,
    count: int,
    *,
    version: str = "go1.22.1",
    code: int = 0,
    fail_index: int | None = None,
    partial: tuple[int, str] | None = None,
) -> list[tuple[int, list[str] | None, str]]:
    """Each index's (exit code, the runner's argv or None when it ran nothing, stderr or
    an idle index's note). ``fail_index``: the index whose listing alone fails;
    ``partial``: an index whose listing alone fails part-way, and what it lists."""
    (work / "listing.txt").write_text(listing)
    (work / "partial.txt").write_text("" if partial is None else partial[1])
    junit = work / "junit.xml"
    command = (sys.executable, str(stubs / "runner.py"), "-v", "{greenloop:select|./...}", "x")
    wrapper = listing_wrapper_command(command, "go", str(junit))
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "STUB_VERSION": f"go version {version} linux/amd64",
        "STUB_LISTING": str(work / "listing.txt"),
        "STUB_LIST_EXIT": str(code),
        "STUB_FAIL_INDEX": "none" if fail_index is None else str(fail_index),
        "STUB_PARTIAL_INDEX": "none" if partial is None else str(partial[0]),
        "STUB_PARTIAL_LISTING": str(work / "partial.txt"),
    }
    out: list[tuple[int, list[str] | None, str]] = []
    for index in range(count):
        junit.unlink(missing_ok=True)
        proc = run_index(wrapper, index, count, work, env)
        argv = json.loads(proc.stdout) if proc.stdout.strip() else None
        if argv is None and proc.returncode == 0:
            out.append((proc.returncode, None, note_of(junit)))
        else:
            out.append((proc.returncode, argv, proc.stderr))
    return out


def listing_of(packages: dict[str, list[str]]) -> str:
    lines = []
    for package, names in packages.items():
        lines += [*names, f"ok  \texample.com/m/{package}\t0.01s"]
    return "\n".join(lines) + "\n"


NAMES = st.from_regex(r"(Test|Fuzz|Example)[A-Za-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=25, deadline=None)
@given(
    packages=st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.lists(NAMES, max_size=12), min_size=1
    ),
    count=st.integers(2, 5),
)
def test_every_listed_name_runs_in_exactly_one_index(
    stubs: Path,
    tmp_path_factory: pytest.TempPathFactory,
    packages: dict[str, list[str]],
    count: int,
) -> None:
    work = tmp_path_factory.mktemp("pods")
    names = sorted({n for ns in packages.values() for n in ns})
    pods = stub_pods(stubs, work, listing_of(packages), count)
    if not names:  # nothing listed: the fallback, index 0 runs the whole command
        assert pods[0][1] == ["-v", "./...", "x"]
        assert all(argv is None for _, argv, _ in pods[1:])
        return
    assert owners_of(pods, names) == Counter(names)  # each exactly once


def owners_of(pods: list[tuple[int, list[str] | None, str]], names: list[str]) -> Counter[str]:
    """How many indexes run each of ``names``, from each index's -run/-skip."""
    owners: Counter[str] = Counter()
    for index, (code, argv, why) in enumerate(pods):
        assert code == 0, why
        if argv is None:
            assert index > 0 and why == "no listed test fell to this shard", why
            continue
        assert argv[0] == "-v" and argv[-2:] == ["./...", "x"]
        assert argv[1] == "-count=1"
        flag = argv[2] if len(argv) > 4 else None
        if index == 0:
            assert flag in ("-skip", None)
            skip = re.compile(argv[3]) if flag else None
            owners.update(n for n in names if skip is None or not skip.match(n))
        else:
            assert flag == "-run"
            owners.update(n for n in names if re.compile(argv[3]).match(n))
    return owners


def test_a_pod_whose_listing_misses_a_package_leaves_the_other_names_where_they_were(
    stubs: Path, tmp_path: Path
) -> None:
    # Pod 2 could not list package a (a module it failed to fetch, say) while pods 0 and 1
    # did: a name's shard must not depend on what else a pod listed, or pod 2's share of
    # b's and c's names shifts and some run in no pod at all.
    packages = {
        "a": [f"TestA{i}" for i in range(8)],
        "b": [f"TestB{i}" for i in range(8)],
        "c": [f"TestC{i}" for i in range(8)],
    }
    partial = "FAIL\texample.com/m/a [setup failed]\n" + listing_of(
        {k: v for k, v in packages.items() if k != "a"}
    )
    pods = stub_pods(stubs, tmp_path, listing_of(packages), 3, partial=(2, partial))
    rest = sorted(packages["b"] + packages["c"])
    assert owners_of(pods, rest) == Counter(rest)  # each exactly once


@pytest.mark.parametrize(
    ("listing", "version", "code", "why"),
    [
        ("", "go1.22.1", 0, "the test listing found no tests"),
        ("TestA\nok  \tm/a\t0.1s\n", "go1.19.3", 0, "has no -skip (Go 1.20+ needed)"),
        ("TestA\nok  \tm/a\t0.1s\n", "devel", 0, "go version did not say which Go"),
        ("".join(f"Test{i:08d}\n" for i in range(12_000)) + "ok  \tm/a\t1s\n", "go1.22.1", 0,
         "longer than one argument may be (100000 characters)"),
    ],
)  # fmt: skip
def test_a_listing_the_image_cannot_give_runs_the_whole_suite_in_index_0(
    stubs: Path, tmp_path: Path, listing: str, version: str, code: int, why: str
) -> None:
    pods = stub_pods(stubs, tmp_path, listing, 3, version=version, code=code)
    first_code, first, stderr = pods[0]
    assert first_code == 0 and first == ["-v", "./...", "x"]  # exactly the unsharded command
    assert why in stderr
    for code_i, argv, note in pods[1:]:
        assert code_i == 0 and argv is None
        assert note.startswith("not split in the pod: ") and why in note
        assert note.endswith("; shard 1 ran the whole suite")


# The listing-failure rule: a listing can fail in one pod and not another (a module
# download, the compiler killed for memory), so a failed listing is never taken for a
# fact every pod shares: index 0 runs the whole suite, every other index fails without
# results (a RunnerError for that shard: its tests are not run, never passed).
FAILED_PREFIX = "greenloop: the test listing failed in this pod: "
LISTED = "TestA\nTestB\nTestC\nok  \tm/a\t0.1s\n"


def test_a_listing_that_fails_only_in_index_2_leaves_index_2_without_results(
    stubs: Path, tmp_path: Path
) -> None:
    pods = stub_pods(stubs, tmp_path, LISTED, 3, fail_index=2)
    assert not (tmp_path / "junit.xml").exists()  # index 2, the last: no report at all
    (code0, argv0, _), (code1, argv1, _), (code2, argv2, stderr2) = pods
    # The slot rule (a hash of the name, mod 3): TestA 2, TestB 0, TestC 1.
    assert code0 == 0 and argv0 == ["-v", "-count=1", "-skip", "^(?:TestA|TestC)$", "./...", "x"]
    assert code1 == 0 and argv1 == ["-v", "-count=1", "-run", "^(?:TestC)$", "./...", "x"]
    assert code2 != 0 and argv2 is None
    last = stderr2.strip().splitlines()[-1]
    assert last.startswith(FAILED_PREFIX) and "lookup proxy.golang.org: no such host" in last


@pytest.mark.parametrize(
    ("listing", "code", "tail"),
    [
        ("FAIL\tm/b [build failed]\nFAIL\n", 1, "FAIL\tm/b [build failed] | FAIL"),
        ("TestA\nTestB\n", 0, "TestA | TestB"),  # names without their package's line
        ("TestA\n", 137, "TestA (exit 137)"),  # stopped by a signal (killed for memory)
        ("TestA\nok  \tm/a\t0.1s\n", 137, "(exit 137)"),  # names, but killed
    ],
)
def test_a_listing_that_failed_runs_the_whole_suite_in_index_0_and_fails_the_others(
    stubs: Path, tmp_path: Path, listing: str, code: int, tail: str
) -> None:
    pods = stub_pods(stubs, tmp_path, listing, 3, code=code)
    assert not (tmp_path / "junit.xml").exists()
    first_code, first, stderr = pods[0]
    assert first_code == 0 and first == ["-v", "./...", "x"]  # exactly the unsharded command
    assert "shard 1 runs the whole suite" in stderr
    for code_i, argv, stderr_i in pods[1:]:
        assert code_i != 0 and argv is None
        last = stderr_i.strip().splitlines()[-1]
        assert last.startswith(FAILED_PREFIX) and tail in last, last


def test_a_listing_that_failed_but_listed_names_is_split_on_those_names(
    stubs: Path, tmp_path: Path
) -> None:
    # go test -list over a module one of whose packages does not build: that package's
    # FAIL line, the others' names (real output: test_the_real_go_suite_with_a_package_...).
    listing = "FAIL\tm/b [build failed]\n" + LISTED + "FAIL\n"
    pods = stub_pods(stubs, tmp_path, listing, 2, code=1)
    # The slot rule (a hash of the name, mod 2): TestA 1, TestB 0, TestC 1.
    assert pods[0][:2] == (0, ["-v", "-count=1", "-skip", "^(?:TestA|TestC)$", "./...", "x"])
    assert pods[1][:2] == (0, ["-v", "-count=1", "-run", "^(?:TestA|TestC)$", "./...", "x"])
    assert "split on the names it listed" in pods[0][2]


def test_names_a_failing_package_printed_before_its_fail_line_are_not_split_on(
    stubs: Path, tmp_path: Path
) -> None:
    listing = "TestY\nFAIL\tm/b\t0.1s\n" + LISTED + "FAIL\n"  # TestY's slot: 1 of 2
    pods = stub_pods(stubs, tmp_path, listing, 2, code=1)
    assert pods[1][1] == ["-v", "-count=1", "-run", "^(?:TestA|TestC)$", "./...", "x"]


# ---------------------------------------------------------------------------
# The real go and gotestsum


def junit_ids(junit: Path) -> list[str]:
    return [t.id for t in parse_junit(junit.read_bytes(), name=junit.name).tests]


def go_pods(module: Path, folder: Path, count: int, *, broken: bool = False) -> list[Path]:
    """Each index in its own copy of the module; its JUnit report. ``broken``: a
    package does not build, so every index fails (go test builds every package it is
    given, whatever -run or -skip select)."""
    command = (
        str(GOTESTSUM), "--junitfile", "{greenloop:junit}", "--",
        "-tags", "extra", "{greenloop:select|./...}",
    )  # fmt: skip
    env = {
        **os.environ,
        "PATH": f"{GO_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "RAN_FILE": str(folder / "ran.txt"),
        "FLAKY": "",
    }
    reports = []
    for index in range(count):
        pod = folder / f"pod-{index}"
        shutil.copytree(module, pod / "module")
        junit = pod / "junit.xml"
        wrapper = listing_wrapper_command(command, "go", str(junit))
        proc = run_index(wrapper, index, count, pod / "module", env)
        assert (proc.returncode != 0) == broken, proc.stderr[-3000:]
        reports.append(junit)
    return reports


def test_the_real_go_suite_runs_every_test_once_across_the_indexes(
    installed: None, tmp_path: Path
) -> None:
    module = tmp_path / "src"
    module.mkdir()
    go_module(module)
    reports = go_pods(module, tmp_path, 3)
    ran = Counter(line for line in (tmp_path / "ran.txt").read_text().splitlines())
    expected = {f"{p}.{n}" for p, names in PACKAGES.items() for n in names} | {"gamma.TestTagged"}
    assert {line.split()[0] for line in ran} == expected
    assert all(c == 1 for c in Counter(line.split()[0] for line in ran.elements()).values())
    # TestTagged: not listed (the listing has no -tags), so index 0 ran it.
    assert "gamma.TestTagged 0" in ran
    # Shared: one name in two packages stays in one index.
    assert len({line.split()[1] for line in ran if ".TestShared" in line}) == 1
    ids = Counter(i for junit in reports for i in junit_ids(junit))
    assert all(c == 1 for c in ids.values()), ids
    assert ids.keys() >= {f"example.com/sharded/gamma::TestG4/{s}" for s in SUBTESTS}


@pytest.mark.parametrize(
    "broken",
    [
        "package beta\n\nfunc broken( {\n",  # a syntax error: FAIL ... [setup failed]
        'package beta\n\nvar broken int = "s"\n',  # a type error: FAIL ... [build failed]
    ],
)
def test_the_real_go_suite_with_a_package_that_does_not_build_is_still_split(
    installed: None, tmp_path: Path, broken: str
) -> None:
    module = tmp_path / "src"
    module.mkdir()
    go_module(module)
    (module / "beta" / "broken_test.go").write_text(broken)
    reports = go_pods(module, tmp_path, 3, broken=True)
    ran = (tmp_path / "ran.txt").read_text().splitlines()
    # Split on the names alpha and gamma listed: each of their tests ran once.
    expected = {f"{p}.{n}" for p in ("alpha", "gamma") for n in PACKAGES[p]} | {"gamma.TestTagged"}
    assert Counter(line.split()[0] for line in ran) == Counter(expected)
    assert len({line.split()[1] for line in ran}) == 3
    # beta's failure: every index reports it (each builds beta), the merge keeps it once.
    plan = ShardPlan("go", None, tuple(Shard(i, 3) for i in range(3)))
    outcomes = [
        ShardOutcome(i, parse_junit(r.read_bytes(), name=r.name).tests)
        for i, r in enumerate(reports)
    ]
    merged = merge(plan, outcomes)
    assert isinstance(merged, MergedSuite) and merged.run.error is None
    ids = Counter(t.id for t in merged.run.tests)
    assert all(c == 1 for c in ids.values()), ids
    failed = [t for t in merged.run.tests if t.is_failure]
    assert len(failed) == 1 and "beta" in f"{failed[0].message} {failed[0].details}", failed
    assert ids.keys() >= {f"example.com/sharded/alpha::{n}" for n in PACKAGES["alpha"]}


# ---------------------------------------------------------------------------
# The real mvn, offline, over a two-module project

PARENT = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.example</groupId>
  <artifactId>shop-parent</artifactId>
  <version>1.0</version>
  <packaging>pom</packaging>
  <modules><module>cart</module><module>pay</module></modules>
  <!-- <includes> in a comment is not a setting -->
</project>
"""
SUREFIRE_INCLUDES = (
    "<configuration><includes><include>**/*Test.java</include><include>**/*Spec.java</include>"
    "</includes></configuration>"
)


def module_pom(name: str, surefire: str = "") -> str:
    source = (Path(__file__).parent / "runners" / "maven" / "pom.xml").read_text()
    pom = source.replace("<artifactId>shop-e2e</artifactId>", f"<artifactId>{name}</artifactId>")
    marker = "<artifactId>maven-surefire-plugin</artifactId>\n        <version>3.5.2</version>"
    assert marker in pom
    return pom.replace(marker, marker + surefire)


JAVA = """package com.example.{package};

import java.io.FileWriter;
import org.junit.jupiter.api.Test;

class {cls} {{
{methods}
}}
"""
METHOD = """    @Test
    void {name}() throws Exception {{
        try (FileWriter w = new FileWriter(System.getenv("RAN_FILE"), true)) {{
            w.write("{cls}.{name} " + System.getenv("GREENLOOP_SHARD_INDEX") + "\\n");
        }}
    }}
"""
CLASSES = {
    "cart": {"CartTest": ["adds", "removes"], "TestTotals": ["sums"], "CartTests": ["one"]},
    "pay": {"PayTest": ["card", "cash"], "RefundTestCase": ["full"], "CartSpec": ["spec"]},
}


def maven_project(folder: Path, *, spec_included: bool) -> None:
    (folder / "pom.xml").write_text(PARENT)
    for module, classes in CLASSES.items():
        surefire = SUREFIRE_INCLUDES if spec_included and module == "pay" else ""
        (folder / module).mkdir()
        (folder / module / "pom.xml").write_text(module_pom(module, surefire))
        src = folder / module / "src" / "test" / "java" / "com" / "example" / module
        src.mkdir(parents=True)
        for cls, methods in classes.items():
            body = "".join(METHOD.format(cls=cls, name=m) for m in methods)
            (src / f"{cls}.java").write_text(JAVA.format(package=module, cls=cls, methods=body))


def maven_pods(project: Path, folder: Path, count: int) -> list[Path]:
    command = ("mvn", "-o", "-B", "-q", "test", "{greenloop:select}")
    env = {**os.environ, "RAN_FILE": str(folder / "ran.txt")}
    reports = []
    for index in range(count):
        pod = folder / f"pod-{index}"
        shutil.copytree(project, pod / "project")
        junit = pod / "junit.xml"
        wrapper = listing_wrapper_command(command, "maven", str(junit))
        proc = run_index(wrapper, index, count, pod / "project", env)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        surefire = sorted((pod / "project").glob("*/target/surefire-reports/TEST-*.xml"))
        reports += surefire if surefire else [junit]
    return reports


def test_the_real_maven_suite_runs_every_class_once_across_the_indexes(
    installed: None, tmp_path: Path
) -> None:
    project = tmp_path / "src"
    project.mkdir()
    maven_project(project, spec_included=False)
    reports = maven_pods(project, tmp_path, 3)
    ran = (tmp_path / "ran.txt").read_text().splitlines()
    methods = Counter(line.split()[0] for line in ran)
    # CartSpec is not a test by Surefire's defaults: it runs nowhere, as unsharded.
    expected = {f"{c}.{m}" for cs in CLASSES.values() for c, ms in cs.items() for m in ms}
    assert methods == Counter(expected - {"CartSpec.spec"})
    assert len({line.split()[1] for line in ran}) == 3  # split: every index ran some
    ids = Counter(i for r in reports if r.name != "junit.xml" for i in junit_ids(r))
    assert all(c == 1 for c in ids.values()) and len(ids) == len(expected) - 1


def test_a_pom_that_sets_surefire_s_includes_runs_the_whole_suite_in_index_0(
    installed: None, tmp_path: Path
) -> None:
    project = tmp_path / "src"
    project.mkdir()
    maven_project(project, spec_included=True)
    reports = maven_pods(project, tmp_path, 2)
    ran = (tmp_path / "ran.txt").read_text().splitlines()
    assert {line.split()[1] for line in ran} == {"0"}
    assert "CartSpec.spec 0" in ran  # the class the listing cannot see ran, once
    assert len(ran) == len(set(ran)) == 7  # pay's own includes leave out RefundTestCase
    idle = [r for r in reports if r.name == "junit.xml"]
    assert len(idle) == 1
    assert "./pay/pom.xml sets Surefire's test, includes or their files" in note_of(idle[0])
