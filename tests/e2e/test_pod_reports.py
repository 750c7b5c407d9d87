"""Surefire's reports reach the upload in operator mode (core/pod_reports.py): the REAL
mvn, offline, runs the exact command a Job's suite container carries (the JUnit path
moved to a temporary folder), one working copy per pod; the file the results sidecar
uploads parses and holds every test, and a report shipped in ``target/`` before the run
(the fresh-reports rule) is not in it."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from greenloop.core.junit import parse_junit
from greenloop.core.model import Suite
from greenloop.core.pod_command import SHELL
from greenloop.core.shards import Shard
from greenloop.k8s.jobs import JUNIT_PATH
from tests.e2e.test_pod_listing import CLASSES, maven_project, run_index
from tests.e2e.test_runners import installed
from tests.support import pod_commands

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(SHELL).exists(), reason=f"no {SHELL}"),
]
__all__ = ["installed"]  # the fixture, for pytest

COMMAND = ("mvn", "-o", "-B", "-q", "test", "{greenloop:select}")
OLD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="com.example.cart.OldTest" '
    'tests="1"><testcase classname="com.example.cart.OldTest" name="stale"/></testsuite>\n'
)


def container_command(shards: int) -> list[str]:
    suite = Suite(name="e2e", command=COMMAND, image="e2e:1", runner="maven", shards=shards)
    return pod_commands.container_command(
        suite, tuple(Shard(i, shards) for i in range(shards)) if shards > 1 else ()
    )


def pods(tmp_path: Path, shards: int) -> list[Path]:
    project = tmp_path / "src"
    project.mkdir()
    maven_project(project, spec_included=False)
    old = project / "cart" / "target" / "surefire-reports"
    old.mkdir(parents=True)
    (old / "TEST-com.example.cart.OldTest.xml").write_text(OLD)  # shipped in the image
    reports = []
    for index in range(shards):
        pod = tmp_path / f"pod-{index}"
        shutil.copytree(project, pod / "project")
        (pod / "results").mkdir()
        junit = pod / "results" / "junit.xml"
        command = tuple(a.replace(JUNIT_PATH, str(junit)) for a in container_command(shards))
        env = {
            **os.environ,
            "RAN_FILE": str(tmp_path / "ran.txt"),
            "GREENLOOP_JUNIT_XML": str(junit),
        }
        proc = run_index(command, index, shards, pod / "project", env)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        assert junit.is_file(), proc.stderr[-3000:]
        reports.append(junit)
    return reports


EXPECTED = {
    f"com.example.{m}.{c}::{n}"
    for m, cs in CLASSES.items()
    for c, ns in cs.items()
    for n in ns
    if c != "CartSpec"  # not a test by Surefire's default includes
}


@pytest.mark.parametrize("shards", [1, 2])
def test_the_uploaded_file_holds_every_surefire_report_of_the_run_and_no_old_one(
    installed: None, tmp_path: Path, shards: int
) -> None:
    reports = pods(tmp_path, shards)
    ids: Counter[str] = Counter()
    for junit in reports:
        ids.update(t.id for t in parse_junit(junit.read_bytes(), name=junit.name).tests)
    assert set(ids) == EXPECTED and all(c == 1 for c in ids.values()), ids
    assert not any("OldTest" in r.read_text() for r in reports)
