"""Secret values never reach a message (core/secrets.py): masking an outside error's text,
refusing a header value HTTP cannot carry without quoting it."""

from __future__ import annotations

import pytest

from greenloop.core.secrets import header_refusal, masked

SECRET = "hunter2-s3cr3t\n"


@pytest.mark.parametrize(
    ("text", "secrets", "want"),
    [
        ("Illegal header value b'hunter2-s3cr3t\\n'", [SECRET], "Illegal header value b'***'"),
        ("sent hunter2-s3cr3t to x", [SECRET], "sent *** to x"),
        ("value 'line-one\\nline-two'", ["line-one\nline-two"], "value '***'"),
        ("got line-one only", ["line-one\nline-two"], "got *** only"),
        ("b'caf\\xc3\\xa9!'", ["café!"], "b'***'"),
        ("nothing secret here", [SECRET], "nothing secret here"),
        ("empty values mask nothing", ["", "  "], "empty values mask nothing"),
        ("tok tokentail", ["tok", "tokentail"], "*** ***"),
        ("a b", ["a\nb"], "a b"),  # lines too short to mask on their own
    ],
)
def test_masked_hides_each_value_in_its_obvious_forms(
    text: str, secrets: list[str], want: str
) -> None:
    assert masked(text, secrets) == want


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("hunter2\n", "line break"),
        ("a\r\nInjected: yes", "line break"),
        ("tab\there", "not printable ASCII"),
        ("café", "not printable ASCII"),
        ("nul\x00", "not printable ASCII"),
    ],
)
def test_a_header_value_http_cannot_carry_is_refused_without_quoting_it(
    value: str, why: str
) -> None:
    got = header_refusal("Authorization", value, "Secret ta/db-creds")
    assert got is not None
    assert why in got and "'Authorization'" in got and "Secret ta/db-creds" in got
    assert value.strip() not in got


def test_a_printable_header_value_is_sent() -> None:
    assert header_refusal("Authorization", "Bearer abc.def", "env DEPLOY_TOKEN") is None
