"""Under mutmut (make mutate), run a mutant's tests fastest first.

mutmut stops at the first failing test (-x) but keeps the collection order, so every
engine mutant paid for the slowest tests (the 5,000-test budget, the property test) before
the quick scenario that kills it. The durations are those mutmut measured for this copy.
Outside mutmut nothing changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    stats = Path("mutmut-stats.json")
    if "__mutmut_" not in mutant or not stats.is_file():
        return
    try:
        durations: dict[str, float] = json.loads(stats.read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


@pytest.fixture(autouse=True)
def _compiled_rules_are_compiled_here() -> None:
    """Each test compiles the user rules it uses: the engine's cache of compiled rules
    would otherwise hand a test (or a mutant, run in a fork of a warmed process) rules
    compiled by earlier code."""
    from greenloop.core import classify

    classify._SETS.clear()
