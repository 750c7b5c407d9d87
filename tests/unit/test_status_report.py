"""Status (docs/design.md §2) and the Markdown report, as a user reads them after a round."""

from __future__ import annotations

import re

import pytest

from greenloop.core import spec
from greenloop.core.engine import State
from greenloop.core.model import StagingValidation
from greenloop.core.report import render
from greenloop.core.schema import validate
from greenloop.core.status import build_status, conditions, timestamp
from tests.unit.scenario import HTTP_403, HTTP_503, bad, dep_skip, make_spec, ok, play

DEMO_LIKE = [
    {
        "critical": [ok("c1", priority="P1"), bad("c2", HTTP_503, priority="P1")],
        "extended": [ok("e1"), dep_skip("e2", "c2")],
    },
    {"critical": [ok("c1"), ok("c2", priority="P1")], "extended": [ok("e1"), ok("e2")]},
]


def converged() -> tuple[StagingValidation, State]:
    spec = make_spec(("critical", "P1"), ("extended", "P5"), expected=4)
    obj = StagingValidation(name="checkout", namespace="staging", generation=3, spec=spec)
    return obj, play(spec, DEMO_LIKE).state


def stalled_on_auth() -> tuple[StagingValidation, State]:
    spec = make_spec(("critical", "P1"), ("extended", "P5"), expected=4)
    obj = StagingValidation(name="auth", spec=spec)
    script = [{"critical": [ok("c1"), bad("c2", HTTP_403)], "extended": [ok("e1"), ok("e2")]}]
    return obj, play(spec, script).state


def test_status_of_a_converged_round() -> None:
    obj, state = converged()
    status = build_status(obj, state, now=2000.0)
    assert status["observedGeneration"] == 3
    assert status["phase"] == "Passed"
    assert status["iteration"] == 2
    assert status["summary"] == {
        "expected": 4,
        "total": 4,
        "passed": 4,
        "failed": 0,
        "skipped": 0,
        "notRun": 0,
        "passRate": "100.0%",
    }
    assert status["priorities"] == [
        {"priority": "P1", "passed": 2, "failed": 0, "total": 2},
        {"priority": "P5", "passed": 2, "failed": 0, "total": 2},
    ]
    assert status["failingTests"] == []
    assert [(h["iteration"], h["action"]) for h in status["history"]] == [
        (1, "Redeploy"),
        (2, "Done"),
    ]
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Ready"]["status"] == "True"
    assert by_type["Reconciling"]["status"] == "False"
    assert by_type["Stalled"]["status"] == "False"
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_failing_tests_carry_class_evidence_and_root_cause() -> None:
    spec = make_spec(("critical", "P1"), ("extended", "P5"), max_iterations=1)
    obj = StagingValidation(name="x", spec=spec)
    state = play(spec, DEMO_LIKE[:1]).state
    failing = build_status(obj, state, now=0.0)["failingTests"]
    assert [(f["id"], f["class"], f["rootCause"]) for f in failing] == [
        ("c2", "ServiceUnavailable", None),
        ("e2", "Dependent", "c2"),
    ]
    assert "503" in failing[0]["evidence"]


def test_failing_tests_are_capped_at_50_in_status() -> None:
    spec = make_spec(("critical", "P1"), max_iterations=1)
    obj = StagingValidation(name="x", spec=spec)
    state = play(spec, [{"critical": [bad(f"t{i:03}", HTTP_503) for i in range(80)]}]).state
    status = build_status(obj, state, now=0.0)
    assert len(status["failingTests"]) == 50
    assert status["summary"]["failed"] == 80


@pytest.mark.parametrize(
    ("previous_status", "moved"),
    [("False", True), ("True", False)],
)
def test_last_transition_time_moves_only_when_status_changes(
    previous_status: str, moved: bool
) -> None:
    _, state = converged()
    before = [{"type": "Ready", "status": previous_status, "lastTransitionTime": "then"}]
    ready = next(c for c in conditions(state, 1, 5000.0, before) if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == (timestamp(5000.0) if moved else "then")


def test_report_of_a_converged_round_explains_what_happened() -> None:
    obj, state = converged()
    text = render(obj, state, now=1010.0)
    assert text.startswith("# greenloop report: checkout")
    assert "**Passed** after 2 iterations and 1 redeploy" in text
    assert "4/4 (100.0%)" in text
    assert "| P1 | 2 | 0 | 2 | ok |" in text
    # The why-chain for the resolved failure: test -> class -> evidence -> what fixed it.
    assert "`c2` failed → **ServiceUnavailable**" in text
    assert "redeployed after iteration 1 → passed in iteration 2" in text
    assert "`e2` failed → **Dependent**" in text  # no depends_on recorded: told on its own
    assert "Nothing: the goal is met." in text


def test_report_of_a_stalled_round_says_what_a_person_must_do() -> None:
    obj, state = stalled_on_auth()
    text = render(obj, state, now=1010.0)
    assert "**Stalled (AuthError)**" in text
    assert "### AuthError (1)" in text
    assert "403 Forbidden" in text
    assert "still failing after 2 runs" in text
    assert "Check the credentials" in text
    assert "0 redeploys" in text


# Test ids and evidence come from the suites' XML: anything may be in them (issue 8).
HOSTILE_IDS = [
    "t::a|b",  # would split the table cell
    "t::line\nbreak",  # would end the table row
    "t::`tick`",  # would end the code span early
    "t::<img src=x onerror=alert(1)>",  # raw HTML where the report is rendered
    "t::x\n**Passed** after 1 iteration",  # a forged line (&#10; in the XML)
]


def hostile_report() -> str:
    spec = make_spec(("critical", "P1"), expected=len(HOSTILE_IDS), max_iterations=1)
    obj = StagingValidation(name="hostile", spec=spec)
    results = [bad(i, f"<script>x</script> | {i}") for i in HOSTILE_IDS]
    return render(obj, play(spec, [{"critical": results}]).state, now=1010.0)


def test_hostile_test_ids_keep_the_failing_tests_table_whole() -> None:
    text = hostile_report()
    lines = text.splitlines()
    start = lines.index("| Test | Suite | Priority | Evidence | Root cause |")
    rows = lines[start + 2 : start + 2 + len(HOSTILE_IDS)]
    for row in rows:
        # Six unescaped pipes: five cells on one line, whatever the id held.
        assert row.replace("\\|", "").count("|") == 6, row
    assert lines[start + 2 + len(HOSTILE_IDS)] == ""


def _outside_code_spans(line: str) -> str:
    """The line without its code spans (a run of backticks up to the same run)."""
    return re.sub(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)", "", line)


def test_hostile_test_ids_never_land_as_html_or_forge_a_line() -> None:
    text = hostile_report()
    for line in text.splitlines():
        assert "<" not in _outside_code_spans(line), line  # HTML only where it is shown
    assert not any(line.startswith("**Passed**") for line in text.splitlines())
    assert "`t::line\\nbreak`" in text  # the newline shown, not obeyed
    assert "`` t::`tick` ``" in text  # a longer fence keeps the backtick inside


def test_escaping_helpers_show_control_characters_and_keep_code_exact() -> None:
    from greenloop.core import markdown

    assert markdown.code("a`b") == "``a`b``"
    assert markdown.code("`x`") == "`` `x` ``"
    assert markdown.code("a|b", cell=True) == "`a\\|b`"
    assert markdown.code("\x1b[2J\u202e") == "`\\x1b[2J\\u202e`"
    assert markdown.text("<b>&</b>|x", cell=True) == "&lt;b>&amp;&lt;/b>\\|x"
    assert markdown.text("GET /health -> HTTP 200") == "GET /health -> HTTP 200"
    assert markdown.text("&lt;img onerror=x>") == "&amp;lt;img onerror=x>"
    assert markdown.code("") == "(no evidence)"


def status_errors(status: dict[str, object]) -> list[str]:
    schema = spec.spec_schema()["properties"]["status"]
    return [f"{e.path}: {e.message}" for e in validate(status, schema, "status")]


def test_eighty_flaky_tests_give_a_status_the_crd_accepts() -> None:
    # Before: flakyTests was not capped; the CRD's maxItems 50 refused the whole status.
    suites = (("critical", "P1"),)
    spec_ = make_spec(*suites, flake_retries=1)
    ids = [f"t{n:02d}" for n in range(80)]
    script = [
        {"critical": [bad(i, "AssertionError: flaked") for i in ids]},
        {"critical": [ok(i) for i in ids]},
    ]
    state = play(spec_, script).state
    assert len(state.flaky) == 80
    obj = StagingValidation(name="flaky", spec=spec_)
    status = build_status(obj, state, now=2000.0)
    assert status_errors(status) == []
    assert len(status["flakyTests"]) == 50
    assert "t79" in render(obj, state, 2000.0)  # the report keeps the full list


# -- issue 6: one meaning per column; the Why grouped by root cause and class ----------------


def test_the_iteration_table_counts_each_iteration_alone_and_names_the_cumulative() -> None:
    obj, state = converged()
    text = render(obj, state, now=1010.0)
    header = next(line for line in text.splitlines() if line.startswith("| # |"))
    assert "| Ran | Passed | Failed | Passing overall |" in header
    rows = [line for line in text.splitlines() if re.match(r"\| [12] \|", line)]
    cells = [[c.strip() for c in row.split("|")[1:-1]] for row in rows]
    # Iteration 1 ran 4: 2 passed, 1 failed, 1 Dependent skip (failing, not passed).
    assert cells[0][3:7] == ["4", "2", "2", "2"]
    # Iteration 2 reran the 2 failing tests: both passed; 4 pass overall.
    assert cells[1][3:7] == ["2", "2", "0", "4"]


def test_the_why_groups_tests_that_share_a_class_and_a_fate() -> None:
    spec = make_spec(("critical", "P1"), expected=14)
    down = [bad(f"t{i:02}", HTTP_503.replace("/ws", f"/item/{i}")) for i in range(14)]
    obj = StagingValidation(name="down", spec=spec)
    state = play(
        spec, [{"critical": down}, {"critical": [ok(f"t{i:02}") for i in range(14)]}]
    ).state
    text = render(obj, state, now=1010.0)
    why = text.split("## Why")[1].split("## ")[0]
    lines = [line for line in why.splitlines() if line.startswith("- ")]
    assert len(lines) == 1, why
    assert lines[0].startswith(
        "- 14 tests (`t00`, `t01`, `t02`, `t03`, `t04`, and 9 more) failed → **ServiceUnavailable**"
    )
    assert "redeployed after iteration 1 → passed in iteration 2" in lines[0]
