"""Counting the work a piece of code does, for tests that pin how work grows with input
(never timing asserts: a count does not depend on the machine)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import greenloop.core

CORE = str(Path(greenloop.core.__file__).parent) + "/"


@contextmanager
def counting_lines(prefix: str = CORE) -> Iterator[list[int]]:
    """Counts the line events of the frames whose file starts with ``prefix`` (greenloop's
    core by default); generators and comprehensions included: each iteration of a loop
    is a line event. The count is ``[0]`` of the list it yields."""
    count = [0]

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            count[0] += 1
        return local

    def call(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.startswith(prefix) else None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        yield count
    finally:
        sys.settrace(previous)


def lines_of(step: Callable[[], object], prefix: str = CORE) -> int:
    """How many line events ``step()`` runs in the files under ``prefix``."""
    with counting_lines(prefix) as count:
        step()
    return count[0]
