"""Text from outside (test ids, failure messages, suite output, webhook bodies) made safe
to print: a terminal must show it, never obey it.

``\\e[2J\\e]0;pwned\\a`` in a webhook body cleared the screen and retitled the window;
a test id carrying ``&#10;`` printed a forged summary line. Every C0 and C1 control
character (newline included: one message is one line), DEL, and the Unicode bidi
controls that reorder what a reader sees are shown as escapes instead.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\x1b": "\\e"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape; tabs stay."""
    if text.isprintable():
        return text
    return _UNSAFE.sub(_escape, text)
