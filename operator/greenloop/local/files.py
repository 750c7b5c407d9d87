"""Opening files that someone else wrote: only regular files, never blocking, size-capped.

A FIFO where a JUnit report should be blocks ``open()`` until a writer appears (forever,
once the suite has exited); ``/dev/zero`` never ends; a directory or a device is not a
report. Every file greenloop reads from a suite or a user goes through ``open_regular``,
which the CLI (``junit``, ``validate``) and the local shell (``run``) share.
"""

from __future__ import annotations

import io
import os
import stat
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "JUNIT_MAX_BYTES",
    "SPEC_MAX_BYTES",
    "FileRefused",
    "open_regular",
    "read_regular",
]

# The reader streams, so memory does not grow with the file; the cap bounds time.
# 1M testcases of the bench's shape are ~370 MB.
JUNIT_MAX_BYTES = 1 << 30
# A spec is read whole and parsed as YAML; a Kubernetes object is at most ~1.5 MiB.
SPEC_MAX_BYTES = 4 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(Exception):
    """The path is missing, unreadable, not a regular file, or too large. ``str()`` is
    ``<path>: <reason>``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


def open_regular(path: str | os.PathLike[str], max_bytes: int) -> BinaryIO:
    """Open a regular file for reading without ever blocking; refuse anything else, or a
    file larger than ``max_bytes``. The returned stream also stops at ``max_bytes``, in
    case the file grows while it is read."""
    name = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise FileRefused(name, "no such file") from None
    except IsADirectoryError:
        raise FileRefused(name, "is a directory, not a file") from None
    except OSError as err:
        raise FileRefused(name, f"cannot read: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((what for test, what in _KINDS if test(info.st_mode)), "not a file")
            raise FileRefused(name, f"is {kind}, not a regular file; greenloop reads only files")
        if info.st_size > max_bytes:
            raise FileRefused(
                name,
                f"is {_size(info.st_size)}, larger than greenloop reads ({_size(max_bytes)})",
            )
        os.set_blocking(fd, True)
        raw = io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise
    return io.BufferedReader(_Capped(raw, name, max_bytes))


def read_regular(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    with open_regular(path, max_bytes) as stream:
        return stream.read()


class _Capped(io.RawIOBase):
    """A read-only stream over a file that refuses to go past ``max_bytes``."""

    def __init__(self, raw: io.FileIO, name: str, max_bytes: int) -> None:
        self._raw = raw
        self.name = name
        self._left = max_bytes
        self._max = max_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._left <= 0:
            # Grown past the cap while being read: an error, never a silent truncation.
            if self._raw.read(1):
                raise FileRefused(self.name, f"grew past {_size(self._max)} while being read")
            return 0
        view = memoryview(buffer)[: self._left]
        n = self._raw.readinto(view) or 0
        self._left -= n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()
