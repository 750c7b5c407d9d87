"""The pytest side of the runner contract, seen the way a suite author and greenloop see it:
the order tests run in, the skip messages, what GREENLOOP_SELECT runs, the JUnit XML."""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from greenloop.core.shards import COLLECTED_PROPERTY, collected, split_collected

pytest_plugins = ["pytester"]

# Block the installed entry point (if any) and load the module by name, so these runs
# behave the same whether or not greenloop is pip-installed.
PLUGIN = ("-p", "no:greenloop", "-p", "greenloop.pytest_plugin")

DEPENDENT = "greenloop: depends on {}, which did not pass"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREENLOOP_SELECT", raising=False)
    monkeypatch.delenv("GREENLOOP_JUNIT_XML", raising=False)
    monkeypatch.delenv("GREENLOOP_SHARD_INDEX", raising=False)
    monkeypatch.delenv("GREENLOOP_SHARD_COUNT", raising=False)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", *args)


def ran_in_order(result: pytest.RunResult) -> list[str]:
    """Test names in the order ``-v`` reported them."""
    return [
        m.group(1)
        for line in result.outlines
        if (m := re.match(r"\S+::(\S+) (PASSED|FAILED|SKIPPED|ERROR)", line))
    ]


def junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {f"{c.get('classname')}::{c.get('name')}": c for c in root.iter("testcase")}


def properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def write_select(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = pytester.path / "select.txt"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    monkeypatch.setenv("GREENLOOP_SELECT", str(path))


# ---------------------------------------------------------------------------
# Ordering


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            """
            import pytest
            def test_default(): pass
            @pytest.mark.priority("P3")
            def test_p3(): pass
            @pytest.mark.priority("P1")
            def test_p1_a(): pass
            @pytest.mark.priority("P9")
            def test_p9(): pass
            @pytest.mark.priority("P1")
            def test_p1_b(): pass
            """,
            ["test_p1_a", "test_p1_b", "test_p3", "test_default", "test_p9"],
            id="by-priority-stable-within-a-tier",
        ),
        pytest.param(
            """
            import pytest
            @pytest.mark.priority("P2")
            def test_other(): pass
            @pytest.mark.priority("P6")
            def test_login(): pass
            @pytest.mark.priority("P1")
            @pytest.mark.depends_on("test_login")
            def test_checkout(): pass
            """,
            ["test_login", "test_checkout", "test_other"],
            id="a-dependency-runs-before-its-more-critical-dependent",
        ),
        pytest.param(
            """
            import pytest
            pytestmark = pytest.mark.priority("P4")
            def test_module_level(): pass
            class TestTier:
                pytestmark = pytest.mark.priority("P2")
                def test_in_class(self): pass
                @pytest.mark.priority("P1")
                def test_own_marker_wins(self): pass
            """,
            ["test_own_marker_wins", "test_in_class", "test_module_level"],
            id="closest-marker-wins",
        ),
    ],
)
def test_tests_run_in_priority_order(
    pytester: pytest.Pytester, source: str, expected: list[str]
) -> None:
    pytester.makepyfile(test_order=textwrap.dedent(source))
    result = run(pytester, "-v")
    result.assert_outcomes(passed=len(expected))
    assert [name.split("::")[-1] for name in ran_in_order(result)] == expected
    result.stdout.fnmatch_lines(["greenloop: * tests; priority order P*"])


def test_plugin_is_inert_for_a_suite_without_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_b(): pass\ndef test_a(): pass\n")
    result = run(pytester, "-v")
    assert ran_in_order(result) == ["test_b", "test_a"]
    assert "greenloop:" not in result.stdout.str()


# ---------------------------------------------------------------------------
# Dependencies


def test_dependent_is_skipped_with_greenloop_message_when_dependency_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_chain="""
        import pytest
        @pytest.mark.priority("P1")
        def test_connect(): assert False, "HTTP 503"
        @pytest.mark.depends_on("test_connect")
        def test_send(): pass
        @pytest.mark.depends_on("test_send")
        def test_receive(): pass
        def test_unrelated(): pass
        """
    )
    xml = pytester.path / "out.xml"
    result = run(pytester, "-rs", f"--junitxml={xml}")
    result.assert_outcomes(failed=1, skipped=2, passed=1)
    cases = junit_cases(xml)
    skips = {
        name: case.find("skipped").get("message")  # type: ignore[union-attr]
        for name, case in cases.items()
        if case.find("skipped") is not None
    }
    # The skip points at the dependent test, not into the plugin.
    where = cases["test_chain::test_send"].findtext("skipped", "")
    assert where.startswith(f"{pytester.path / 'test_chain.py'}:"), where
    assert skips == {
        "test_chain::test_send": DEPENDENT.format("test_chain.py::test_connect"),
        # A skipped test did not pass either: the chain is reported link by link.
        "test_chain::test_receive": DEPENDENT.format("test_chain.py::test_send"),
    }


def test_dependent_runs_when_dependency_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ok="""
        import pytest
        @pytest.mark.depends_on("test_b")
        def test_a(): pass
        def test_b(): pass
        """
    )
    result = run(pytester, "-v")
    result.assert_outcomes(passed=2)
    assert ran_in_order(result) == ["test_b", "test_a"]


def test_dependent_is_not_skipped_when_dependency_is_deselected(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # greenloop reruns only the dependent when its dependency passed in an earlier
    # iteration; the dependency's absence must not count as a failure.
    pytester.makepyfile(
        test_rerun="""
        import pytest
        def test_dep(): assert False, "would fail if it ran"
        @pytest.mark.depends_on("test_dep")
        def test_dependent(): pass
        """
    )
    write_select(pytester, monkeypatch, "test_rerun.py::test_dependent\n")
    result = run(pytester)
    result.assert_outcomes(passed=1, deselected=1)

    monkeypatch.delenv("GREENLOOP_SELECT")
    run(pytester, "-k", "dependent").assert_outcomes(passed=1, deselected=1)


@pytest.mark.parametrize(
    ("name", "recorded", "skipped_for"),
    [
        ("test_base", "checks/test_b.py::test_base", None),
        ("test_a.py::test_root", "checks/test_a.py::test_root", None),
        ("checks/test_a.py::test_root", "checks/test_a.py::test_root", None),
        ("other/test_c.py::test_far", "checks/other/test_c.py::test_far", None),
        ("TestGroup::test_method", "checks/test_b.py::TestGroup::test_method", None),
        # A parametrized function stands for all its cases; the skip names the one
        # that failed.
        ("test_param", "checks/test_b.py::test_param", "checks/test_b.py::test_param[2]"),
        ("test_param[2]", "checks/test_b.py::test_param[2]", None),
    ],
)
def test_dependency_names_resolve_to_full_node_ids(
    pytester: pytest.Pytester, name: str, recorded: str, skipped_for: str | None
) -> None:
    failing = 'def {0}(): assert False, "down"\n'
    pytester.mkpydir("checks")
    pytester.mkpydir("checks/other")
    (pytester.path / "checks/test_a.py").write_text(failing.format("test_root"))
    (pytester.path / "checks/other/test_c.py").write_text(failing.format("test_far"))
    (pytester.path / "checks/test_b.py").write_text(
        textwrap.dedent(
            f"""
            import pytest
            {failing.format("test_base")}
            class TestGroup:
                def test_method(self): assert False
            @pytest.mark.parametrize("n", [1, 2])
            def test_param(n): assert n == 1
            @pytest.mark.priority("P9")
            @pytest.mark.depends_on({name!r})
            def test_dependent(): pass
            """
        )
    )
    xml = pytester.path / "out.xml"
    result = run(pytester, "checks", f"--junitxml={xml}")
    result.assert_outcomes(passed=1, failed=5, skipped=1)
    case = junit_cases(xml)["checks.test_b::test_dependent"]
    skipped = case.find("skipped")
    assert skipped is not None
    assert skipped.get("message") == DEPENDENT.format(skipped_for or recorded)
    assert properties(case)["greenloop.depends_on"] == recorded


def test_unknown_dependency_is_a_collection_error_naming_test_and_name(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_typo="""
        import pytest
        @pytest.mark.depends_on("test_conect", "test_real")
        def test_send(): pass
        def test_real(): pass
        """
    )
    xml = pytester.path / "out.xml"
    result = run(pytester, f"--junitxml={xml}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*greenloop: test_typo.py::test_send: depends_on names unknown test(s): 'test_conect'*"]
    )
    result.assert_outcomes(errors=1)
    error = junit_cases(xml)["test_typo::test_send"].find("error")
    assert error is not None
    assert "'test_conect'" in (error.text or "")


def test_dependency_cycle_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_cycle="""
        import pytest
        @pytest.mark.depends_on("test_b")
        def test_a(): pass
        @pytest.mark.depends_on("test_a")
        def test_b(): pass
        """
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*dependency cycle: test_cycle.py::test_a -> *test_b -> *test_a*"])


@pytest.mark.parametrize(
    ("marker", "shown"),
    [
        ('"P0"', "priority 'P0' is not one of P1..P9"),
        ('"P10"', "priority 'P10' is not one of P1..P9"),
        ('"high"', "priority 'high' is not one of P1..P9"),
        ('"P1", "P2"', "@pytest.mark.priority takes one level (P1..P9), got ['P1', 'P2']"),
        ("", "@pytest.mark.priority takes one level (P1..P9), got []"),
    ],
)
def test_bad_priority_is_an_error_naming_the_test(
    pytester: pytest.Pytester, marker: str, shown: str
) -> None:
    pytester.makepyfile(
        test_bad=f"""
        import pytest
        @pytest.mark.priority({marker})
        def test_x(): pass
        def test_fine(): pass
        """
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert f"greenloop: test_bad.py::test_x: {shown}" in result.stdout.str()
    # Nothing ran: a misconfigured suite stops before any test touches the target.
    assert "1 passed" not in result.stdout.str()


# ---------------------------------------------------------------------------
# GREENLOOP_SELECT


def test_select_runs_only_listed_tests_and_reports_the_rest_deselected(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_many="""
        import pytest
        def test_a(): pass
        def test_b(): pass
        @pytest.mark.priority("P1")
        def test_c(): pass
        @pytest.mark.parametrize("n", [1, 2])
        def test_d(n): pass
        """
    )
    write_select(
        pytester,
        monkeypatch,
        """
        # rerun after redeploy
        test_many.py::test_b

        test_many.py::test_c
        test_many.py::test_d[2]
        test_many.py::test_gone
        """,
    )
    result = run(pytester, "-v")
    result.assert_outcomes(passed=3, deselected=2)
    assert ran_in_order(result) == ["test_c", "test_b", "test_d[2]"]
    result.stdout.fnmatch_lines(
        [
            "greenloop: 3 of 5 tests selected by GREENLOOP_SELECT; priority order P1:1 P5:2",
            "greenloop: 1 selected id was not collected: test_many.py::test_gone",
        ]
    )
    assert result.ret == pytest.ExitCode.OK


def test_select_with_missing_file_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_one="def test_a(): pass\n")
    missing = pytester.path / "nope" / "select.txt"
    monkeypatch.setenv("GREENLOOP_SELECT", str(missing))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*greenloop: GREENLOOP_SELECT names {missing}, which does not exist*"]
    )


# ---------------------------------------------------------------------------
# GREENLOOP_JUNIT_XML


def test_junit_xml_is_written_with_greenloop_properties(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.mkpydir("checks")
    (pytester.path / "checks/test_props.py").write_text(
        textwrap.dedent(
            """
            import pytest
            @pytest.mark.priority("P2")
            def test_connect(): assert False, "HTTP 503"
            @pytest.mark.depends_on("test_connect", "test_plain")
            def test_send(): pass
            def test_plain(): pass
            """
        )
    )
    xml = pytester.path / "reports" / "suite.xml"
    monkeypatch.setenv("GREENLOOP_JUNIT_XML", str(xml))
    # -W error: the properties must not come with a warning (junit_family xunit2 default).
    result = run(pytester, "checks", "-W", "error")
    result.assert_outcomes(failed=1, skipped=1, passed=1)
    assert "warning" not in result.stdout.str().lower()

    cases = {properties(c)["greenloop.id"]: properties(c) for c in junit_cases(xml).values()}
    assert cases == {
        "checks/test_props.py::test_connect": {
            "greenloop.id": "checks/test_props.py::test_connect",
            "greenloop.priority": "P2",
        },
        "checks/test_props.py::test_plain": {
            "greenloop.id": "checks/test_props.py::test_plain",
            "greenloop.priority": "P5",
        },
        "checks/test_props.py::test_send": {
            "greenloop.id": "checks/test_props.py::test_send",
            "greenloop.priority": "P5",
            "greenloop.depends_on": (
                "checks/test_props.py::test_connect,checks/test_props.py::test_plain"
            ),
        },
    }


def test_recorded_ids_round_trip_through_select(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.mkpydir("suite")
    (pytester.path / "suite/test_rt.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "@pytest.mark.parametrize('x', ['a b', 'c'])\n"
        "def test_fail(x): assert x == 'c'\n"
    )
    xml = pytester.path / "first.xml"
    monkeypatch.setenv("GREENLOOP_JUNIT_XML", str(xml))
    run(pytester, "suite").assert_outcomes(passed=2, failed=1)
    failed = [
        properties(c)["greenloop.id"]
        for c in junit_cases(xml).values()
        if c.find("failure") is not None
    ]
    write_select(pytester, monkeypatch, "\n".join(failed) + "\n")
    result = run(pytester, "suite")
    result.assert_outcomes(failed=1, deselected=2)
    assert "not collected" not in result.stdout.str()


def test_explicit_junitxml_option_wins_over_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_one="def test_a(): pass\n")
    from_env = pytester.path / "env.xml"
    from_option = pytester.path / "option.xml"
    monkeypatch.setenv("GREENLOOP_JUNIT_XML", str(from_env))
    run(pytester, f"--junitxml={from_option}").assert_outcomes(passed=1)
    assert from_option.is_file()
    assert not from_env.exists()


# ---------------------------------------------------------------------------
# GREENLOOP_SHARD_INDEX / GREENLOOP_SHARD_COUNT (docs/design.md §4.1)

SHARDED_SUITE = {
    "test_shop": """
        import pytest
        def test_login(): pass
        @pytest.mark.depends_on("test_login")
        def test_checkout(): pass
        @pytest.mark.depends_on("test_checkout")
        def test_pay(): pass
        @pytest.mark.parametrize("n", range(6))
        def test_search(n): pass
        """,
    "test_api": """
        def test_a(): pass
        def test_b(): pass
        def test_c(): pass
        def test_d(): pass
        """,
}


def ran_ids(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, index: int) -> set[str]:
    monkeypatch.setenv("GREENLOOP_SHARD_INDEX", str(index))
    monkeypatch.setenv("GREENLOOP_SHARD_COUNT", "3")
    junit = pytester.path / f"shard{index}.xml"
    result = run(pytester, f"--junitxml={junit}")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    ran = {properties(c)["greenloop.id"] for c in junit_cases(junit).values()}
    result.stdout.fnmatch_lines([f"greenloop: {len(ran)} of 13 tests in shard {index + 1}/3;*"])
    return ran


def test_shards_run_disjoint_parts_that_cover_the_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(**{k: textwrap.dedent(v) for k, v in SHARDED_SUITE.items()})
    parts = [ran_ids(pytester, monkeypatch, i) for i in range(3)]
    everything = set().union(*parts)
    assert len(everything) == 13 == sum(len(p) for p in parts)  # each test exactly once
    # A dependency group runs in one shard, keyed by its first node id; the suite is dealt
    # in hash order onto the emptiest shard (shards.split_collected): 13 tests as 5/4/4.
    group = {"test_shop.py::test_checkout", "test_shop.py::test_login", "test_shop.py::test_pay"}
    (home,) = [p for p in parts if p & group]
    assert group <= home
    where = split_collected(
        {"test_shop.py::test_checkout": 3} | dict.fromkeys(everything - group, 1), 3
    )
    assert group <= parts[where["test_shop.py::test_checkout"]]
    for test_id in everything - group:
        assert test_id in parts[where[test_id]]
    assert sorted(len(p) for p in parts) == [4, 4, 5]


def test_a_selection_is_the_shards_part_and_is_not_split_again(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(**{k: textwrap.dedent(v) for k, v in SHARDED_SUITE.items()})
    write_select(
        pytester, monkeypatch, "test_api.py::test_a\ntest_api.py::test_b\ntest_api.py::test_c\n"
    )
    monkeypatch.setenv("GREENLOOP_SHARD_INDEX", "1")
    monkeypatch.setenv("GREENLOOP_SHARD_COUNT", "4")
    run(pytester).assert_outcomes(passed=3)


@pytest.mark.parametrize(
    ("index", "count", "message"),
    [
        ("0", "", "GREENLOOP_SHARD_COUNT must be 1..64, got ''"),
        ("0", "0", "GREENLOOP_SHARD_COUNT must be 1..64, got '0'"),
        ("0", "65", "GREENLOOP_SHARD_COUNT must be 1..64, got '65'"),
        ("", "4", "GREENLOOP_SHARD_INDEX must be 0..3, got ''"),
        ("4", "4", "GREENLOOP_SHARD_INDEX must be 0..3, got '4'"),
        ("-1", "4", "GREENLOOP_SHARD_INDEX must be 0..3, got '-1'"),
    ],
)
def test_a_bad_shard_variable_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, index: str, count: str, message: str
) -> None:
    pytester.makepyfile(test_one="def test_a(): pass\n")
    monkeypatch.setenv("GREENLOOP_SHARD_INDEX", index)
    monkeypatch.setenv("GREENLOOP_SHARD_COUNT", count)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*greenloop: {message}*"])


def test_one_shard_is_the_whole_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(**{k: textwrap.dedent(v) for k, v in SHARDED_SUITE.items()})
    monkeypatch.setenv("GREENLOOP_SHARD_INDEX", "0")
    monkeypatch.setenv("GREENLOOP_SHARD_COUNT", "1")
    run(pytester).assert_outcomes(passed=13)


def suite_properties(path: Path) -> dict[str, str]:
    suite = next(ET.parse(path).getroot().iter("testsuite"))
    found = suite.find("properties")
    return {} if found is None else properties(found)


def test_each_shard_reports_the_suite_it_collected(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same-collection rule (shards.collected): the merge compares what each dealt from.
    pytester.makepyfile(**{k: textwrap.dedent(v) for k, v in SHARDED_SUITE.items()})
    everything = set().union(*(ran_ids(pytester, monkeypatch, i) for i in range(3)))
    claims = {
        suite_properties(pytester.path / f"shard{i}.xml")[COLLECTED_PROPERTY] for i in range(3)
    }
    assert claims == {collected(everything).describe()}
    monkeypatch.delenv("GREENLOOP_SHARD_INDEX")
    monkeypatch.delenv("GREENLOOP_SHARD_COUNT")
    run(pytester, f"--junitxml={pytester.path / 'whole.xml'}").assert_outcomes(passed=13)
    assert COLLECTED_PROPERTY not in suite_properties(pytester.path / "whole.xml")
