"""The priority names a test may carry (``P1`` highest .. ``P9``; ``P5`` when none is
given). Their own module, which ``model`` re-exports, so the pytest plugin (loaded by
every pytest session of a suite image) reads them without the spec's model."""

from __future__ import annotations

__all__ = ["DEFAULT_PRIORITY", "PRIORITIES"]

PRIORITIES = tuple(f"P{n}" for n in range(1, 10))
DEFAULT_PRIORITY = "P5"
