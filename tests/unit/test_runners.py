"""A selection becomes each runner's own arguments; the command's placeholders."""

from __future__ import annotations

import pytest

from greenloop.core.runners import (
    expand_command,
    merge_reports,
    rerun_unit,
    select_args,
    shell_words,
)

PW = "\u203a"


@pytest.mark.parametrize(
    ("runner", "ids", "args"),
    [
        (  # jest-junit's default classname repeats the name: X::X
            "jest",
            ["checkout pays by card?::checkout pays by card?"],
            ("-t", r"^checkout pays by card\?$"),
        ),
        (
            "jest",
            ["jest/a.test.js::cart (EU) adds 2+2 [x]", "jest/b.test.ts::b {1} $5 a|b"],
            (
                "-t",
                r"^(?:cart \(EU\) adds 2\+2 \[x\]|b \{1\} \$5 a\|b)$",
                "--",
                r"jest/a\.test\.js$",
                r"jest/b\.test\.ts$",
            ),
        ),
        (
            "vitest",
            ["shop.test.js::cart > coupons > 10% off", "shop.test.js::pay"],
            ("-t", "^(?:cart coupons 10% off|pay)$", "shop.test.js"),
        ),
        (
            "playwright",
            [f"shop.spec.js::cart {PW} adds"],
            ("--grep", r"(?:^| )shop\.spec\.js cart adds(?:$| @)"),
        ),
        (  # subtests rerun through their top-level test; one -run for all packages
            "go",
            ["ex.com/m/cart::TestCart/adds_items", "ex.com/m/cart::TestCart", "ex.com/m/b::TestB"],
            ("-count=1", "-run", "^(?:TestCart|TestB)$", "ex.com/m/cart", "ex.com/m/b"),
        ),
        (
            "maven",
            ["com.ex.CartTest::adds", "com.ex.CartTest::total(int)[2]", "com.ex.PayTest::card()"],
            (
                "-Dtest=com.ex.CartTest#adds+total,com.ex.PayTest#card",
                "-Dsurefire.failIfNoSpecifiedTests=false",
            ),
        ),
        ("pytest", ["tests/test_a.py::test_x"], ()),  # the plugin reads $GREENLOOP_SELECT
        ("generic", ["a::b"], ()),
        ("jest", None, ()),  # the whole suite
    ],
)
def test_select_args(runner: str, ids: list[str] | None, args: tuple[str, ...]) -> None:
    assert select_args(runner, ids) == args


def test_placeholders_expand_to_the_selection_or_its_default() -> None:
    command = ["gotestsum", "--junitfile", "{greenloop:junit}", "--", "{greenloop:select|./...}"]
    assert expand_command(command, None, "/o/go.xml") == (
        "gotestsum",
        "--junitfile",
        "/o/go.xml",
        "--",
        "./...",
    )
    assert expand_command(command, ("-run", "^T$"), "/o/go.xml")[-2:] == ("-run", "^T$")
    assert expand_command(["jest", "{greenloop:select}"], None, "x") == ("jest",)
    # Only a whole argument is the select placeholder: nothing else is touched.
    assert expand_command(["echo", "a{greenloop:select}", "$(X)"], ("-t",), "x") == (
        "echo",
        "a{greenloop:select}",
        "$(X)",
    )


def test_select_args_quoted_for_a_shell() -> None:
    assert shell_words(("-t", "^a b$")) == "-t '^a b$'"


def test_merged_reports_are_one_document() -> None:
    merged = merge_reports(
        [b'<?xml version="1.0"?>\n<testsuite name="a"/>', b"<testsuite name='b'/>"]
    )
    assert merged.count(b"<?xml") == 1
    assert b'<testsuite name="a"/>' in merged and b"<testsuite name='b'/>" in merged


@pytest.mark.parametrize(
    ("runner", "test_id", "unit"),
    [
        # go -run takes top-level names: a subtest reruns with its parent and siblings.
        ("go", "example.com/shop::TestCart/adds_items", "example.com/shop::TestCart"),
        ("go", "example.com/shop::TestCart", "example.com/shop::TestCart"),
        # Surefire's -Dtest selects a method: every parameterization runs.
        ("maven", "com.shop.CartIT::addsItems(int)[1]", "com.shop.CartIT::addsItems"),
        ("maven", "com.shop.CartIT::addsItems()", "com.shop.CartIT::addsItems"),
        # The others run exactly the ids selected.
        ("pytest", "tests/a.py::test_x[1-2]", "tests/a.py::test_x[1-2]"),
        ("jest", "src/cart.test.ts::cart adds", "src/cart.test.ts::cart adds"),
        ("generic", "a::b/c", "a::b/c"),
    ],
)
def test_rerun_unit_is_what_a_selection_of_the_test_also_runs(
    runner: str, test_id: str, unit: str
) -> None:
    assert rerun_unit(runner, test_id) == unit
    # Selecting the test or its unit gives the runner the same arguments.
    assert select_args(runner, [test_id]) == select_args(runner, [unit]) or runner not in (
        "go",
        "maven",
    )
