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
from greenloop.core.shards import SHARD_COUNT_ENV, SHARD_INDEX_ENV
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
    stubs: Path, work: Path, listing: str, count: int, *, version: str = "go1.22.1", code: int = 0
) -> list[tuple[int, list[str] | None, str]]:
    """Each index's (exit code, the runner's argv or None when it ran nothing, stderr)."""
    (work / "listing.txt").write_text(listing)
    junit = work / "junit.xml"
    command = (sys.executable, str(stubs / "runner.py"), "-v", "{greenloop:select|./...}", "x")
    wrapper = listing_wrapper_command(command, "go", str(junit))
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "STUB_VERSION": f"go version {version} linux/amd64",
        "STUB_LISTING": str(work / "listing.txt"),
        "STUB_LIST_EXIT": str(code),
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
    assert owners == Counter(names)  # each exactly once


@pytest.mark.parametrize(
    ("listing", "version", "code", "why"),
    [
        ("", "go1.22.1", 0, "the test listing found no tests"),
        ("TestA\nok  \tm/a\t0.1s\n", "go1.19.3", 0, "has no -skip (Go 1.20+ needed)"),
        ("TestA\nok  \tm/a\t0.1s\n", "devel", 0, "go version did not say which Go"),
        ("FAIL\tm/b [build failed]\n", "go1.22.1", 1, "the test listing failed (exit 1;"),
        ("TestA\nFAIL\tm/b [setup failed]\nok  \tm/a\t0.1s\n", "go1.22.1", 0, "reported a failure"),
        ("TestA\nTestB\n", "go1.22.1", 0, "reported a failure"),  # no package line
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


def test_a_listing_stopped_by_a_signal_fails_its_index_without_results(
    stubs: Path, tmp_path: Path
) -> None:
    for code, argv, stderr in stub_pods(stubs, tmp_path, "TestA\n", 2, code=137):
        assert code == 125 and argv is None
        assert "stopped by a signal (exit 137)" in stderr
    assert not (tmp_path / "junit.xml").exists()


# ---------------------------------------------------------------------------
# The real go and gotestsum


def junit_ids(junit: Path) -> list[str]:
    return [t.id for t in parse_junit(junit.read_bytes(), name=junit.name).tests]


def go_pods(module: Path, folder: Path, count: int, *, broken: bool = False) -> list[Path]:
    """Each index in its own copy of the module; its JUnit report. ``broken``: the
    module does not build, so the index that runs go test fails."""
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
        assert (proc.returncode != 0) == (broken and index == 0), proc.stderr[-3000:]
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


def test_a_real_go_listing_that_fails_runs_the_whole_suite_in_index_0(
    installed: None, tmp_path: Path
) -> None:
    module = tmp_path / "src"
    module.mkdir()
    go_module(module)
    (module / "beta" / "broken_test.go").write_text("package beta\n\nfunc broken( {\n")
    reports = go_pods(module, tmp_path, 2, broken=True)
    ran = (tmp_path / "ran.txt").read_text().split()
    assert "alpha.TestA1" in ran and "gamma.TestTagged" in ran
    assert {line.split()[1] for line in (tmp_path / "ran.txt").read_text().splitlines()} == {"0"}
    assert junit_ids(reports[0])  # index 0's whole run (with beta's build failure)
    assert "not split in the pod: the test listing failed" in note_of(reports[1])


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
