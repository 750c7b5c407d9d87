"""Reading a spec file: the one way every command (and every test or bench) loads one.

Only a regular file is read, at most ``SPEC_MAX_BYTES``, never blocking on a FIFO
(:mod:`greenloop.local.files`); the pure core parses and validates the bytes
(:func:`greenloop.core.spec.load_bytes`).
"""

from __future__ import annotations

import os

from greenloop.core.spec import FieldError, Loaded, Mode, SpecError, load_bytes
from greenloop.local.files import SPEC_MAX_BYTES, FileRefused, read_regular

__all__ = ["load_spec"]


def load_spec(path: str | os.PathLike[str], mode: Mode = "local") -> Loaded:
    """Every StagingValidation in the file at ``path``. Raises SpecError whose lines
    name the path as given."""
    source = os.fspath(path)
    try:
        data = read_regular(path, SPEC_MAX_BYTES)
    except FileRefused as err:
        raise SpecError(source, [FieldError("", err.reason)]) from None
    return load_bytes(data, source=source, mode=mode)
