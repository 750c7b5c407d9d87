"""printable(): outside text shown, never obeyed, by a terminal."""

from __future__ import annotations

import pytest

from greenloop.local.terminal import printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, ünïcode", "plain text, ünïcode"),
        ("tab\tstays", "tab\tstays"),
        ("\x1b[2J\x1b]0;pwned\x07", "\\e[2J\\e]0;pwned\\x07"),
        ("forged\nline\r", "forged\\nline\\r"),
        ("c1 \x9b31m \x85", "c1 \\x9b31m \\x85"),
        ("del \x7f nul \x00", "del \\x7f nul \\x00"),
        (
            "bidi \u202eevil\u202c \u2066x\u2069 \u200f",
            "bidi \\u202eevil\\u202c \\u2066x\\u2069 \\u200f",
        ),
    ],
)
def test_control_characters_are_shown_as_escapes(raw: str, shown: str) -> None:
    assert printable(raw) == shown
