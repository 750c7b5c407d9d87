"""JUnit XML reading: the dialects people produce, and files meant to hurt the reader."""

from __future__ import annotations

import codecs
import io
import random
import re
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from greenloop.core import junit
from greenloop.core.junit import JUnitError, JUnitReport, iter_junit, parse_junit
from greenloop.core.model import Outcome, TestResult

FIXTURES = Path(__file__).parent / "fixtures" / "junit"
P, F, E, S = Outcome.PASSED, Outcome.FAILED, Outcome.ERROR, Outcome.SKIPPED


def read(name: str) -> JUnitReport:
    with (FIXTURES / name).open("rb") as stream:
        return parse_junit(stream)


def by_id(report: JUnitReport) -> dict[str, TestResult]:
    return {t.id: t for t in report.tests}


# -- dialects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "counts"),
    [
        ("pytest_xunit1.xml", {P: 2, F: 1, E: 1, S: 1}),
        ("pytest_xunit2.xml", {P: 2, F: 1, E: 1, S: 1}),
        ("pytest_greenloop.xml", {P: 2, F: 1, S: 1}),
        ("surefire.xml", {P: 1, F: 1, E: 1, S: 1}),
        ("surefire_flaky.xml", {P: 2, F: 1}),
        ("jest.xml", {P: 1, F: 2, E: 1, S: 1}),
        ("go_junit_report.xml", {P: 1, F: 2, E: 1}),
        ("gotestsum.xml", {P: 1, F: 2, S: 1}),
        ("nested_testsuites.xml", {P: 4, F: 1}),
        ("playwright.xml", {P: 1, F: 2}),
        ("bare_testsuite.xml", {P: 4}),
    ],
)
def test_counts_by_outcome(fixture: str, counts: dict[Outcome, int]) -> None:
    report = read(fixture)
    assert Counter(t.outcome for t in report.tests) == counts
    assert len({t.id for t in report.tests}) == len(report.tests)


# (fixture, id, expected attributes)
CASES = [
    (
        "pytest_xunit1.xml",
        "tests.e2e.test_conn::test_002_websocket_connectivity",
        {
            "outcome": F,
            "name": "test_002_websocket_connectivity",
            "classname": "tests.e2e.test_conn",
            "message": "httpx.HTTPStatusError: Server error '503 Service Unavailable' for url "
            "'http://127.0.0.1:8000/ws'\nFor more information check: "
            "https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/503",
            "output": "GET http://127.0.0.1:8000/ws -> 503\n\nWARNING retrying /ws\n",
            "time": 0.204,
        },
    ),
    (
        "pytest_xunit1.xml",
        "tests.e2e.test_orders::test_list_orders",
        {
            "outcome": E,
            "message": 'failed on setup with "file /app/tests/e2e/test_orders.py, line 90"',
        },
    ),
    (
        "pytest_xunit1.xml",
        "tests.e2e.test_orders::test_refund",
        {"outcome": S, "message": "refunds are disabled on staging"},
    ),
    (
        "pytest_xunit2.xml",
        "tests.e2e.test_broken",  # a collection error: no classname, the id is the name
        {"outcome": E, "classname": "", "message": "collection failure"},
    ),
    ("pytest_xunit2.xml", "tests.e2e.test_cart::test_coupon", {"outcome": S}),
    (
        "pytest_greenloop.xml",
        "tests/e2e/test_auth.py::test_login",
        {"outcome": F, "priority": "P1", "depends_on": (), "name": "test_login"},
    ),
    (
        "pytest_greenloop.xml",
        "tests/e2e/test_auth.py::test_logout[admin]",
        {
            "outcome": P,
            "priority": "P3",
            "depends_on": (
                "tests/e2e/test_auth.py::test_login",
                "tests/e2e/test_auth.py::test_profile",
            ),
        },
    ),
    ("pytest_greenloop.xml", "tests/e2e/test_misc.py::test_version", {"priority": None}),
    (
        "surefire.xml",
        "com.acme.shop.OrderApiIT::listsOrders",
        {
            "outcome": F,
            "message": "1 expectation failed.\nExpected status code <200> but was <503>.\n",
            "time": 1200.1,  # Surefire's grouping comma
            "output": "09:14:02.118 [main] INFO  c.a.s.OrderApiIT - GET /api/orders\n",
        },
    ),
    (
        "surefire.xml",
        "com.acme.shop.OrderApiIT::cancelsOrder",
        {"outcome": E, "message": "Read timed out"},
    ),
    (
        "surefire_flaky.xml",
        "com.acme.shop.PaymentIT::paysWithCard",
        {"outcome": P, "flaky": True, "message": "expected: <200> but was: <502>"},
    ),
    (
        "surefire_flaky.xml",
        "com.acme.shop.PaymentIT::voidsPayment",
        {"outcome": P, "flaky": True},
    ),
    (
        "surefire_flaky.xml",
        "com.acme.shop.PaymentIT::refundsCard",  # failed on every rerun
        {"outcome": F, "flaky": False, "message": "Connection refused"},
    ),
    (
        "jest.xml",
        "Checkout API pays with a card::Checkout API pays with a card",
        # no message attribute: the first line of the text stands in
        {"outcome": F, "message": "Error: expect(received).toBe(expected) // Object.is equality"},
    ),
    (
        "jest.xml",
        "Test suite failed to run::tests/orders.test.js",
        # no output of its own: the suite's system-out stands in
        {"outcome": E, "output": "console.log\n    connecting to http://orders:3000\n"},
    ),
    ("jest.xml", "Checkout API ships abroad::Checkout API ships abroad", {"outcome": S}),
    (
        "go_junit_report.xml",
        "github.com/acme/shop/e2e::TestCheckout",
        {"outcome": F, "message": "Failed"},
    ),
    (
        "go_junit_report.xml",
        "github.com/acme/shop/e2e/admin::[build failed]",
        {"outcome": E, "message": "Build error"},
    ),
    (
        "gotestsum.xml",
        "github.com/acme/shop/e2e::TestOrders/create",
        {"outcome": F, "time": 30.004},
    ),
    (
        "nested_testsuites.xml",
        "shop.cart::removes item",
        {"outcome": F, "output": "cart-service: WARN slow response (1200ms)\n"},
    ),
    ("nested_testsuites.xml", "finds by name", {"classname": "", "time": 0.4}),
    ("nested_testsuites.xml", "shop.search::finds by sku", {"time": 0.0}),
    ("nested_testsuites.xml", "shop::top-level smoke", {"outcome": P}),
    (
        "playwright.xml",
        "checkout.spec.ts::checkout \u203a loads the page",
        {"outcome": F, "message": "checkout.spec.ts:30:7 loads the page"},
    ),
    ("bare_testsuite.xml", "homepage", {"classname": "", "time": 0.0}),
    ("bare_testsuite.xml", "smoke::café menu", {"time": 0.25}),  # ISO-8859-1, decimal comma
    ("bare_testsuite.xml", "smoke::login[2]", {"time": 1.7}),
]


@pytest.mark.parametrize(("fixture", "test_id", "expected"), CASES)
def test_testcase_fields(fixture: str, test_id: str, expected: dict[str, object]) -> None:
    test = by_id(read(fixture))[test_id]
    assert {key: getattr(test, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("fixture", "test_id", "head", "tail"),
    [
        (
            "pytest_xunit1.xml",
            "tests.e2e.test_conn::test_002_websocket_connectivity",
            "client = <httpx.Client object at 0x7f0c2b1d9e50>",
            ".venv/lib/python3.11/site-packages/httpx/_models.py:829: HTTPStatusError",
        ),
        (
            "surefire_flaky.xml",
            "com.acme.shop.PaymentIT::paysWithCard",  # the nested <stackTrace>
            "org.opentest4j.AssertionFailedError: expected: <200> but was: <502>",
            "POST /api/payments -> 502",
        ),
        (
            "go_junit_report.xml",
            "github.com/acme/shop/e2e::TestCheckout/with_coupon",
            "checkout_test.go:48:",
            "Test:       \tTestCheckout/with_coupon",
        ),
    ],
)
def test_details_keep_the_whole_text(fixture: str, test_id: str, head: str, tail: str) -> None:
    details = by_id(read(fixture))[test_id].details
    assert details.strip().startswith(head)
    assert details.strip().endswith(tail)


def test_testcase_properties_are_kept_and_suite_properties_are_not() -> None:
    test = by_id(read("pytest_greenloop.xml"))["tests/e2e/test_auth.py::test_profile"]
    assert test.properties == {
        "greenloop.id": "tests/e2e/test_auth.py::test_profile",
        "greenloop.priority": "P2",
        "greenloop.depends_on": "tests/e2e/test_auth.py::test_login",
    }


def test_rerun_failure_without_a_first_failure_still_fails() -> None:
    xml = b"""<testsuite><testcase classname="C" name="t">
      <rerunError message="boom" type="java.lang.IllegalStateException">
        <stackTrace>java.lang.IllegalStateException: boom</stackTrace></rerunError>
    </testcase></testsuite>"""
    (test,) = parse_junit(xml).tests
    assert (test.outcome, test.flaky, test.message) == (E, False, "boom")
    assert test.details.strip() == "java.lang.IllegalStateException: boom"


def test_failure_and_teardown_error_in_one_testcase() -> None:
    xml = b"""<testsuite><testcase classname="m" name="t">
      <failure message="assert 1 == 2">E   assert 1 == 2</failure>
      <error message="failed on teardown with &quot;RuntimeError: db&quot;"
        >E   RuntimeError: db</error>
    </testcase></testsuite>"""
    (test,) = parse_junit(xml).tests
    assert test.outcome is F
    assert test.message == "assert 1 == 2"
    assert test.details == "E   assert 1 == 2\n\nE   RuntimeError: db"


def test_property_value_as_element_text() -> None:
    xml = b"""<testsuite><testcase classname="m" name="t"><properties>
      <property name="greenloop.id"> tests/m.py::t </property>
      <property name="greenloop.depends_on">tests/m.py::a,, tests/m.py::b ,</property>
    </properties></testcase></testsuite>"""
    (test,) = parse_junit(xml).tests
    assert test.id == "tests/m.py::t"
    assert test.depends_on == ("tests/m.py::a", "tests/m.py::b")


@pytest.mark.parametrize(
    ("raw", "seconds", "warns"),
    [
        ("1.5", 1.5, False),
        ("", 0.0, False),
        ("1,234.5", 1234.5, False),
        ("1,234,567", 1234567.0, False),
        ("0,25", 0.25, False),
        ("abc", 0.0, True),
        ("-1", 0.0, True),
        ("nan", 0.0, True),
        ("inf", 0.0, True),
    ],
)
def test_time_attribute(raw: str, seconds: float, warns: bool) -> None:
    report = parse_junit(f'<testsuite><testcase name="t" time="{raw}"/></testsuite>'.encode())
    assert report.tests[0].time == seconds
    assert bool(report.warnings) is warns


@pytest.mark.parametrize(
    ("raw", "priority", "warns"),
    [
        ("P1", "P1", False),
        (" p9 ", "P9", False),
        ("2", "P2", False),
        ("P0", None, True),
        ("high", None, True),
    ],
)
def test_priority_property(raw: str, priority: str | None, warns: bool) -> None:
    xml = (
        '<testsuite><testcase name="t"><properties><property name="greenloop.priority" '
        f'value="{raw}"/></properties></testcase></testsuite>'
    )
    report = parse_junit(xml.encode())
    assert report.tests[0].priority == priority
    assert bool(report.warnings) is warns


def test_duplicate_ids_are_kept_apart_with_a_warning() -> None:
    xml = b"""<testsuite>
      <testcase classname="m" name="t"/><testcase classname="m" name="t[2]"/>
      <testcase classname="m" name="t"/><testcase classname="m" name="t"/>
    </testsuite>"""
    report = parse_junit(xml, name="report.xml")
    assert [t.id for t in report.tests] == ["m::t", "m::t[2]", "m::t[3]", "m::t[4]"]
    assert report.warnings == (
        "report.xml: test id 'm::t' appears 4 times; kept apart as m::t[2] … m::t[4]",
    )


def test_sources_bytes_and_stream_read_alike() -> None:
    path = FIXTURES / "pytest_xunit1.xml"
    expected = parse_junit(path.read_bytes()).tests
    with path.open("rb") as stream:
        assert parse_junit(stream).tests == expected
    with path.open("rb") as stream:
        assert list(iter_junit(stream)) == list(expected)


@pytest.mark.parametrize("path", [FIXTURES / "pytest_xunit1.xml", str(FIXTURES / "x.xml")])
def test_a_path_is_refused_the_core_opens_no_files(path: object) -> None:
    with pytest.raises(TypeError, match="a binary stream the caller opened"):
        parse_junit(path, name="report.xml")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a binary stream the caller opened"):
        iter_junit(path)  # type: ignore[arg-type]


def test_utf16_with_bom() -> None:
    xml = '<?xml version="1.0" encoding="UTF-16"?><testsuite><testcase name="naïve"/></testsuite>'
    (test,) = parse_junit(xml.encode("utf-16")).tests
    assert test.id == "naïve"


NAIVE = '<testsuite><testcase name="naïve"/></testsuite>'


@pytest.mark.parametrize(
    "data",
    [
        codecs.BOM_UTF8 + NAIVE.encode(),
        NAIVE.encode("utf-32"),  # with its BOM
        NAIVE.encode("utf-16-le"),  # no BOM: told by "<" then a zero byte
        NAIVE.encode("utf-16-be"),
        # A declaration readable as ASCII is no UTF-16, whatever it says.
        ('<?xml version="1.0" encoding="UTF-16"?>' + NAIVE).encode(),
        ('<?xml version="1.0" encoding="utf-32"?>' + NAIVE).encode(),
        ('<?xml version="1.0" encoding="latin-1"?>' + NAIVE).encode("latin-1"),
    ],
    ids=["UTF-8 BOM", "UTF-32 BOM", "UTF-16 LE, no BOM", "UTF-16 BE, no BOM",
         "UTF-16 declared in ASCII", "UTF-32 declared in ASCII", "declared latin-1"],
)  # fmt: skip
def test_each_way_a_file_can_say_its_encoding_reads_the_same_testcase(data: bytes) -> None:
    (test,) = parse_junit(data).tests
    assert test.id == "naïve"


def test_a_codec_that_is_not_for_text_is_refused_by_name() -> None:
    with pytest.raises(JUnitError) as caught:
        parse_junit(b'<?xml version="1.0" encoding="rot13"?><testsuite/>', name="r.xml")
    assert str(caught.value) == "r.xml: 'rot13' is not a text encoding"


def test_iter_junit_streams(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    cases = "".join(f'<testcase classname="m" name="t{i}" time="0.1"/>\n' for i in range(50_000))
    path.write_text(f"<testsuite>{cases}</testsuite>")

    class CountingReader(io.FileIO):
        reads = 0

        def read(self, size: int | None = -1) -> bytes:
            CountingReader.reads += 1
            return super().read(size)

    with CountingReader(path) as stream:
        first = next(iter_junit(stream))
        assert first.id == "m::t0"
        assert CountingReader.reads <= 2  # not the whole 2 MB file


def test_fast_result_constructor_builds_the_same_object() -> None:
    args = ("id", "n", "c", F, "m", "d", "o", 1.0, "P1", ("x",), True, {"k": "v"})
    made = junit._RESULT_FACTORY(*args)
    real = TestResult(*args)
    assert type(made) is TestResult
    assert made == real
    assert hash(made) == hash(real)
    assert repr(made) == repr(real)


# -- hostile and broken files --------------------------------------------------------------


def test_xxe_does_not_read_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN")
    xml = f"""<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY xxe SYSTEM "file://{secret}">]>
<testsuite><testcase name="&xxe;"><failure message="&xxe;">&xxe;</failure></testcase></testsuite>"""
    with pytest.raises(JUnitError, match=r"report\.xml: line 2, column \d+: DTDs are not allowed"):
        parse_junit(xml.encode(), name="report.xml")
    reached: list[TestResult] = []
    with pytest.raises(JUnitError):
        reached.extend(iter_junit(xml.encode()))
    assert reached == []  # no testcase, let alone one holding the secret


def test_external_dtd_is_refused(tmp_path: Path) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY leak SYSTEM "file:///etc/hostname">')
    xml = (
        f'<!DOCTYPE testsuite SYSTEM "file://{dtd}">'
        '<testsuite><testcase name="&leak;"/></testsuite>'
    )
    with pytest.raises(JUnitError, match="DTDs are not allowed"):
        parse_junit(xml.encode())


def test_billion_laughs_fails_fast_without_expanding() -> None:
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE testsuite [{"".join(levels)}]>'
        '<testsuite><testcase name="&lol9;"/></testsuite>'
    )
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(JUnitError, match="DTDs are not allowed"):
            parse_junit(xml.encode())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 2_000_000


def test_fifty_megabytes_of_system_out_stay_bounded(tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    line = "2026-11-24 03:00:00 DEBUG polling http://backend:8000/health ... ok\n"
    with path.open("w") as out:
        out.write('<testsuite><testcase classname="m" name="chatty">')
        out.write('<failure message="boom">first line of the trace\n')
        out.write(line * 200_000)  # ~13 MB of failure text
        out.write("E   httpx.HTTPStatusError: Server error '503 Service Unavailable'</failure>")
        out.write("<system-out>")
        for _ in range(50):
            out.write(line * 15_000)  # 50 x ~1 MB
        out.write("the very last line</system-out></testcase></testsuite>")
    assert path.stat().st_size > 60_000_000

    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            (test,) = parse_junit(stream, max_text=4096).tests
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    assert len(test.output) <= 4096
    assert test.output.endswith("the very last line")
    assert "characters omitted" in test.output
    assert len(test.details) <= 4096
    assert test.details.startswith("first line of the trace\n")
    assert test.details.endswith(
        "E   httpx.HTTPStatusError: Server error '503 Service Unavailable'"
    )


@pytest.mark.parametrize("max_text", [1, 10, 100, 4096])
def test_bounded_text_never_exceeds_max_text(max_text: int) -> None:
    text = "".join(f"line {i}\n" for i in range(3000))
    xml = f'<testsuite><testcase name="t"><failure>{text}</failure><system-out>{text}</system-out>'
    (test,) = parse_junit((xml + "</testcase></testsuite>").encode(), max_text=max_text).tests
    assert 0 < len(test.details) <= max_text
    assert 0 < len(test.output) <= max_text
    assert text.endswith(test.output[-min(max_text, 8) :])


def test_text_just_over_the_limit_loses_only_the_middle() -> None:
    text = "H" * 3000 + "T" * 3000
    (test,) = parse_junit(
        f'<testsuite><testcase name="t"><failure>{text}</failure></testcase></testsuite>'.encode()
    ).tests
    marker = re.search(r"\n… \[([\d,]+) characters omitted\] …\n", test.details)
    assert marker is not None
    head, tail = test.details[: marker.start()], test.details[marker.end() :]
    assert set(head) == {"H"} and set(tail) == {"T"}
    assert len(head) + len(tail) + int(marker.group(1).replace(",", "")) == 6000


def test_invalid_utf8_is_replaced_and_the_results_survive() -> None:
    xml = (
        b'<testsuite><testcase classname="m" name="t\xff">'
        b'<failure message="bad \xc3\x28 byte">trace \xfe\xfe</failure>'
        b"<system-out>colour \x1b[31mred\x1b[0m and a NUL \x00</system-out>"
        b"</testcase></testsuite>"
    )
    (test,) = parse_junit(xml).tests
    assert test.id == "m::t\ufffd"
    assert test.message == "bad \ufffd( byte"
    assert test.details == "trace \ufffd\ufffd"
    assert test.output == "colour \ufffd[31mred\ufffd[0m and a NUL \ufffd"


def test_forbidden_characters_in_utf8_text_are_replaced_across_chunks() -> None:
    # Non-ASCII UTF-8 chunks are searched for forbidden characters without the regex:
    # U+FFFE in the first chunk, U+FFFF straddling the chunk boundary, and a control
    # byte in a chunk that is not ASCII must all still be replaced.
    head = '<testsuite><testcase name="t"><system-out>é \ufffe '.encode()
    pad = "x" * (junit._CHUNK - len(head) - 1)
    tail = "\uffff ü \x07 end</system-out></testcase></testsuite>"
    xml = head + pad.encode() + tail.encode()
    assert xml[junit._CHUNK - 1 : junit._CHUNK + 2] == "\uffff".encode()
    (test,) = parse_junit(xml, max_text=2 * junit._CHUNK).tests
    assert test.output == f"é \ufffd {pad}\ufffd ü \ufffd end"


def test_references_to_forbidden_characters_are_replaced_like_the_raw_characters() -> None:
    # &#27; (an ANSI colour code, escaped) rejected the whole file while a raw ESC byte
    # was replaced: both now become U+FFFD, and &#10; stays a newline.
    xml = (
        b'<testsuite><testcase classname="m" name="t&#x1B;">'
        b'<failure message="got &#27;[31m503&#10;retry &#0;&#xFFFE;&#55296;">x&#x7;y</failure>'
        b"<system-out>raw \x1b[31m</system-out></testcase></testsuite>"
    )
    (test,) = parse_junit(xml).tests
    assert test.id == "m::t\ufffd"
    assert test.message == "got \ufffd[31m503\nretry \ufffd\ufffd\ufffd"
    assert test.details == "x\ufffdy"
    assert test.output == "raw \ufffd[31m"


# A complete reference before each forbidden one: the one held back must be the last "&".
REFS = b'<testcase name="a&amp;b&#27;c&#10;d&lt;&#1;"/></testsuite>'
FIRST_REF = REFS.index(b"&")


@pytest.mark.parametrize("cut", range(len(b"&amp;b&#27;c&#10;d&lt;&#1;")))
@pytest.mark.parametrize("text", [False, True], ids=["ASCII chunks", "non-ASCII chunks"])
def test_a_reference_cut_by_a_chunk_boundary_is_still_replaced(cut: int, text: bool) -> None:
    # The first chunk ends `cut` bytes into the references: every one of them is cut
    # somewhere by one of the rows (a non-ASCII chunk takes the decoded-text path).
    head = b"<testsuite>" + ("é".encode() if text else b"")
    head += b" " * (junit._CHUNK - len(head) - FIRST_REF - cut)
    xml = head + REFS
    assert len(head) + FIRST_REF + cut == junit._CHUNK
    (test,) = parse_junit(xml).tests
    assert test.id == "a&b\ufffdc\nd<\ufffd"


def test_truncated_file_reports_how_many_testcases_were_read() -> None:
    whole = (FIXTURES / "pytest_xunit2.xml").read_bytes()
    cut = whole[: whole.index(b'<testcase classname="tests.e2e.test_cart" name="test_checkout"')]
    with pytest.raises(JUnitError) as caught:
        parse_junit(cut, name="report.xml")
    message = str(caught.value)
    assert re.fullmatch(
        r"report\.xml: line \d+, column \d+: no element found \(file truncated\? "
        r"4 testcases read before the error\)",
        message,
    ), message


def test_iter_junit_yields_what_came_before_the_damage() -> None:
    xml = b'<testsuite><testcase name="a"/><testcase name="b"/><testcase name="c">'
    seen: list[str] = []
    with pytest.raises(JUnitError, match=r"\(file truncated\? 2 testcases read"):
        seen.extend(t.id for t in iter_junit(xml))
    assert seen == ["a", "b"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "report.xml: empty file"),
        (b"  \n\t\n", "report.xml: empty file"),
        (b"\xef\xbb\xbf\n", "report.xml: empty file"),
        (
            b"<html><body>502 Bad Gateway</body></html>",
            "report.xml: root element <html> is not JUnit (expected <testsuites> or <testsuite>)",
        ),
        (
            b'<testsuite>\n  <testcase name="a"/>\n  <testcase name="b" <failure/>\n</testsuite>',
            "report.xml: line 3, column 22: not well-formed (invalid token) "
            "(1 testcase read before the error)",
        ),
        (
            b'<?xml version="1.0" encoding="klingon"?><testsuite/>',
            "report.xml: unknown encoding 'klingon'",
        ),
        (
            b"<testsuite><testcase name='&undefined;'/></testsuite>",
            "report.xml: line 1, column 12: undefined entity (0 testcases read before the error)",
        ),
        # Codecs Python has that are not for files: a traceback (idna, undefined) or
        # "empty file" (punycode) before. An EBCDIC page named in ASCII reads as garbage.
        *(
            (
                f'<?xml version="1.0" encoding="{name}"?><testsuite/>'.encode(),
                f"report.xml: encoding {name!r} cannot be used for XML (its own declaration"
                " does not read back); write the file as UTF-8",
            )
            for name in ("idna", "undefined", "punycode", "cp037")
        ),
    ],
)
def test_broken_files_give_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(JUnitError) as caught:
        parse_junit(data, name="report.xml")
    assert str(caught.value) == message


@pytest.mark.parametrize("seed", range(20))
def test_binary_garbage_is_a_junit_error(seed: int) -> None:
    garbage = random.Random(seed).randbytes(4096)
    with pytest.raises(JUnitError, match=r"^garbage\.bin: "):
        parse_junit(garbage, name="garbage.bin")


def test_deep_nesting_is_refused() -> None:
    xml = b"<testsuites>" + b"<testsuite>" * 1000 + b"</testsuite>" * 1000 + b"</testsuites>"
    with pytest.raises(JUnitError, match="nested deeper than"):
        parse_junit(xml)


class _Unreadable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        raise OSError(5, "Input/output error")


def test_a_stream_that_cannot_be_read_is_a_junit_error() -> None:
    with pytest.raises(JUnitError, match=r"^nope\.xml: cannot read: Input/output error$"):
        parse_junit(io.BufferedReader(_Unreadable()), name="nope.xml")


def test_max_text_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_text"):
        parse_junit(b"<testsuite/>", max_text=0)


# Markup longer than junit._MAX_TOKEN is cut before expat sees it: expat 2.5 parses a
# token again from its start for every chunk (20 MB attribute: 9.5 s, 85 MB; 200 MB:
# > 400 s). Each case must still read the testcases around the cut, with a warning.
BIG = junit._MAX_TOKEN * 2
CUT_TOKENS = [
    ("an attribute value", b'<testcase name="a" classname="c"><failure message="' + b"m" * BIG
     + b'" type="T">text</failure></testcase>'),
    ("an attribute value, then more", b'<testcase name="a" classname="c" x="' + b"v" * BIG
     + b'" y="1" z=\'2\'/>'),
    ("many attributes", b'<testcase name="a" classname="c" '
     + b" ".join(b'a%d="1"' % i for i in range(BIG // 8)) + b"/>"),
    ("a comment", b"<!--" + b"c" * BIG + b'--><testcase name="a" classname="c"/>'),
    ("a processing instruction", b"<?pi " + b"p" * BIG + b'?><testcase name="a" classname="c"/>'),
    ("whitespace in a tag", b'<testcase name="a" classname="c"' + b" " * BIG + b"/>"),
]  # fmt: skip


@pytest.mark.parametrize("token", [t for _, t in CUT_TOKENS], ids=[i for i, _ in CUT_TOKENS])
def test_markup_longer_than_the_cap_is_cut_and_the_file_still_reads(token: bytes) -> None:
    xml = b'<testsuite><testcase name="before"/>' + token + b'<testcase name="after"/></testsuite>'
    report = parse_junit(xml, name="big.xml")
    assert sorted(t.id for t in report.tests) == ["after", "before", "c::a"]
    assert any("markup longer than" in w for w in report.warnings), report.warnings
    (cut,) = (t for t in report.tests if t.id == "c::a")
    if b"<failure" in token:
        assert cut.outcome is Outcome.FAILED and cut.message == "m" * 4096


def test_a_200_megabyte_attribute_reads_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    with path.open("wb") as out:
        out.write(b'<testsuite><testcase name="a"><failure message="')
        for _ in range(200):
            out.write(b"x" * (1 << 20))
        out.write(b'"/></testcase></testsuite>')
    # The child's own peak (VmHWM): ru_maxrss would carry the forking pytest's over exec.
    code = (
        "import re, sys; from greenloop.core.junit import parse_junit;"
        "r = parse_junit(open(sys.argv[1], 'rb')); assert r.tests[0].outcome.value == 'failed';"
        "status = open('/proc/self/status').read();"
        "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) // 1024)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=100
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) < 100, f"peak RSS {proc.stdout.strip()} MiB"  # before: > 800 MiB


def test_parse_junit_keeps_only_what_keep_accepts_and_counts_the_rest() -> None:
    xml = (
        b'<testsuite><testcase name="a"/><testcase name="b"><failure message="x"/></testcase>'
        b'<testcase name="c"/><testcase name="c"/></testsuite>'
    )
    report = parse_junit(xml, keep=lambda t: t.outcome is not Outcome.PASSED)
    assert [t.id for t in report.tests] == ["b"]
    assert report.not_kept == 3
    assert any("appears 2 times" in w for w in report.warnings)


KEEP_PASSED_XML = (
    b'<testsuite><testcase name="a" time="soon"/>'
    b'<testcase name="b"><failure message="x"/></testcase>'
    b'<testcase name="c"><flakyFailure message="once"/></testcase>'
    b'<testcase name="d"><skipped/></testcase>'
    b'<testcase name="b"><error message="y"/></testcase>'
    b'<testcase name="a"/></testsuite>'
)


def test_keep_passed_false_reads_what_keeping_every_result_would_less_the_passed() -> None:
    everything = parse_junit(KEEP_PASSED_XML)
    failures = parse_junit(KEEP_PASSED_XML, keep_passed=False)
    expected = [t for t in everything.tests if t.outcome is not Outcome.PASSED]
    assert failures.tests == tuple(expected)
    assert sorted(t.id for t in failures.tests) == ["b", "b[2]", "d"]
    assert failures.not_kept == 3  # a, the flaky c, the second a
    assert failures.warnings == everything.warnings
    assert any("time 'soon'" in w for w in failures.warnings)
    assert any("'a' appears 2 times" in w for w in failures.warnings)
