"""Read JUnit XML into test results: streaming, with bounded memory, safe on hostile files.

The parser drives expat directly instead of ElementTree because ``iterparse`` keeps an
element's whole text until the element ends: 50 MB of ``system-out`` would be 50 MB (and
more) of memory. Here every text field keeps at most ``max_text`` characters while it is
read, so memory depends on ``max_text``, not on the file.

Security follows defusedxml's rules, stricter: any ``<!DOCTYPE>`` is refused before its
internal subset is read, so entity declarations (billion laughs) and external entities
(XXE) never reach expat's entity machinery; parameter entities are never parsed.

Dialects (pytest xunit1/xunit2, Maven Surefire with reruns, jest-junit, go-junit-report,
gotestsum, Playwright, nested ``<testsuites>``) differ only in which elements and
attributes they use, so one tolerant reader handles them all: unknown elements are
ignored, missing attributes get defaults.

Fields: ``message`` is the result element's ``message`` attribute, else the first line of
its text, else its ``type``; ``details`` is that text, head and tail kept (a third and two
thirds of ``max_text``: pytest's decisive line is the last, Java's the first); ``output``
is the tail of system-out then system-err. Markup nested in a text field (Surefire's
``<stackTrace>``) counts as part of its text.

Markup longer than 1 MiB (a start tag with its attributes, a comment, a processing
instruction) is cut, with a warning: expat 2.5 re-parses a token from its start for every
chunk, so a 200 MB attribute would take minutes and hundreds of MB (see _TokenGuard).

Characters XML 1.0 forbids (ANSI escapes, NULs) become U+FFFD whether they are written
raw or as character references (``&#27;``): a writer that escapes them should not lose
the whole file where one that does not loses nothing. An encoding must be one the file's
own XML declaration can be read in (not ``idna``, ``punycode`` or an EBCDIC page).

Order: results come in file order, except that a failing testcase with no output of its
own is held until its ``<testsuite>`` ends, so that the suite-level output (where jest and
Go reporters put a test's logs) can stand in for it.
"""

from __future__ import annotations

import codecs
import dataclasses
import gc
import io
import itertools
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO
from xml.parsers import expat

from greenloop.core.model import PRIORITIES, Outcome, TestResult
from greenloop.core.shards import COLLECTED_PROPERTY, Collected, parse_collected

__all__ = ["NOTE_PROPERTY", "JUnitError", "JUnitReport", "iter_junit", "parse_junit"]

_CHUNK = 1 << 16
_MAX_DEPTH = 256
_MAX_WARNINGS = 50
#: The suite-level JUnit property whose value is a note about the run (JUnitReport.notes).
NOTE_PROPERTY = "greenloop.note"
_MAX_NOTES = 3
_MAX_COLLECTED = 64
# Characters XML 1.0 forbids. Test output is full of them (ANSI colour codes, NULs from
# crashed processes) and some writers do not escape them; replacing them keeps the
# results instead of failing the whole file.
_ILLEGAL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ILLEGAL_BYTES = bytes((*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)))
# A character reference to a character XML forbids (&#27; from an ANSI colour code, &#0;):
# expat refuses the whole file for one, so each becomes &#xFFFD; before expat sees it,
# just as the raw characters become U+FFFD. Only the illegal values match, spelled out
# digit by digit, so the ordinary &#10; in every pytest message costs nothing.
_ILLEGAL_HEX_REF = (
    r"[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F]|[dD][89a-fA-F][0-9a-fA-F]{2}|[fF]{3}[eEfF]"
    r"|(?:1[1-9a-fA-F]|[2-9a-fA-F][0-9a-fA-F])[0-9a-fA-F]{4}|[1-9a-fA-F][0-9a-fA-F]{6,})"
)
_ILLEGAL_DECIMAL_REF = (
    r"0*(?:[0-8]|1[124-9]|2[0-9]|3[01]|5529[6-9]|55[3-9][0-9]{2}|56[0-9]{3}|57[0-2][0-9]{2}"
    r"|573[0-3][0-9]|5734[0-3]|6553[45]|111411[2-9]|11141[2-9][0-9]|1114[2-9][0-9]{2}"
    r"|111[5-9][0-9]{3}|11[2-9][0-9]{4}|1[2-9][0-9]{5}|[2-9][0-9]{6}|[1-9][0-9]{7,})"
)
_ILLEGAL_REF = re.compile(f"&#(?:{_ILLEGAL_HEX_REF}|{_ILLEGAL_DECIMAL_REF});")
_ILLEGAL_REF_BYTES = re.compile(_ILLEGAL_REF.pattern.encode("ascii"))
# A reference cut by a chunk boundary waits for the next chunk (at most this long).
_MAX_REF = 64
# Markup longer than this is cut (see _TokenGuard): linear time, flat memory.
_MAX_TOKEN = 1 << 20
_XML_DECL_ENCODING = re.compile(
    rb"<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([A-Za-z][\w.:-]{0,40})[\"']"
)

# Result elements, ranked: a higher rank decides the outcome and supplies the message.
# Surefire writes <failure> plus <rerunFailure> per rerun when a test failed every time,
# and only <flakyFailure> children when it passed on a rerun.
_RESULT_RANK = {
    "failure": 4,
    "error": 4,
    "rerunFailure": 3,
    "rerunError": 3,
    "skipped": 2,
    "flakyFailure": 1,
    "flakyError": 1,
}
_OUTCOME = {
    "failure": Outcome.FAILED,
    "error": Outcome.ERROR,
    "rerunFailure": Outcome.FAILED,
    "rerunError": Outcome.ERROR,
    "skipped": Outcome.SKIPPED,
    "flakyFailure": Outcome.PASSED,
    "flakyError": Outcome.PASSED,
}
_OUTPUT_TAGS = frozenset(("system-out", "system-err"))
_FAILING_RANK = 3  # rerunFailure and up
_FLAKY_RANK = 1
_PASSED = Outcome.PASSED
_MAX_SECONDS = 1e9


class JUnitError(ValueError):
    """The file is not JUnit XML greenloop can read. The message names the file and,
    where there is one, the line and column."""


@dataclasses.dataclass(frozen=True, slots=True)
class JUnitReport:
    tests: tuple[TestResult, ...]
    warnings: tuple[str, ...] = ()
    not_kept: int = 0  # testcases read but not kept (parse_junit's ``keep``)
    # A suite-level ``greenloop.note`` property's values: what the report says about its
    # run (an index of a split from a listing that ran nothing says why: core/pod_listing).
    notes: tuple[str, ...] = ()
    # A suite-level ``greenloop.collected`` property: what a pytest shard of a whole-suite
    # run collected (the same-collection rule, core/shards.Collected); None when absent
    # or malformed (then the merge does not check it).
    collected: Collected | None = None


def parse_junit(
    source: bytes | BinaryIO,
    *,
    name: str | None = None,
    max_text: int = 4096,
    keep: Callable[[TestResult], bool] | None = None,
    keep_passed: bool = True,
) -> JUnitReport:
    """Read a whole report. ``source`` is the XML bytes or a binary stream the caller
    opened (the shell opens files: :func:`greenloop.local.files.open_regular`).

    ``keep``: only the results it accepts are kept (the others are counted in
    ``not_kept``), so a caller that needs the failures of a large report does not hold
    every passing test in memory. ``keep_passed=False`` does that for passing tests
    without building them at all (the cheapest way to read the failures of a report);
    their ids still count for telling duplicates apart, and their warnings are kept."""
    parser = _Parser(_source_name(source, name), max_text, keep_passed=keep_passed)
    if not keep_passed and keep is None:
        tests = tuple(parser.run(source))
        not_kept = parser.count - len(tests)
    elif keep is None:
        tests, not_kept = tuple(parser.run(source)), 0
    else:
        tests = tuple(test for test in parser.run(source) if keep(test))
        not_kept = parser.count - len(tests)
    return JUnitReport(
        tests, parser.final_warnings(), not_kept, tuple(parser.notes), parser.collected
    )


def iter_junit(
    source: bytes | BinaryIO,
    *,
    name: str | None = None,
    max_text: int = 4096,
) -> Iterator[TestResult]:
    """Yield testcases as they are read. Raises JUnitError when the file turns out to be
    malformed, possibly after yielding the testcases before the damage."""
    return _Parser(_source_name(source, name), max_text).run(source)


def _source_name(source: object, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>"
    stream_name = getattr(source, "name", None)
    return stream_name if isinstance(stream_name, str) else "<stream>"


class _Text(list[str]):
    """A text field that keeps only its first and last ``limit`` characters, so 50 MB of
    ``system-out`` costs a few kilobytes.

    The list's own ``append`` is expat's character-data handler while the element is
    open: no Python frame per callback. The parser calls ``trim`` after each chunk it
    feeds, which bounds the list to ``limit`` plus one chunk."""

    head: str | None = None  # the first ``limit`` characters, once there are more
    dropped = 0  # characters cut between the head and the kept tail

    def has_text(self) -> bool:
        return self.head is not None or any(self)

    def trim(self, limit: int) -> None:
        if len(self) == 1 and len(self[0]) <= limit:
            return
        text = "".join(self)
        if self.head is None and len(text) > limit:
            self.head = text[:limit]
            text = text[limit:]
        if len(text) > limit and self.head is not None:
            self.dropped += len(text) - limit
            text = text[-limit:]
        self[:] = (text,)

    def value(self, limit: int, head_share: float) -> str:
        """The text if it fits in ``limit``, else its head and tail with a marker between
        them, all within ``limit``; ``head_share`` of the room goes to the head."""
        self.trim(limit)
        tail = self[0] if self else ""
        head = self.head
        if head is None:
            return tail
        total = len(head) + self.dropped + len(tail)
        if not self.dropped:
            # Nothing cut yet: the kept tail may reach back into the head.
            head = tail = head + tail
        with_marker = 4 * len(_omitted(total)) <= limit
        room = limit - len(_omitted(total)) if with_marker else limit
        keep_head = int(room * head_share)
        keep_tail = min(room - keep_head, len(tail))
        marker = _omitted(total - keep_head - keep_tail) if with_marker else ""
        return head[:keep_head] + marker + tail[len(tail) - keep_tail :]


def _omitted(n: int) -> str:
    return f"\n… [{n:,} characters omitted] …\n"


class _Suite:
    __slots__ = ("depth", "held", "output")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.output: _Text | None = None
        self.held: list[TestResult] = []


class _Parser:
    def __init__(self, name: str, max_text: int, *, keep_passed: bool = True) -> None:
        if max_text < 1:
            raise ValueError(f"max_text must be at least 1, not {max_text}")
        self.name = name
        self.max_text = max_text
        self.keep_passed = keep_passed
        self.ready: list[TestResult] = []
        self.count = 0
        # Every id so far, to keep duplicates apart: a set, the biggest thing we keep.
        self.seen: set[str] = set()
        self.duplicates: dict[str, int] = {}
        self.warnings: list[str] = []
        self.notes: list[str] = []  # suite-level greenloop.note values (JUnitReport.notes)
        self.collected: Collected | None = None  # JUnitReport.collected: the first readable
        self.dropped_warnings = 0

        p = expat.ParserCreate()
        # One character-data callback per text run instead of one per line.
        p.buffer_text = True
        p.buffer_size = _CHUNK
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartDoctypeDeclHandler = self._refuse_doctype
        p.EntityDeclHandler = self._refuse_entity
        p.UnparsedEntityDeclHandler = self._refuse_unparsed_entity
        p.ExternalEntityRefHandler = self._refuse_external_entity
        self.expat = p
        self._trim_open_field = self._bind_handlers(p)

    # -- reading ---------------------------------------------------------------------

    def run(self, source: bytes | BinaryIO) -> Iterator[TestResult]:
        if isinstance(source, bytes | bytearray | memoryview):
            source = io.BytesIO(source)
        elif not callable(getattr(source, "read", None)):
            # The core opens no files: a path here is a caller's mistake, said at once.
            raise TypeError(
                f"{self.name}: expected the XML bytes or a binary stream the caller opened,"
                f" not {type(source).__name__}"
            )
        # Batches, flattened by C code: no generator frame to resume per testcase.
        return itertools.chain.from_iterable(self._read(source))

    def _read(self, stream: BinaryIO) -> Iterator[list[TestResult]]:
        """Feed the file to expat a chunk at a time; after each chunk, yield the
        testcases it completed."""
        chunk = self._read_chunk(stream)
        encoding = self._encoding(chunk)
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        utf8 = encoding in ("utf-8", "utf-8-sig")
        blank = True
        ready = self.ready
        carry: str | bytes = b""
        guard = _TokenGuard()
        fed = 0  # bytes expat has been given, counted as expat counts them (UTF-8)
        recent: list[str | bytes] = []  # the last chunks fed, enough to hold MAX_TOKEN
        while chunk:
            data: str | bytes
            if utf8 and chunk.isascii() and not decoder.getstate()[0]:
                # Plain ASCII is already valid UTF-8: expat can take the bytes as they
                # are, and a control character is a single byte we can look for cheaply.
                data = chunk
                if _has_control_bytes(chunk):
                    data = _ILLEGAL_CHARS.sub("\ufffd", chunk.decode("ascii"))
            else:
                data = self._decode(decoder, chunk)
                # In UTF-8 too a control character is a byte of its own, and a byte scan
                # is several times faster than the regex: run that only when needed.
                if not utf8 or _has_control_bytes(chunk) or "\ufffe" in data or "\uffff" in data:
                    data = _ILLEGAL_CHARS.sub("\ufffd", data)
            if carry:
                data = _joined(carry, data)
            data, carry = _without_illegal_refs(data)
            if blank:
                if isinstance(data, bytes):
                    blank = not data.lstrip(b" \t\r\n")
                else:
                    blank = not data.lstrip(" \t\r\n\ufeff")
            if guard.active:
                data = guard.filter(data)
            if data:
                self._feed(data, final=False)
                fed += len(data) if isinstance(data, bytes) else len(data.encode("utf-8"))
                recent.append(data)
                if len(recent) > _MAX_TOKEN // _CHUNK + 2:
                    del recent[0]
                pending = fed - self.expat.CurrentByteIndex
                if pending > _MAX_TOKEN and not guard.active and guard.start(recent, pending):
                    self._warn(
                        f"line {self.expat.CurrentLineNumber}: markup longer than"
                        f" {_MAX_TOKEN:,} bytes (an attribute, comment or tag) was cut there"
                    )
            if ready:
                # The handlers append to this very list: hand out a copy, empty it.
                yield ready.copy()
                ready.clear()
            chunk = self._read_chunk(stream)
        tail = _ILLEGAL_CHARS.sub("\ufffd", self._decode(decoder, b"", final=True))
        if carry:
            held = carry.decode("ascii") if isinstance(carry, bytes) else carry
            tail = _ILLEGAL_REF.sub("&#xFFFD;", held + tail)
        if blank and not tail.strip():
            raise JUnitError(f"{self.name}: empty file")
        self._feed(tail, final=True)
        yield ready.copy()
        ready.clear()

    def _decode(self, decoder: codecs.IncrementalDecoder, chunk: bytes, final: bool = False) -> str:
        try:
            return decoder.decode(chunk, final)
        except (UnicodeError, ValueError, TypeError) as err:
            raise JUnitError(f"{self.name}: cannot decode the file: {err}") from None

    def _read_chunk(self, stream: BinaryIO) -> bytes:
        try:
            chunk = stream.read(_CHUNK)
        except OSError as err:
            raise JUnitError(f"{self.name}: cannot read: {err.strerror or err}") from None
        if not isinstance(chunk, bytes):
            raise TypeError(f"{self.name}: expected a binary stream, read {type(chunk).__name__}")
        return chunk

    def _encoding(self, head: bytes) -> str:
        """The codec for the file: a BOM wins, then the XML declaration, then UTF-8.

        Decoding here (with replacement) rather than in expat lets a report with a few
        invalid bytes in captured output still yield its results."""
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            return "utf-32"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if head.startswith(b"<\x00"):
            return "utf-16-le"
        if head.startswith(b"\x00<"):
            return "utf-16-be"
        match = _XML_DECL_ENCODING.match(head)
        if not match:
            return "utf-8"
        declared = match.group(1).decode("ascii")
        try:
            info = codecs.lookup(declared)
        except LookupError:
            raise JUnitError(f"{self.name}: unknown encoding {declared!r}") from None
        if not getattr(info, "_is_text_encoding", True):
            raise JUnitError(f"{self.name}: {declared!r} is not a text encoding")
        if info.name.startswith(("utf-16", "utf-32")):
            # The declaration was readable as ASCII, so the bytes are not UTF-16/32.
            return "utf-8"
        # The codec must read the declaration it was named in: that refuses codecs that
        # are not for files (idna, punycode, undefined) and ones the bytes cannot be in
        # (an EBCDIC page named in an ASCII declaration).
        declaration = head[: match.end()]
        try:
            probe = codecs.decode(declaration, info.name, "replace")
        except (UnicodeError, ValueError, TypeError, LookupError):
            probe = None
        if probe != declaration.decode("ascii", "replace"):
            raise JUnitError(
                f"{self.name}: encoding {declared!r} cannot be used for XML (its own"
                " declaration does not read back); write the file as UTF-8"
            )
        return info.name

    def _feed(self, text: str | bytes, *, final: bool) -> None:
        # The collector paused while expat runs the handlers: they allocate a result and
        # its strings per testcase, none in a cycle, and every collection would walk all
        # the results kept so far (1M testcases: 27% of the parse).
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            self.expat.Parse(text, final)
            self._trim_open_field()
        except expat.ExpatError as err:
            reason = expat.ErrorString(err.code) or str(err)
            hint = "file truncated? " if final else ""
            raise JUnitError(
                f"{self.name}: line {err.lineno}, column {err.offset + 1}: {reason} "
                f"({hint}{self._read_so_far()})"
            ) from None
        finally:
            if paused:
                gc.enable()

    def _read_so_far(self) -> str:
        n = self.count
        return f"{n} testcase{'' if n == 1 else 's'} read before the error"

    def _fail(self, reason: str) -> JUnitError:
        p = self.expat
        return JUnitError(
            f"{self.name}: line {p.CurrentLineNumber}, column {p.CurrentColumnNumber + 1}: {reason}"
        )

    # -- security ----------------------------------------------------------------------

    def _refuse_doctype(self, *_: object) -> None:
        raise self._fail("DTDs are not allowed in JUnit XML (<!DOCTYPE> refused)")

    def _refuse_entity(self, *_: object) -> None:
        raise self._fail("entity declarations are not allowed")

    def _refuse_unparsed_entity(self, *_: object) -> None:
        raise self._fail("entity declarations are not allowed")

    def _refuse_external_entity(self, *_: object) -> int:
        raise self._fail("external entities are not allowed")

    # -- elements ----------------------------------------------------------------------

    # -- elements ----------------------------------------------------------------------

    def _bind_handlers(self, p: expat.XMLParserType) -> Callable[[], None]:
        """Install the element handlers; return the function that trims the open field.

        The handlers are closures over local state rather than methods: they run a few
        hundred thousand times for a large report, and closure variables are the
        cheapest state CPython offers. Only one testcase is open at a time, so its fields
        are plain variables too. ``start`` hands the elements inside a testcase to
        ``start_in_case`` (results to ``start_result``): one call more per such element,
        not measurable. ``close_case`` stays one body on purpose: it runs once per
        testcase, and with its id and time parts as helpers (two calls more per testcase)
        the text-heavy bench read up to 1.18x slower."""
        limit = self.max_text
        ready = self.ready
        seen = self.seen
        keep_passed = self.keep_passed
        make_result = _RESULT_FACTORY
        suites: list[_Suite] = []
        depth = 0
        # The text field being read (a failure's text, system-out, a property), if any,
        # and the depth of its element.
        sink: _Text | None = None
        sink_depth = -1
        property_name: str | None = None
        # The open testcase (case_depth 0: none).
        case_depth = 0
        case_attrs: dict[str, str] = {}
        props: dict[str, str] | None = None
        rank = 0
        result_tag: str | None = None
        result_type = ""
        message: str | None = None
        details: _Text | None = None
        output: _Text | None = None
        flaky = False

        def start_root(tag: str, attrs: dict[str, str]) -> None:
            if tag not in ("testsuites", "testsuite"):
                raise JUnitError(
                    f"{self.name}: root element <{tag}> is not JUnit "
                    "(expected <testsuites> or <testsuite>)"
                )
            p.StartElementHandler = start
            start(tag, attrs)

        def start(tag: str, attrs: dict[str, str]) -> None:
            nonlocal depth, sink, sink_depth, case_depth, case_attrs, props
            nonlocal rank, result_tag, result_type, message, details, output, flaky
            depth += 1
            if sink is not None:
                # Markup inside a text field (Surefire's <stackTrace> in <flakyFailure>)
                # is part of the field's text, as in ElementTree's itertext().
                if depth > _MAX_DEPTH:
                    raise self._fail(f"elements nested deeper than {_MAX_DEPTH} levels")
                return
            if case_depth:
                start_in_case(tag, attrs)
            elif tag == "testcase":
                case_depth = depth
                case_attrs = attrs
                props = None
                rank = 0
                result_tag = message = None
                result_type = ""
                details = output = None
                flaky = False
            elif depth > _MAX_DEPTH:
                raise self._fail(f"elements nested deeper than {_MAX_DEPTH} levels")
            elif tag == "testsuite":
                suites.append(_Suite(depth))
            elif tag == "property" and attrs.get("name") == NOTE_PROPERTY:
                # A suite's own note (an idle shard's reason); a testcase's properties
                # are read by start_in_case. At most a few, each cut like any text.
                if suites and len(self.notes) < _MAX_NOTES:
                    self.notes.append(attrs.get("value", "")[:limit])
            elif tag == "property" and attrs.get("name") == COLLECTED_PROPERTY:
                # Only a short value can be one (parse_collected); the first readable counts.
                value = attrs.get("value", "")
                if suites and self.collected is None and len(value) <= _MAX_COLLECTED:
                    self.collected = parse_collected(value)
            elif tag in _OUTPUT_TAGS and suites and suites[-1].depth == depth - 1:
                suite = suites[-1]
                if suite.output is None:
                    suite.output = _Text()
                elif suite.output.has_text():
                    suite.output.append("\n")
                open_field(suite.output)

        def start_in_case(tag: str, attrs: dict[str, str]) -> None:
            """An element inside the open testcase: its output, a result, a property."""
            nonlocal property_name, props, output
            if depth == case_depth + 1:
                if tag in _OUTPUT_TAGS:
                    if output is None:
                        output = _Text()
                    elif output.has_text():
                        output.append("\n")
                    open_field(output)
                else:
                    start_result(tag, attrs)
            elif depth == case_depth + 2 and tag == "property":
                name = attrs.get("name", "")
                if props is None:
                    props = {}
                value = attrs.get("value")
                if value is not None:
                    props[name] = value[:limit]
                    return
                # Some writers put the value in the element's text instead.
                property_name = name
                open_field(_Text())
            elif depth > _MAX_DEPTH:
                raise self._fail(f"elements nested deeper than {_MAX_DEPTH} levels")

        def start_result(tag: str, attrs: dict[str, str]) -> None:
            """<failure>, <error>, <skipped> and Surefire's reruns: the highest rank wins."""
            nonlocal rank, result_tag, result_type, message, details, flaky
            tag_rank = _RESULT_RANK.get(tag)
            if tag_rank is None:
                return
            if tag_rank <= 1:
                flaky = True
            if tag_rank < rank:
                return
            if tag_rank == rank and details is not None:
                # A second failure of the same weight (pytest: the call failed, then
                # teardown errored) adds its text to the details.
                details.append("\n\n")
            else:
                rank = tag_rank
                result_tag = tag
                result_type = attrs.get("type", "")
                text = attrs.get("message")
                message = text[:limit] if text is not None else None
                details = _Text()
            open_field(details)

        def open_field(field: _Text) -> None:
            """From here to this element's end, its text goes to ``field``."""
            nonlocal sink, sink_depth
            sink = field
            sink_depth = depth
            p.CharacterDataHandler = field.append

        def end(tag: str) -> None:
            nonlocal depth, sink, sink_depth, property_name, case_depth
            closing = depth
            depth -= 1
            if closing == sink_depth:
                # Text outside the fields we keep (indentation, mostly) never reaches
                # Python: no handler at all between fields.
                p.CharacterDataHandler = None
                if property_name is not None and props is not None and sink is not None:
                    props[property_name] = sink.value(limit, 1.0).strip()
                    property_name = None
                sink = None
                sink_depth = -1
            elif closing == case_depth:
                case_depth = 0
                close_case()
            elif not case_depth and suites and closing == suites[-1].depth:
                self._close_suite(suites.pop())

        def close_case() -> None:
            self.count += 1
            attrs = case_attrs
            name = attrs.get("name", "")
            classname = attrs.get("classname") or attrs.get("class") or ""
            test_id = ""
            priority = None
            depends_on: tuple[str, ...] = ()
            if props is not None:
                test_id = props.get("greenloop.id", "").strip()
                if "greenloop.priority" in props:
                    priority = self._priority(props["greenloop.priority"], name)
                depends_on = _split_ids(props.get("greenloop.depends_on", ""))
            if not test_id:
                test_id = f"{classname}::{name}" if classname else name
                if not test_id:
                    test_id = "<unnamed>"
                    self._warn(f"testcase #{self.count} has neither name nor classname")
            if test_id in seen:
                test_id = self._rename_duplicate(test_id)
            else:
                seen.add(test_id)

            raw_time = attrs.get("time")
            try:
                seconds = float(raw_time) if raw_time else 0.0
            except ValueError:
                seconds = -1.0
            if not 0.0 <= seconds <= _MAX_SECONDS:  # also NaN
                seconds = self._seconds(raw_time or "", test_id)

            if result_tag is None:
                if not keep_passed:
                    return
                outcome = _PASSED
                text = trace = ""
            elif not keep_passed and rank == _FLAKY_RANK:
                return  # passed on a rerun
            else:
                outcome = _OUTCOME[result_tag]
                trace = details.value(limit, 1 / 3) if details is not None else ""
                text = message if message is not None else _first_line(trace) or result_type
            if output is None:
                out = ""
            elif output.head is None and len(output) == 1 and len(output[0]) <= limit:
                out = output[0]  # the usual case, without two method calls
            else:
                out = output.value(limit, 0.0)

            result = make_result(
                test_id,
                name,
                classname,
                outcome,
                text,
                trace,
                out,
                seconds,
                priority,
                depends_on,
                flaky and rank == _FLAKY_RANK,
                props if props is not None else {},
            )
            # rank, not outcome: hashing an Enum member runs Python code.
            if not out and rank >= _FAILING_RANK and suites:
                suites[-1].held.append(result)
            else:
                ready.append(result)

        def trim_open_field() -> None:
            if sink is not None:
                sink.trim(limit)

        p.StartElementHandler = start_root
        p.EndElementHandler = end
        return trim_open_field

    # -- results -----------------------------------------------------------------------

    def _close_suite(self, suite: _Suite) -> None:
        if not suite.held:
            return
        output = suite.output.value(self.max_text, 0.0) if suite.output is not None else ""
        for result in suite.held:
            self.ready.append(dataclasses.replace(result, output=output) if output else result)

    def _rename_duplicate(self, test_id: str) -> str:
        n = self.duplicates.get(test_id, 1) + 1
        while f"{test_id}[{n}]" in self.seen:
            n += 1
        self.duplicates[test_id] = n
        renamed = f"{test_id}[{n}]"
        self.seen.add(renamed)
        return renamed

    def _seconds(self, raw: str, test_id: str) -> float:
        """The slow path for ``time`` attributes float() refused or found out of range."""
        if not raw.strip():
            return 0.0
        value = _float_with_commas(raw)
        if value is None or not 0.0 <= value <= _MAX_SECONDS:
            self._warn(f"{test_id}: time {raw[:40]!r} is not a number of seconds; using 0")
            return 0.0
        return value

    def _priority(self, raw: str, test_id: str) -> str | None:
        value = raw.strip().upper()
        if value.isdigit():
            value = f"P{value}"
        if value in PRIORITIES:
            return value
        self._warn(f"{test_id}: greenloop.priority {raw[:40]!r} is not P1..P9; ignored")
        return None

    def _warn(self, message: str) -> None:
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(f"{self.name}: {message}")
        else:
            self.dropped_warnings += 1

    def final_warnings(self) -> tuple[str, ...]:
        warnings = list(self.warnings)
        for test_id, n in list(self.duplicates.items())[:_MAX_WARNINGS]:
            renamed = f"{test_id}[2]" if n == 2 else f"{test_id}[2] … {test_id}[{n}]"
            warnings.append(
                f"{self.name}: test id {test_id!r} appears {n} times; kept apart as {renamed}"
            )
        dropped = self.dropped_warnings + max(0, len(self.duplicates) - _MAX_WARNINGS)
        if dropped:
            warnings.append(f"{self.name}: {dropped} more warnings not shown")
        return tuple(warnings)


def _result_factory() -> Callable[..., TestResult]:
    """TestResult's constructor, or an equivalent 2.5x faster one (positional arguments).

    A frozen dataclass's ``__init__`` sets every field through ``object.__setattr__``;
    for a 100,000-testcase report that was a sixth of the parse time. Setting the slots
    directly builds an identical object. This is used only while TestResult is exactly
    the slotted, validation-free class it was written against; should the model change,
    the real constructor is used and only speed is lost."""
    fields = tuple(f.name for f in dataclasses.fields(TestResult))
    expected = (
        "id",
        "name",
        "classname",
        "outcome",
        "message",
        "details",
        "output",
        "time",
        "priority",
        "depends_on",
        "flaky",
        "properties",
    )
    plain = "__post_init__" in vars(TestResult) or "__dict__" in dir(TestResult)
    if fields != expected or plain or "__slots__" not in vars(TestResult):
        return TestResult
    setters = [getattr(TestResult, field).__set__ for field in fields]
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11 = setters
    new = object.__new__

    def make(
        test_id: str,
        name: str,
        classname: str,
        outcome: Outcome,
        message: str,
        details: str,
        output: str,
        time: float,
        priority: str | None,
        depends_on: tuple[str, ...],
        flaky: bool,
        properties: dict[str, str],
    ) -> TestResult:
        result: TestResult = new(TestResult)
        s0(result, test_id)
        s1(result, name)
        s2(result, classname)
        s3(result, outcome)
        s4(result, message)
        s5(result, details)
        s6(result, output)
        s7(result, time)
        s8(result, priority)
        s9(result, depends_on)
        s10(result, flaky)
        s11(result, properties)
        return result

    return make


_RESULT_FACTORY = _result_factory()


class _TokenGuard:
    """Cuts a markup token (a start tag with its attributes, a comment, a processing
    instruction) once it is longer than MAX_TOKEN, before expat sees the rest.

    expat 2.5 (as bundled with Python 3.11) parses a token again from its start each time
    a chunk arrives inside it: a 20 MB attribute took 9.5 s and 85 MB. Text and CDATA are
    streamed, so they need nothing. The parser notices a long token because expat's
    position stays at its start; from there the guard drops what follows up to the
    token's end and hands expat a well-formed end: the open attribute value closed (the
    value kept is its first MAX_TOKEN bytes, far more than ``max_text``), later
    attributes dropped, ``>`` or ``/>`` kept; a comment or PI's terminator kept."""

    def __init__(self) -> None:
        self.active = False
        self.kind = ""  # "tag", "comment" or "pi"
        self.quote = ""  # inside a tag: the quote of the value being dropped, if any
        self.closing = ""  # what expat needs before the tag's ">" to stay well-formed
        self.before = ""  # the last characters looked at (a terminator may straddle chunks)

    def start(self, recent: list[str | bytes], pending: int) -> bool:
        whole = b"".join(c if isinstance(c, bytes) else c.encode("utf-8") for c in recent)
        token = whole[-pending:].decode("utf-8", "replace")
        if token.startswith("<!--"):
            self.kind, self.before = "comment", token[-2:]
        elif token.startswith("<?"):
            self.kind, self.before = "pi", token[-1:]
        elif token.startswith("<") and not token.startswith("<!"):
            self.kind = "tag"
            quote, last_close = "", 0
            for index, char in enumerate(token):
                if char in "\"'" and (not quote or char == quote):
                    quote = "" if quote else char
                    last_close = index + 1 if not quote else last_close
            self.quote = quote
            self.closing = quote or _attribute_end(token, last_close)
            self.before = token[-1:]
        else:
            return False
        self.active = True
        return True

    def filter(self, data: str | bytes) -> str | bytes:
        """The part of ``data`` expat should see: nothing until the token ends."""
        text = data.decode("ascii") if isinstance(data, bytes) else data
        if self.kind == "tag":
            return self._in_tag(text)
        terminator = "-->" if self.kind == "comment" else "?>"
        joined = self.before + text
        end = joined.find(terminator)
        if end == -1:
            self.before = joined[-(len(terminator) - 1) :]
            return ""
        self.active = False
        return terminator + joined[end + len(terminator) :]

    def _in_tag(self, text: str) -> str:
        pos = 0
        while True:
            if self.quote:
                end = text.find(self.quote, pos)
                if end == -1:
                    self.before = text[-1:] or self.before
                    return ""
                self.quote = ""
                pos = end + 1
                continue
            found = _TAG_STOP.search(text, pos)
            if found is None:
                self.before = text[-1:] or self.before
                return ""
            char = found.group()
            if char != ">":
                self.quote = char
                pos = found.end()
                continue
            at = found.start()
            previous = text[at - 1] if at else self.before
            self.active = False
            return self.closing + ("/" if previous == "/" else "") + text[at:]


_TAG_STOP = re.compile("[\"'>]")


def _attribute_end(token: str, last_close: int) -> str:
    """What ends the attribute a cut start tag was in, between values: nothing, a value,
    or (for a name cut short, which must not repeat another) a suffix and a value."""
    body = token[last_close:] if last_close else token[1:]
    if not last_close:
        _, _, body = body.partition(" ")
        if not body and not token[-1:].isspace():
            return ""  # still in the element's name
    stripped = body.strip()
    if not stripped:
        return ""
    if stripped.endswith("="):
        return '""'
    if body[-1:].isspace():
        return '=""'
    return '-cut=""'


def _joined(first: str | bytes, second: str | bytes) -> str | bytes:
    if isinstance(first, bytes) and isinstance(second, bytes):
        return first + second
    # A held reference is ASCII, and so is a chunk fed as bytes.
    as_text = [
        part.decode("ascii") if isinstance(part, bytes) else part for part in (first, second)
    ]
    return as_text[0] + as_text[1]


def _without_illegal_refs(data: str | bytes) -> tuple[str | bytes, str | bytes]:
    """(data with illegal character references replaced, a reference cut at its end held
    back for the next chunk)."""
    # "#" first: a one-byte search is a memchr, while looking for "&#" in text full of
    # "&lt;" and "&gt;" took a third of a millisecond a chunk.
    if isinstance(data, bytes):
        if (b"#" not in data or b"&#" not in data) and data[-1:] != b"&":
            return data, b""
        cut = data.rfind(b"&", max(0, len(data) - _MAX_REF))
        held = b""
        if cut != -1 and b";" not in data[cut:]:
            data, held = data[:cut], data[cut:]
        return _ILLEGAL_REF_BYTES.sub(b"&#xFFFD;", data), held
    if ("#" not in data or "&#" not in data) and data[-1:] != "&":
        return data, ""
    cut = data.rfind("&", max(0, len(data) - _MAX_REF))
    held_text = ""
    if cut != -1 and ";" not in data[cut:]:
        data, held_text = data[:cut], data[cut:]
    return _ILLEGAL_REF.sub("&#xFFFD;", data), held_text


def _has_control_bytes(chunk: bytes) -> bool:
    """Whether ASCII or UTF-8 bytes hold a control character XML forbids."""
    return len(chunk.translate(None, _ILLEGAL_BYTES)) != len(chunk)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line
    return ""


def _split_ids(raw: str) -> tuple[str, ...]:
    return tuple(part for part in (p.strip() for p in raw.split(",")) if part)


def _float_with_commas(raw: str) -> float | None:
    """Times some writers produce: "1,234.5" (grouping, Surefire) or "0,25" (a decimal
    comma from the locale). One comma and no dot is read as a decimal comma."""
    text = raw.strip()
    if "," not in text:
        return None
    grouping = "." in text or text.count(",") > 1
    text = text.replace(",", "" if grouping else ".")
    try:
        return float(text)
    except ValueError:
        return None
