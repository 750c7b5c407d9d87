"""The outbound allow policy (core/outbound.py): which webhook and health URLs greenloop
may call, per mode, and what of an answer a message keeps."""

from __future__ import annotations

import pytest

from greenloop.core.outbound import (
    LOCAL_DEFAULT,
    address_refusal,
    answer_summary,
    host_of,
    local_policy,
    operator_policy,
    refusal,
)

OPERATOR = operator_policy()
WITH_CIDRS = operator_policy(cluster_cidrs=["10.244.0.0/16", "10.96.0.0/12"])

# (case, url, resolved addresses, refused because ... or None)
OPERATOR_CASES: list[tuple[str, str, list[str], str | None]] = [
    ("a public address", "https://ci.example.com/hook", ["93.184.216.34"], None),
    ("loopback", "http://127.0.0.1:8080/", ["127.0.0.1"], "loopback"),
    ("loopback anywhere in 127/8", "http://127.9.9.9/", ["127.9.9.9"], "loopback"),
    ("IPv6 loopback", "http://[::1]/", ["::1"], "loopback"),
    ("0.0.0.0 connects to the host itself", "http://0.0.0.0:2379/", ["0.0.0.0"], "loopback"),
    ("IPv4-mapped loopback", "http://[::ffff:127.0.0.1]/", ["::ffff:127.0.0.1"], "loopback"),
    ("link-local", "http://169.254.1.1/", ["169.254.1.1"], "link-local"),
    ("IPv6 link-local with a zone", "http://x.example/", ["fe80::1%eth0"], "link-local"),
    ("the metadata address", "http://169.254.169.254/latest/", ["169.254.169.254"], "metadata"),
    ("the metadata name", "http://metadata.google.internal/", ["169.254.169.254"], "metadata"),
    ("a name resolving to loopback", "http://evil.example/", ["127.0.0.1"], "loopback"),
    ("one bad address among good ones", "http://x.example/", ["93.184.216.34", "10.0.0.1"],
     "private"),
    ("private, no cluster CIDR given", "http://10.1.2.3:2379/", ["10.1.2.3"], "private"),
    ("*.svc", "http://etcd.kube-system.svc/", ["93.184.216.34"], "cluster-internal name"),
    ("*.cluster.local", "http://a.b.svc.cluster.local/", ["93.184.216.34"],
     "cluster-internal name"),
    ("a name without a dot", "http://etcd:2379/", ["93.184.216.34"], "cluster-internal name"),
    ("localhost", "http://localhost/", ["127.0.0.1"], "cluster-internal name"),
    ("a trailing dot and capitals", "http://ETCD.kube-system.SVC./", ["93.184.216.34"],
     "cluster-internal name"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("url", "addresses", "why"),
    [c[1:] for c in OPERATOR_CASES],
    ids=[c[0] for c in OPERATOR_CASES],
)
def test_the_operator_default_denies_internal_addresses(
    url: str, addresses: list[str], why: str | None
) -> None:
    got = refusal(OPERATOR, "target.webhook.url", url, addresses)
    if why is None:
        assert got is None
    else:
        assert got is not None
        assert why in got
        assert got.startswith("target.webhook.url refused by the operator's outbound policy")
        assert "--allow-outbound" in got


@pytest.mark.parametrize(
    ("policy", "address", "allowed"),
    [
        (WITH_CIDRS, "10.244.3.4", False),  # a pod
        (WITH_CIDRS, "10.100.0.1", False),  # a service
        (WITH_CIDRS, "10.50.0.1", True),  # private, but not the cluster's: a CI server
        (operator_policy(allow=["10.1.2.3"]), "10.1.2.3", True),
        (operator_policy(allow=["10.1.2.0/24"]), "10.1.2.200", True),
        (operator_policy(allow=["10.1.2.0/24"]), "10.1.3.1", False),
        (operator_policy(allow_cluster=True), "10.1.2.3", True),
        (operator_policy(allow_cluster=True), "127.0.0.1", False),  # loopback stays denied
        (operator_policy(allow=["127.0.0.1"]), "127.0.0.1", True),
        (LOCAL_DEFAULT, "127.0.0.1", True),
        (LOCAL_DEFAULT, "169.254.169.254", True),
        (local_policy(["loopback"]), "127.0.0.1", False),
        (local_policy(["loopback"]), "192.168.1.1", True),
        (local_policy(["metadata"]), "169.254.169.254", False),
        (local_policy(["192.168.0.0/16"]), "192.168.1.1", False),
    ],
)
def test_an_address_is_allowed_by_the_policy_flags(
    policy: object, address: str, allowed: bool
) -> None:
    assert isinstance(policy, type(OPERATOR))
    assert (address_refusal(policy, "url", address) is None) is allowed


@pytest.mark.parametrize(
    ("policy", "url", "allowed"),
    [
        (operator_policy(allow=["hooks.internal.example"]), "http://hooks.internal.example/", True),
        (operator_policy(allow=["*.svc"]), "http://ci.tools.svc/", True),
        (operator_policy(allow=["ci.tools.svc"]), "http://ci.tools.svc/", True),
        (operator_policy(allow=["ci.tools.svc"]), "http://other.tools.svc/", False),
        (operator_policy(allow_cluster=True), "http://ci.tools.svc/", True),
        (local_policy(["localhost"]), "http://localhost:8080/", False),
        (local_policy(["*.test"]), "http://a.b.test/", False),
    ],
)
def test_a_host_name_is_allowed_or_denied_by_name(policy: object, url: str, allowed: bool) -> None:
    assert isinstance(policy, type(OPERATOR))
    assert (refusal(policy, "url", url, ["10.1.2.3"]) is None) is allowed


def test_an_allowed_name_allows_the_addresses_it_resolves_to() -> None:
    policy = operator_policy(allow=["ci.tools.svc"])
    assert address_refusal(policy, "url", "10.96.0.10", "ci.tools.svc") is None
    assert address_refusal(policy, "url", "10.96.0.10", "other.tools.svc") is not None


@pytest.mark.parametrize(
    ("url", "addresses", "why"),
    [
        ("ftp://example.com/", ["93.184.216.34"], "not an http(s) URL"),
        ("http:///nohost", [], "not an http(s) URL"),
        ("http://nowhere.example/", [], "does not resolve"),
        ("http://x.example/", ["not-an-ip"], "is not an IP address"),
    ],
)
def test_a_url_that_cannot_be_judged_is_refused(url: str, addresses: list[str], why: str) -> None:
    got = refusal(LOCAL_DEFAULT, "url", url, addresses)
    assert got is not None and why in got


@pytest.mark.parametrize("value", ["", "not a cidr!", "a..b", "*."])
def test_a_flag_value_that_is_neither_cidr_nor_host_is_an_error(value: str) -> None:
    with pytest.raises(ValueError):
        operator_policy(allow=[value])


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://[::1]:80/x", "::1"),
        ("https://A.Example.COM./", "a.example.com"),
        ("http://u:p@h.example/", "h.example"),
        ("http://[::1/", None),
        ("file:///etc/passwd", None),
    ],
)
def test_the_host_of_a_url(url: str, host: str | None) -> None:
    assert host_of(url) == host


@pytest.mark.parametrize(
    ("status", "reason", "summary"),
    [
        (503, "Service Unavailable", "HTTP 503 Service Unavailable"),
        (200, "", "HTTP 200"),
        (500, "\x1b[2J\x1b]0;pwned\x07", "HTTP 500 \\x1b[2J\\x1b]0;pwned\\x07"),
        (500, "x" * 500, "HTTP 500 " + "x" * 60 + "..."),
        (500, "é" * 100, "HTTP 500 " + "\\xe9" * 15 + "..."),
    ],
)
def test_an_answer_keeps_only_its_status_and_a_bounded_escaped_reason(
    status: int, reason: str, summary: str
) -> None:
    assert answer_summary(status, reason) == summary
