"""The code holds its own rules: a pure core, ruff-clean, `mypy --strict`-clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold_core_layers_and_independent_shells() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 kept, 0 broken" in proc.stdout


def test_junit_and_validate_start_without_http_or_kubernetes_libraries() -> None:
    """`greenloop junit` and `validate` must start fast: they never import httpx or kopf."""
    code = (
        "import sys; from greenloop import cli; from greenloop.core import junit, classify, spec; "
        "cli.build_parser(); "
        "print(','.join(m for m in ('httpx', 'kopf', 'kubernetes') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_ruff_finds_nothing() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    paths = ["operator", "tests", "bench", "examples", "tools"]
    check = subprocess.run(
        [str(ruff), "check", "--no-cache", *paths], cwd=REPO, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [str(ruff), "format", "--check", "--no-cache", *paths],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout


# mypy with a cold cache on a loaded 2-core machine takes over two minutes: the test's own
# limit matches the subprocess's, not the suite's default of 120 s.
@pytest.mark.timeout(330)
def test_the_package_type_checks_strictly() -> None:
    mypy = Path(sys.executable).parent / "mypy"
    proc = subprocess.run([str(mypy)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout
