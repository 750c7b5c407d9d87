"""`greenloop junit` on reports from other runners, as a user reads them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli import greenloop

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "junit"


def test_junit_json_gives_the_total_and_a_go_parent_depends_on_its_subtest(
    tmp_path: Path,
) -> None:
    proc = greenloop("junit", str(FIXTURES / "gotestsum.xml"), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["total"] == 4
    assert summary["total"] == sum(summary["outcomes"].values())
    parent = next(f for f in summary["failing"] if f["id"].endswith("::TestOrders"))
    assert parent["class"] == "Dependent"
    assert parent["rootCause"] == "github.com/acme/shop/e2e::TestOrders/create"
