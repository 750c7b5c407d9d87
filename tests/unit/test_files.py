"""open_regular: what the CLI and the local shell read suites' and users' files with."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from greenloop.local.files import FileRefused, open_regular, read_regular


def test_a_regular_file_reads_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_bytes(b"<testsuite/>")
    assert read_regular(path, 100) == b"<testsuite/>"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: os.mkfifo(p), "is a FIFO (named pipe), not a regular file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.symlink_to("/dev/null"), "is a character device, not a regular file"),
        (
            lambda p: p.write_bytes(b"x" * 101),
            "is 101 bytes, larger than greenloop reads (100 bytes)",
        ),
        (lambda p: None, "no such file"),
    ],
)
def test_anything_else_is_refused_with_what_it_is(
    tmp_path: Path, make: object, reason: str
) -> None:
    path = tmp_path / "a.xml"
    make(path)  # type: ignore[operator]
    with pytest.raises(FileRefused) as caught:
        read_regular(path, 100)
    assert str(caught.value).startswith(f"{path}: {reason}")


def test_a_file_that_grows_past_the_cap_while_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_bytes(b"x" * 50)
    with open_regular(path, 100) as stream:
        path.write_bytes(b"x" * 200)  # same inode, now larger
        with pytest.raises(FileRefused, match="grew past 100 bytes"):
            stream.read()
