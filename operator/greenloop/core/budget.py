"""What one object's state may hold, and which refusals of its status are final
(docs/design.md §5, "Budget"). Pure: the engine and the operator's write path ask here.

The operator keeps the engine state in the object (`status.engine`), and an object is
stored whole in etcd: past about 1.5 MiB (etcd's request limit; the API server's own
client stops at 2 MiB) every write of it fails. Greenloop does not let a round grow
into that wall and then retry against it: a state over the budget below ends the round
`Stalled`/`TooManyTests` naming the limit, with the test table dropped so the stall
itself can be written, and a status the API server still refuses (a spec that leaves
too little room, a status the CRD's schema refuses) ends it `Stalled`/`StatusRejected`.
Either sticks until a new round (the rerun annotation, a spec change).
"""

from __future__ import annotations

__all__ = ["MAX_STATE_BYTES", "MAX_TESTS", "status_refusal", "too_many_tests"]

#: Tests one object's state holds: the engine keeps a record per test (what to rerun,
#: what the verdict counts), and decoding 100k records takes seconds of a worker's CPU.
MAX_TESTS = 100_000
#: Bytes of `status.engine` as JSON (the test table compressed, as written). Leaves half
#: a MiB of etcd's 1.5 MiB for the spec, the status a person reads and metadata.
MAX_STATE_BYTES = 1 << 20


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.0f} KiB"


def too_many_tests(tests: int, state_bytes: int = 0) -> str:
    """Rule `state_budget`: why a state of ``tests`` records taking ``state_bytes`` as
    JSON (0: not measured yet) is more than an object holds, naming the limit; "" when
    it fits."""
    if tests > MAX_TESTS:
        return (
            f"{tests:,} tests reported; an object's state holds at most {MAX_TESTS:,}: "
            "split the suites across objects"
        )
    if state_bytes > MAX_STATE_BYTES:
        return (
            f"{tests:,} tests take {_size(state_bytes)} in status.engine; an object's state "
            f"holds at most {_size(MAX_STATE_BYTES)}: split the suites across objects"
        )
    return ""


#: Words of the API server (or etcd behind it) saying an object is too large. etcd says
#: "etcdserver: request is too large"; the API server's gRPC client says
#: "ResourceExhausted ... larger than max" before etcd sees the request.
_TOO_LARGE = ("request is too large", "resourceexhausted", "larger than max")
#: Codes a repeated write cannot change: a malformed or oversized request, a status the
#: schema refuses.
_FINAL = {400: "Bad Request", 413: "Request Entity Too Large", 422: "Invalid"}
MAX_REASON = 300


def status_refusal(code: int, message: str) -> str:
    """Rule `status_refused`: the condition message when the API server's answer
    ``code``/``message`` to a status write is final (writing the same again would be
    refused again), "" when it may pass next time (a 409, a 5xx of a server that is
    busy or restarting, a 429)."""
    text = " ".join(message.split())
    too_large = any(word in text.lower() for word in _TOO_LARGE)
    if code not in _FINAL and not (code >= 500 and too_large):
        return ""
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 3] + "..."
    what = "too large" if too_large or code == 413 else "refused"
    return f"the API server refused the status as {what} (HTTP {code}: {text})"
