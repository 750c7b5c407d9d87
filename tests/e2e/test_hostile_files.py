"""Whatever sits where a file should be, greenloop answers in bounded time and memory:
only regular files are read, opened without blocking, up to a size cap (issue 8, Severe 4)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.cli import greenloop
from tests.e2e.hostile import peak_rss_mib, stalled, suite_spec

pytestmark = pytest.mark.e2e


def fifo(folder: Path) -> Path:
    path = folder / "report.xml"
    os.mkfifo(path)
    return path


def directory(folder: Path) -> Path:
    path = folder / "report.xml"
    path.mkdir()
    return path


def dev_zero(folder: Path) -> Path:
    path = folder / "report.xml"
    path.symlink_to("/dev/zero")
    return path


def huge(folder: Path) -> Path:
    path = folder / "report.xml"
    with path.open("wb") as f:  # sparse: 5 GiB on paper, nothing on disk
        f.truncate(5 << 30)
    return path


NOT_FILES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("fifo", fifo, "is a FIFO (named pipe), not a regular file"),
    ("directory", directory, "is a directory"),
    ("dev-zero", dev_zero, "is a character device, not a regular file"),
    ("huge", huge, "is 5 GiB, larger than greenloop reads"),
]


@pytest.mark.parametrize("command", ["junit", "validate"])
@pytest.mark.parametrize(("kind", "make", "message"), NOT_FILES, ids=[n[0] for n in NOT_FILES])
def test_junit_and_validate_refuse_what_is_not_a_regular_file(
    tmp_path: Path, command: str, kind: str, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)
    proc = greenloop(command, path.name, cwd=tmp_path, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert f"report.xml: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_dev_zero_stays_small(tmp_path: Path) -> None:
    dev_zero(tmp_path)
    # Before: 4.7 GB and growing. A bound generous enough for any machine, but finite.
    assert peak_rss_mib("validate", "report.xml", cwd=tmp_path) < 200


@pytest.mark.parametrize(
    ("kind", "script", "message"),
    [
        ("fifo", "os.mkfifo(xml)", "is a FIFO (named pipe), not a regular file"),
        ("dev-zero", "os.symlink('/dev/zero', xml)", "is a character device"),
        ("directory", "os.mkdir(xml)", "is a directory"),
    ],
)
def test_run_refuses_a_junit_path_that_is_not_a_file(
    tmp_path: Path, kind: str, script: str, message: str
) -> None:
    suite_spec(
        tmp_path, "notfile", f"import os\nxml = os.environ['GREENLOOP_JUNIT_XML']\n{script}\n"
    )
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1, proc.stderr
    condition = stalled(proc.stdout)
    assert condition["reason"] == "RunnerError"
    assert message in condition["message"]
    assert (tmp_path / ".greenloop").is_dir()
    assert list((tmp_path / ".greenloop").rglob("report.md"))
    assert list((tmp_path / ".greenloop").rglob("status.json"))
