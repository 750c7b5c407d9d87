"""The output folder of a local run: held by one run at a time, and cleaned of only what
greenloop itself wrote there.

Two runs sharing a folder corrupted each other (one's ``--json`` reported the other's
tests), and a run deleted every ``iteration-*`` folder and ``redeploy-*.log`` it found,
including ones it never wrote. Now a run holds an exclusive lock on the folder (a
second run says who holds it and exits 2), and the names it writes are listed in a
manifest as it writes them; the next run deletes only what the manifest lists.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
from pathlib import Path

__all__ = ["OutDir", "OutDirError", "default_out"]

LOCK = ".greenloop.lock"
MANIFEST = ".greenloop-manifest"
# What a manifest may name: greenloop's own names, directly in the folder.
_OWN = re.compile(r"(iteration-\d+|redeploy-\d+\.log|status\.json|report\.md)")


class OutDirError(Exception):
    """The folder cannot be used: busy, not a folder, or not writable. Says what to do."""


def default_out(namespace: str, name: str) -> Path:
    """``.greenloop/NAMESPACE/NAME``: the same name in two namespaces are two folders."""
    return Path(".greenloop") / namespace / name


class OutDir:
    """Held from ``claim()`` until ``release()`` (or the process ends: the lock is an
    ``flock`` on an open file, so a killed run never leaves it stuck)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._listed: set[str] = set()

    def claim(self, what: str) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise OutDirError(f"{self.path}: is a file, not a folder; choose a folder with --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise OutDirError(
                f"{self.path}: cannot use it as the output folder: {err.strerror or err}; "
                "choose another with --out"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another run"
            os.close(fd)
            raise OutDirError(
                f"{self.path}: in use by {holder}; wait for it to finish, or give this run "
                "its own folder with --out"
            ) from None
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"greenloop pid {os.getpid()} (started {started}, {what})\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def clean(self) -> None:
        """Delete what the previous run's manifest lists, nothing else; start a new one."""
        manifest = self.path / MANIFEST
        with contextlib.suppress(FileNotFoundError):
            for name in manifest.read_text(encoding="utf-8", errors="replace").splitlines():
                if not _OWN.fullmatch(name):
                    continue  # not a name greenloop writes: never delete it
                entry = self.path / name
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        entry.unlink()
        manifest.write_text("")
        self._listed.clear()

    def wrote(self, name: str) -> None:
        """Record a name in the manifest before it is written."""
        if name in self._listed:
            return
        self._listed.add(name)
        with (self.path / MANIFEST).open("a", encoding="utf-8") as f:
            f.write(name + "\n")
