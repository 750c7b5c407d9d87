"""Live progress on stderr: what runs, what it found, what greenloop waits for."""

from __future__ import annotations

import sys
from typing import TextIO

from greenloop.local.terminal import printable


class Progress:
    """Prints one line per event; on a terminal, a ticking status line while waiting."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = self.stream.isatty()
        self._ticking = False

    def line(self, text: str) -> None:
        if self.quiet:
            return
        self._clear()
        print(printable(text), file=self.stream, flush=True)

    def tick(self, text: str) -> None:
        if self.quiet or not self.live:
            return
        self.stream.write("\r\x1b[2K" + printable(text))
        self.stream.flush()
        self._ticking = True

    def _clear(self) -> None:
        if self._ticking:
            self.stream.write("\r\x1b[2K")
            self._ticking = False
