"""Logs of the processes greenloop starts: capped on disk, read from the end.

A suite that prints a gigabyte must not fill the disk or greenloop's memory: a log
keeps its first ``HEAD_BYTES`` and last ``TAIL_BYTES`` with a line saying how much was
cut between them, and the "last output" evidence reads only the end of the file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from pathlib import Path
from typing import BinaryIO

__all__ = ["HEAD_BYTES", "TAIL_BYTES", "CappedLog", "cap_file", "tail"]

HEAD_BYTES = 4 << 20
TAIL_BYTES = 4 << 20
_TAIL_READ = 2000


def tail(log: Path, lines: int = 3) -> str:
    """The last non-empty lines of a log joined on one line, or "" if there is none.
    Reads only the last 2,000 bytes, whatever the size of the file."""
    try:
        with log.open("rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - _TAIL_READ, 0))
            text = f.read(_TAIL_READ).decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def _cut_note(cut: int) -> bytes:
    return (
        f"\n[greenloop: {cut} bytes of output cut here; the log keeps the first "
        f"{HEAD_BYTES >> 20} MiB and the last {TAIL_BYTES >> 20} MiB]\n"
    ).encode()


class CappedLog:
    """Copies what a process writes to a pipe into a file, head and tail only. The
    copying runs in a thread from ``start()`` until the pipe closes (``finish()``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: BinaryIO = path.open("wb")
        self._read_fd, self.write_fd = os.pipe()
        os.set_inheritable(self.write_fd, True)
        self._written = 0
        self._tail = bytearray()
        self._cut = 0
        self._done = False
        self._thread = threading.Thread(target=self._copy, name=f"log {path.name}", daemon=True)

    def start(self) -> None:
        """Call once the process holds the write end: ours is closed here, so the pipe
        ends when the process (and its children) do."""
        os.close(self.write_fd)
        self._thread.start()

    def _copy(self) -> None:
        with (
            contextlib.suppress(OSError, ValueError),
            open(self._read_fd, "rb", buffering=0) as pipe,
        ):
            while (chunk := pipe.read(1 << 16)) and not self._done:
                room = HEAD_BYTES - self._written
                if room > 0:
                    self._out.write(chunk[:room])
                    self._written += min(room, len(chunk))
                    chunk = chunk[room:]
                if chunk:
                    self._tail += chunk
                    if len(self._tail) > 2 * TAIL_BYTES:
                        drop = len(self._tail) - TAIL_BYTES
                        self._cut += drop
                        del self._tail[:drop]

    def finish(self, timeout: float = 5.0) -> None:
        """Wait for the pipe to end (everything holding it was stopped), then write the
        tail. A pipe still held after ``timeout`` is abandoned, never waited on forever."""
        self._thread.join(timeout)
        self._done = True
        tail = bytes(self._tail)
        if len(tail) > TAIL_BYTES:
            self._cut += len(tail) - TAIL_BYTES
            tail = tail[-TAIL_BYTES:]
        if self._cut:
            self._out.write(_cut_note(self._cut))
        self._out.write(tail)
        self._out.close()

    def abandon(self) -> None:
        """The process never started: close both ends."""
        with contextlib.suppress(OSError):
            os.close(self.write_fd)
        with contextlib.suppress(OSError):
            os.close(self._read_fd)
        self._out.close()


def cap_file(path: Path) -> None:
    """Cap a log that was written directly (a redeploy command's, which may leave a
    service holding its output): keep the head and tail, say what was cut."""
    try:
        size = path.stat().st_size
    except OSError:
        return
    if size <= HEAD_BYTES + TAIL_BYTES:
        return
    capped = path.with_name(path.name + ".capped")
    with path.open("rb") as src, capped.open("wb") as dst:
        shutil.copyfileobj(_Limited(src, HEAD_BYTES), dst)
        dst.write(_cut_note(size - HEAD_BYTES - TAIL_BYTES))
        src.seek(size - TAIL_BYTES)
        shutil.copyfileobj(src, dst)
    os.replace(capped, path)


class _Limited:
    def __init__(self, stream: BinaryIO, left: int) -> None:
        self._stream = stream
        self._left = left

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._stream.read(n)
        self._left -= len(data)
        return data
