"""Fuzz targets for the two readers of outside input: the JUnit reader and the spec loader.

Each input, whatever it is, must give a result or the reader's own error (JUnitError,
SpecError), never another exception, and the result must stay within its bounds. Inputs
are seeds (tests/fuzz/corpus, plus the unit-test fixtures) mutated by hypothesis: bytes
inserted, deleted, duplicated, and fragments spliced in that have broken readers before
(character references, encodings, DTDs, huge numbers, surrogates).

The normal test run tries FUZZ_EXAMPLES inputs per target (default 150: a few seconds);
``make fuzz`` runs many more, bounded in time. A failure prints the input to add to the
corpus once the bug is fixed.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenloop.core import spec
from greenloop.core.classify import diagnose
from greenloop.core.junit import JUnitError, parse_junit
from greenloop.core.spec import SpecError

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
JUNIT_SEEDS = sorted(
    p.read_bytes()
    for folder in (CORPUS / "junit", HERE.parent / "unit" / "fixtures" / "junit")
    for p in folder.glob("*.xml")
)
SPEC_SEEDS = sorted(p.read_bytes() for p in (CORPUS / "spec").glob("*.yaml"))
MAX_TEXT = 512

JUNIT_FRAGMENTS = [
    b"&#27;", b"&#0;", b"&#x1F;", b"&#10;", b"&#xD800;", b"&#1114112;", b"&amp;", b"&",
    b"<", b">", b'"', b"'", b"\x00", b"\x1b[31m", b"\xff\xfe", b"\xc3", b"\xef\xbb\xbf",
    b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<?pi x?>", b"<!DOCTYPE x>",
    b'<!ENTITY a "b">', b"&a;", b'<?xml version="1.0" encoding="idna"?>',
    b'<?xml version="1.0" encoding="utf-16"?>', b"<testcase>", b"</testcase>",
    b'<testcase name="n" classname="c" time="1e309">', b"<failure message='m'>",
    b"</failure>", b"<error/>", b"<skipped/>", b"<system-out>", b"</system-out>",
    b"<testsuite>", b"</testsuite>", b"<testsuites>", b'<property name="greenloop.id" value=""/>',
    b'<property name="greenloop.priority" value="P0"/>', b" " * 300, b"got" + b" " * 200 + b"x",
]  # fmt: skip
SPEC_FRAGMENTS = [
    b"\n", b"  ", b"- ", b": ", b"{", b"}", b"[", b"]", b'"', b"'", b"&a ", b"*a", b"<<: *a",
    b"!!python/object:os.system", b"\\0", b"\\ud800", b"\t", b"\x00", b"\xff", b"---\n",
    b"9" * 5000, b"0x" + b"f" * 2000, b"1e999", b".nan", b"~", b"null", b"true", b"0s",
    b"http://[::1/x", b"(a+)+$", b"(upstream)?", b"(a)\\1", b"P0", b"command: ", b"suites:",
    b"classification:", b"- {pattern: x, class: Timeout}", b"expectedTests: ", b"Tok\xc3\xa9n",
]  # fmt: skip


def mutated(seeds: list[bytes], fragments: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed changed by a few edits: insert a fragment or random bytes, delete or
    duplicate a slice."""
    edit = st.tuples(
        st.sampled_from(("insert", "bytes", "delete", "duplicate")),
        st.floats(0, 1),
        st.floats(0, 1),
        st.sampled_from(fragments),
        st.binary(max_size=8),
    )

    def apply(seed: bytes, edits: list[tuple[str, float, float, bytes, bytes]]) -> bytes:
        data = seed
        for kind, a, b, fragment, noise in edits:
            i, j = sorted((int(a * len(data)), int(b * len(data))))
            if kind == "insert":
                data = data[:i] + fragment + data[i:]
            elif kind == "bytes":
                data = data[:i] + noise + data[i:]
            elif kind == "delete":
                data = data[:i] + data[j : j + (j - i) % 64]
                data = data[:i] + data[i + (j - i) % 64 :]
            else:
                data = data[:j] + data[i : i + 256] + data[j:]
        return data

    return st.builds(apply, st.sampled_from(seeds), st.lists(edit, max_size=6))


def _settings() -> settings:
    return settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
        deadline=None,  # bounded by the example count; speed is bench/'s business
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


@_settings()
@given(mutated(JUNIT_SEEDS, JUNIT_FRAGMENTS))
def test_the_junit_reader_answers_every_input_with_results_or_a_junit_error(data: bytes) -> None:
    try:
        report = parse_junit(data, name="fuzz.xml", max_text=MAX_TEXT)
    except JUnitError as err:
        assert str(err).startswith("fuzz.xml: ")
        return
    failing = {t.id for t in report.tests if t.is_failure}
    for test in report.tests:
        assert len(test.message) <= MAX_TEXT
        assert len(test.details) <= MAX_TEXT
        assert len(test.output) <= MAX_TEXT
        assert all(len(v) <= MAX_TEXT for v in test.properties.values())
        diagnose(test, failing_ids=failing)  # classification never fails either
    assert len(report.warnings) <= 52


@_settings()
@given(mutated(SPEC_SEEDS, SPEC_FRAGMENTS))
def test_the_spec_loader_answers_every_input_with_objects_or_a_spec_error(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # load_bytes says "not UTF-8" before load_text sees it
    for mode in ("local", "operator"):
        try:
            spec.load_text(text, source="fuzz.yaml", mode=mode)
        except SpecError as err:
            shown = str(err).splitlines()
            assert shown, "a SpecError with nothing to say"
            assert len(shown) <= spec.MAX_SHOWN + 1
            assert all(line.startswith("fuzz.yaml: ") for line in shown), shown
