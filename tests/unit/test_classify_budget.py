"""Compiled classification rules are bounded in memory (docs/design.md §1,
"Classification rules"): RE2's ``max_mem`` per pattern, charged to its rule set; a set
over an object's budget is refused naming the limit (``Stalled``/``RulesTooLarge`` in the
operator); the sets kept compiled are evicted by bytes, least recently used first."""

from __future__ import annotations

import pytest

from greenloop.core import classify, regex
from greenloop.core.classify import (
    OBJECT_RULES_BYTES,
    RULE_MAX_MEM,
    RULE_MEM_STEPS,
    CompiledRules,
    RuleError,
    _RuleSets,
    compile_rules,
    rule_errors,
)
from greenloop.core.model import FailureClass, Rule
from greenloop.core.spec import SpecError, from_object

SMALL, LARGE = RULE_MEM_STEPS
#: Compiled programs, case folded: ~2.6 MiB (over RULE_MAX_MEM), ~0.6 MiB (the last step).
OVER, STEP2 = r"\pL{150}", r"\pL{30}"


def rule(pattern: str) -> Rule:
    return Rule(pattern=pattern, failure_class=FailureClass.SERVER_ERROR)


@pytest.mark.parametrize(
    "pattern, charged",
    [("connection refused", SMALL), (r"[a-z]+ error: [a-z ]{5,40} at \d+", SMALL), (STEP2, LARGE)],
)
def test_a_rule_is_charged_the_smallest_max_mem_it_compiles_in(pattern: str, charged: int) -> None:
    compiled = compile_rules([rule(pattern)])
    assert compiled.bytes == charged
    assert compiled.rules[0][0].search("x connection refused") or pattern != "connection refused"


def test_a_rule_over_the_largest_max_mem_is_refused_naming_it() -> None:
    with pytest.raises(RuleError) as err:
        compile_rules([rule("ok"), rule(OVER)])
    assert err.value.too_large and err.value.index == 1
    assert str(err.value).startswith(
        r"classification[1]: pattern '\\pL{150}' needs more memory compiled than a rule may"
        " take (RE2 max_mem 1 MiB)"
    )


def test_a_set_over_the_objects_budget_is_refused_and_compiling_stops_there() -> None:
    rules = [rule(f"{STEP2}|r{i}") for i in range(100)]
    (error,) = rule_errors(rules)
    fits = OBJECT_RULES_BYTES // RULE_MAX_MEM
    assert (error.index, error.too_large) == (None, True)
    assert str(error) == (
        f"the first {fits + 1} of 100 rules take {fits + 1} MiB compiled (RE2 max_mem, summed);"
        " an object's rules may take at most 32 MiB: use fewer or simpler patterns"
    )


def test_the_crds_100_plain_rules_fit_an_object() -> None:
    compiled = compile_rules([rule(f"error code E{i:03d}: .* failed") for i in range(100)])
    assert compiled.bytes == 100 * SMALL <= OBJECT_RULES_BYTES


def test_rule_sets_are_evicted_by_bytes_least_recently_used_first() -> None:
    sets = _RuleSets(limit=2 * LARGE)
    a, b, c = ((rule(f"{STEP2}|{n}"),) for n in "abc")
    first = sets.get(a)
    assert isinstance(first, CompiledRules) and first.bytes == LARGE
    second = sets.get(b)
    assert sets.get(a) is first  # kept, and now the most recent
    sets.get(c)  # over the limit: b, the least recently used, goes
    assert sets.held == 2 * LARGE
    assert sets.get(a) is first
    assert sets.get(b) is not second  # compiled again


def test_a_spec_is_checked_through_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real = classify._compile_rule

    def counting(r: Rule) -> tuple[regex.Pattern, FailureClass, int]:
        compiled.append(r.pattern)
        return real(r)

    monkeypatch.setattr(classify, "_compile_rule", counting)
    raw = spec_object([{"pattern": f"timeout {i}", "class": "Timeout"} for i in range(100)])
    for _ in range(3):  # a tick each
        from_object(raw, mode="operator")
    assert len(compiled) == 100


def spec_object(rules: list[dict[str, str]]) -> dict[str, object]:
    return {
        "apiVersion": "greenloop.dev/v1alpha1",
        "kind": "StagingValidation",
        "metadata": {"name": "w", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {
            "suites": [{"name": "core", "command": ["pytest"], "image": "e2e:dev"}],
            "classification": rules,
        },
    }


FIRST = "spec.classification[0].pattern"


@pytest.mark.parametrize(
    "rules, reason, path",
    [
        ([{"pattern": OVER, "class": "Timeout"}], "RulesTooLarge", FIRST),
        ([{"pattern": f"{STEP2}|{i}", "class": "Timeout"} for i in range(40)], "RulesTooLarge",
         "spec.classification"),
        ([{"pattern": "(a", "class": "Timeout"}], "InvalidSpec", FIRST),
    ],
)  # fmt: skip
def test_a_spec_whose_rules_are_too_large_is_refused_as_rules_too_large(
    rules: list[dict[str, str]], reason: str, path: str
) -> None:
    with pytest.raises(SpecError) as err:
        from_object(spec_object(rules), mode="operator")
    assert err.value.reason == reason
    assert [e.path for e in err.value.errors] == [path]


def test_patterns_are_not_kept_by_google_re2s_own_cache() -> None:
    """google-re2's re2.compile keeps 128 patterns, up to 8 MiB each: compiled here, a
    pattern lives as long as its rule set does."""
    assert regex.compile("abc") is not regex.compile("abc")
    with pytest.raises(regex.RegexTooLarge):
        regex.compile(OVER, max_mem=RULE_MAX_MEM)
