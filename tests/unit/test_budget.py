"""What an object's state may hold and which refusals of its status are final
(``core/budget.py``, docs/design.md §5). Rules: ``too_many_tests``, ``status_refusal``."""

from __future__ import annotations

import pytest

from greenloop.core.budget import MAX_STATE_BYTES, MAX_TESTS, status_refusal, too_many_tests


@pytest.mark.parametrize(
    "tests, size, says",
    [
        (MAX_TESTS, MAX_STATE_BYTES, ""),
        (MAX_TESTS + 1, 0, f"{MAX_TESTS + 1:,} tests reported; an object's state holds at most"),
        (81_000, 2_266_290, "81,000 tests take 2.2 MiB in status.engine; an object's state"
         " holds at most 1.0 MiB"),
    ],
)  # fmt: skip
def test_a_state_over_the_budget_is_told_naming_the_limit(tests: int, size: int, says: str) -> None:
    why = too_many_tests(tests, size)
    assert why.startswith(says) if says else why == ""


REFUSED = "the API server refused the status as "
ETCD = "etcdserver: request is too large"
GRPC = (
    "rpc error: code = ResourceExhausted desc = trying to send message larger than max "
    "(2266290 vs. 2097152)"
)  # what this repository's control plane answered for 3 x 27,000 tests


@pytest.mark.parametrize(
    "code, message, says",
    [
        (500, ETCD, f"too large (HTTP 500: {ETCD})"),
        (500, GRPC, "too large (HTTP 500: rpc error"),
        (413, "Request entity too large: limit is 3145728", "too large (HTTP 413"),
        (422, "status.failingTests: Too many: 51: must have at most 50 items", "refused (HTTP 422"),
        (400, "the body of the request was in an unknown format", "refused (HTTP 400"),
        # May pass next time: retried with backoff, as before.
        (500, "Internal error occurred: etcdserver: leader changed", ""),
        (503, "the server is currently unable to handle the request", ""),
        (429, "too many requests", ""),
        (409, "the object has been modified", ""),
        (403, "forbidden", ""),
    ],
)  # fmt: skip
def test_a_refusal_is_final_only_when_writing_again_cannot_pass(
    code: int, message: str, says: str
) -> None:
    why = status_refusal(code, message)
    assert why.startswith(REFUSED + says) if says else why == ""


def test_the_refusal_quotes_a_bounded_one_line_reason() -> None:
    why = status_refusal(422, "line one\nline two " + "x" * 5000)
    assert "\n" not in why and len(why) < 400 and why.endswith("...)")
