"""Splitting a Go suite from its listing is linear in the tests listed (issue 17's rule
for every loop over tests): parsing ``go test -list`` and splitting by name do the same
work per test at N tests as at 10·N. Counted, never timed (tests/unit/counting.py):
10 times the lines when linear, 100 when a loop visits every test per test.
"""

from __future__ import annotations

from greenloop.core.listing import parse_go_listing, split_go

from .counting import lines_of

N = 400
#: 10·N tests may cost at most this many times N's (linear: 10; quadratic: 100).
BOUND = 12.0
COMMAND = ("gotestsum", "--junitfile", "{greenloop:junit}", "--", "{greenloop:select|./...}")


def listing_of(tests: int, packages: int = 8) -> str:
    """``go test -list '.*'`` output: the tests spread over ``packages`` packages."""
    lines: list[str] = []
    per = tests // packages
    for p in range(packages):
        lines += [f"TestCase{p}x{i}" for i in range(per)]
        lines.append(f"ok  \texample.com/shop/pkg{p}\t0.01s")
    return "\n".join(lines) + "\n"


def split(tests: int) -> int:
    text = listing_of(tests)

    def step() -> None:
        listed = parse_go_listing(text)
        assert not isinstance(listed, str), listed
        plan = split_go("s", COMMAND, 4, listed, (1, 26)).plan
        assert len(plan.shards) == 4

    return lines_of(step)


def test_ten_times_the_listed_tests_is_at_most_about_ten_times_the_split_s_work() -> None:
    once, tenfold = split(N), split(10 * N)
    assert tenfold / once <= BOUND, f"{once:,} lines for {N} tests, {tenfold:,} for {10 * N}"
