"""The iteration record (``engine.history``): notes and what the target showed are
kept per iteration, bounded, with a count of what was cut."""

from __future__ import annotations

import pytest

from greenloop.core import engine
from greenloop.core.engine import Phase, State, SuiteFinished, SuiteRun
from tests.unit.scenario import make_spec, ok


def test_what_the_target_showed_is_kept_per_iteration_with_a_count_of_the_rest() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"))
    decision = engine.begin(spec, 1000.0)
    for suite in ("api", "web"):
        shown = tuple(f"{suite}: health 503 ({n})" for n in range(20))
        run = SuiteRun(suite, tests=(ok(suite + "1"),))
        event = SuiteFinished(decision.state.action_id, run, shown)
        decision = engine.on_suite(spec, decision.state, event, 1001.0)
    observed = decision.state.history[0].observed
    assert len(observed) == engine.MAX_NOTES
    assert observed[: engine.MAX_NOTES - 1] == tuple(
        f"api: health 503 ({n})" for n in range(engine.MAX_NOTES - 1)
    )
    assert observed[-1] == f"… and {40 - (engine.MAX_NOTES - 1)} more"


@pytest.mark.parametrize(
    ("shown", "kept"),
    [
        (3, ("x" * engine.MAX_NOTE,) * 3),
        # Exactly full: nothing to cut, so no count line either.
        (engine.MAX_NOTES, ("x" * engine.MAX_NOTE,) * engine.MAX_NOTES),
        (
            engine.MAX_NOTES + 1,
            ("x" * engine.MAX_NOTE,) * (engine.MAX_NOTES - 1) + ("… and 2 more",),
        ),
    ],
    ids=["a few", "exactly full", "one too many"],
)
def test_what_the_target_showed_is_kept_whole_up_to_the_limit_each_line_clipped(
    shown: int, kept: tuple[str, ...]
) -> None:
    spec = make_spec(("api", "P1"))
    decision = engine.begin(spec, 1000.0)
    run = SuiteRun("api", tests=(ok("a1"),))
    lines = ("x" * (engine.MAX_NOTE + 100),) * shown
    clipped = "x" * (engine.MAX_NOTE - 1) + "…"
    event = SuiteFinished(decision.state.action_id, run, lines)
    observed = engine.on_suite(spec, decision.state, event, 1001.0).state.history[0].observed
    assert observed == tuple(clipped if k.startswith("x") else k for k in kept)


@pytest.mark.parametrize(
    ("items", "bounded"),
    [
        ((), ()),
        (("a",) * 12, ("a",) * 12),
        (("a",) * 13, ("a",) * 11 + ("… and 2 more",)),
        (("a",) * 11 + ("… and 5 more",), ("a",) * 11 + ("… and 5 more",)),
        (("a",) * 11 + ("… and 5 more", "b"), ("a",) * 11 + ("… and 6 more",)),
        (("a", "… and 1 more", "b"), ("a", "b", "… and 1 more")),
        (("… and 3 more",), ("… and 3 more",)),
        (("x" * 500,), ("x" * (engine.MAX_NOTE - 1) + "…",)),
        (("x" * engine.MAX_NOTE,), ("x" * engine.MAX_NOTE,)),
    ],
    ids=[
        "nothing",
        "exactly full",
        "one too many",
        "already bounded",
        "one more after a cut",
        "a count before notes goes last",
        "only a count",
        "each note clipped",
        "a note at the limit kept whole",
    ],
)
def test_notes_are_bounded_counting_what_an_earlier_cut_dropped(
    items: tuple[str, ...], bounded: tuple[str, ...]
) -> None:
    assert engine._bounded(items) == bounded
    assert engine._bounded(bounded) == bounded, "bounding twice changes nothing"


def test_an_error_with_no_iteration_on_record_still_gets_one_with_a_whole_note() -> None:
    bare = State(phase=Phase.TESTING, iteration=2, started_at=50.0)
    ended = engine.internal_error(bare, 60.0, "y" * 300).state
    (record,) = ended.history
    assert (record.iteration, record.started, record.finished) == (2, 50.0, 60.0)
    assert record.detail == "y" * 300, "a note is MAX_NOTE long, not one evidence line"
    never = engine.internal_error(State(phase=Phase.TESTING, iteration=1), 60.0, "z").state
    assert never.history[0].started == 0.0
