"""Reading the end of a log file, for evidence in messages."""

from __future__ import annotations

from pathlib import Path


def tail(log: Path, lines: int = 3) -> str:
    """The last non-empty lines of a log joined on one line, or "" if there is none."""
    try:
        text = log.read_bytes()[-2000:].decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())
