"""Fixtures for e2e tests: private copies of the examples with their app running."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli import copy_example, free_port


def ctl(script: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEMO_STATE_DIR"}
    subprocess.run(
        [sys.executable, str(script), *args], check=True, capture_output=True, env=env, timeout=60
    )


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Path]:
    """A private copy of the demo on a free port, app started fresh (first boot)."""
    port = str(free_port())
    folder = copy_example("demo", tmp_path, int(port), 18080)
    app = folder / "app" / "ctl.py"
    ctl(app, "reset", "--port", port)
    ctl(app, "start", "--port", port)
    try:
        yield folder
    finally:
        ctl(app, "stop", "--port", port)


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[Path]:
    port = str(free_port())
    copy_example("demo", tmp_path, int(port), 18080)  # auth runs ../demo/app
    folder = copy_example("auth", tmp_path, int(port), 18081)
    ctl(folder / "ctl.py", "reset", "--port", port)
    ctl(folder / "ctl.py", "start", "--port", port)
    try:
        yield folder
    finally:
        ctl(folder / "ctl.py", "stop", "--port", port)
