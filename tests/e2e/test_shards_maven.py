"""A sharded Maven suite in local mode (docs/design.md §4.1), on the REAL Maven and
Surefire: shards of one project would share its ``target/`` (Surefire's reports, whose
folder no property moves), so each would read the others' reports as its own and no
result would count. Local mode runs a Maven suite in one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.cli import greenloop
from tests.e2e.test_runners import installed, spec_for

pytestmark = pytest.mark.e2e
__all__ = ["installed"]  # the fixture, for pytest


def test_a_sharded_maven_suite_reruns_its_failures_and_passes(
    installed: None, tmp_path: Path
) -> None:
    spec = spec_for("maven", tmp_path)
    doc = json.loads(spec.read_text())
    doc["spec"]["suites"][0]["shards"] = 2
    doc["spec"]["policy"]["parallelism"] = 2
    spec.write_text(json.dumps(doc))
    out = tmp_path / "out"
    proc = greenloop("run", str(spec), "--out", str(out), "--json", cwd=tmp_path, timeout=600)
    status = json.loads(proc.stdout)["status"]
    assert status["phase"] == "Passed", proc.stderr[-3000:]
    assert "reported by a shard not given" not in proc.stderr
    assert "suite maven: runs in one process, not 2 shards" in proc.stderr
    # One process per iteration: its own files, no shard's.
    assert not list(out.glob("iteration-*/maven.shard-*"))
    assert (out / "iteration-2" / "maven.xml").is_file()
