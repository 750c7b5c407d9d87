"""Outside text made safe to put in the Markdown report.

Test ids, evidence and suite output come from the suites, so anything may be in them: a
``|`` or a newline would break a table, a backtick would end a code span early, ``<img
onerror=...>`` would be raw HTML wherever the report is rendered, and a newline (``&#10;``
in the XML) would forge a line of the report. Every helper here returns one line: control
characters (C0, C1) and bidirectional overrides are shown as escapes (``\\n``, ``\\x1b``,
``\\u202e``), never passed through.
"""

from __future__ import annotations

import re

__all__ = ["code", "text", "visible"]

_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BACKTICKS = re.compile("`+")
# Raw HTML and entity references all start with "<" or "&"; a ">" in the middle of a line
# is plain text, and shown as such it keeps "GET /health -> HTTP 200" readable where the
# report is read as text (kubectl get cm ... -o jsonpath).
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;"})


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def visible(value: str) -> str:
    """The text on one line, control characters and bidi overrides shown as escapes."""
    # isprintable() is False for every character _INVISIBLE finds (and a few more).
    return value if value.isprintable() else _INVISIBLE.sub(_escape, value)


def code(value: str, *, cell: bool = False, empty: str = "(no evidence)") -> str:
    """An inline code span showing ``value`` exactly (HTML and Markdown inside a code span
    are not interpreted): the fence is one backtick longer than the longest run inside.
    ``cell``: inside a table row, where GFM splits on ``|`` even within code spans."""
    if not value:
        return empty
    if value.isprintable() and "`" not in value and value[0] != " " and value[-1] != " ":
        # The common case, and the fast one: nothing to escape or pad.
        return f"`{value}`".replace("|", "\\|") if cell and "|" in value else f"`{value}`"
    value = visible(value)
    longest = max((len(m) for m in _BACKTICKS.findall(value)), default=0)
    fence = "`" * (longest + 1)
    # A space on each side keeps a leading or trailing backtick off the fence; CommonMark
    # strips one such space again.
    pad = " " if value[0] in "` " or value[-1] in "` " else ""
    span = f"{fence}{pad}{value}{pad}{fence}"
    return span.replace("|", "\\|") if cell else span


def text(value: str, *, cell: bool = False) -> str:
    """Plain text on one line, for the middle of a line (at its start, ">" would open a
    quote): ``<`` and ``&`` as entities; ``cell`` escapes ``|`` too."""
    escaped = visible(value)
    if "&" in escaped or "<" in escaped:
        escaped = escaped.translate(_HTML)
    return escaped.replace("|", "\\|") if cell else escaped
