"""`greenloop operator --liveness URL`: refused at once, naming why, when kopf could not
serve it (kopf itself finds out only once the operator runs, with a traceback)."""

from __future__ import annotations

import pytest

from greenloop.cli import build_parser, liveness_problem


@pytest.mark.parametrize(
    "url",
    ["http://0.0.0.0:8082/healthz", "http://127.0.0.1:9/", "http://[::]:8082/live"],
)
def test_an_http_url_with_a_port_and_a_path_is_served(url: str) -> None:
    assert liveness_problem(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://0.0.0.0:8082/healthz", "http:// only"),
        ("0.0.0.0:8082/healthz", "http:// only"),
        ("http://0.0.0.0/healthz", "needs a port"),
        ("http://0.0.0.0:8082", "needs a path"),
        ("http://0.0.0.0:99999/healthz", "out of range"),
        ("http://0.0.0.0:port/healthz", "could not be cast to integer"),
    ],
)
def test_a_url_kopf_cannot_serve_is_named(url: str, why: str) -> None:
    problem = liveness_problem(url)
    assert problem is not None and why in problem, problem


def test_the_flag_is_off_unless_given() -> None:
    parser = build_parser()
    assert parser.parse_args(["operator"]).liveness == ""
    given = parser.parse_args(["operator", "--liveness=http://0.0.0.0:8082/healthz"])
    assert given.liveness == "http://0.0.0.0:8082/healthz"
