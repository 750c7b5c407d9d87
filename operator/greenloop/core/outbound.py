"""Where greenloop may send a request (docs/design.md §8 "Outbound calls"): the allow
policy set at install for webhook and health URLs, and the decision for one URL and the
addresses its host resolved to.

An object's author chooses the URLs, and in operator mode greenloop calls them from
inside the cluster: without a policy a URL naming the cloud metadata address, the API
server's etcd or another tenant's Service is a request made with the operator's network
position (SSRF). So operator mode denies, unless the platform allows them:
- loopback (``127.0.0.0/8``, ``::1``, and ``0.0.0.0/8``, which Linux connects to itself),
- link-local (``169.254.0.0/16``, ``fe80::/10``) and the cloud metadata addresses,
- cluster-internal: the pod and service CIDRs the operator is given, or, with none given,
  the private ranges those live in; and the names that only mean something inside the
  cluster (``*.svc``, ``*.cluster.local``, a name without a dot, which the pod's
  resolver looks up through the cluster's search domains).
Local mode allows everything unless told otherwise: a person runs it against their own
machine (the demo's target is on 127.0.0.1).

Pure: the shells resolve the host, ask :func:`refusal` about the URL and every address
it resolved to, and ask :func:`address_refusal` again about the address the connection
actually reached, before any byte is sent (a name that resolves differently the second
time, DNS rebinding, is caught there).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "LOCAL_DEFAULT",
    "Policy",
    "address_refusal",
    "answer_summary",
    "host_of",
    "local_policy",
    "operator_policy",
    "refusal",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK = ("127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128")
LINK_LOCAL = ("169.254.0.0/16", "fe80::/10")
# AWS, GCP, Azure, OpenStack: 169.254.169.254 (inside link-local, named for the message);
# AWS over IPv6; Alibaba Cloud.
METADATA = ("169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32")
METADATA_HOSTS = ("metadata.google.internal", "metadata")
# Where pod and service CIDRs live when the operator is not told them.
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
CLUSTER_HOSTS = ("*.svc", "*.cluster.local", "localhost", "*.localhost")

#: The classes ``--deny-outbound`` names in local mode.
CLASSES = {"loopback": LOOPBACK, "link-local": LINK_LOCAL, "metadata": METADATA}

#: How many characters of an HTTP reason phrase a message keeps.
MAX_REASON = 60


@dataclass(frozen=True, slots=True)
class Rule:
    """One denied or allowed entry: networks and host-name patterns, and how a message
    names it (``"loopback"``, ``"--allow-outbound 10.0.0.5"``)."""

    label: str
    networks: tuple[Network, ...] = ()
    hosts: tuple[str, ...] = ()  # exact names, or "*.suffix"
    dotless: bool = False  # also a name without a dot


@dataclass(frozen=True, slots=True)
class Policy:
    """``name`` says in a message whose policy refused (``operator outbound policy``);
    ``hint`` how to allow it. An allowed entry wins over a denied one."""

    name: str
    denied: tuple[Rule, ...] = ()
    allowed: tuple[Rule, ...] = ()
    hint: str = ""


LOCAL_DEFAULT = Policy("local mode (everything allowed)")


def _nets(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _entry(value: str, label: str) -> Rule:
    """A CIDR or address, else a host name or ``*.suffix`` pattern; ValueError when
    it is neither."""
    try:
        return Rule(label, networks=_nets([value]))
    except ValueError:
        pass
    name = value.strip().lower().rstrip(".")
    bare = name[2:] if name.startswith("*.") else name
    if not bare or not all(part and part.replace("-", "").isalnum() for part in bare.split(".")):
        raise ValueError(f"{value!r} is neither a CIDR, an address nor a host name")
    return Rule(label, hosts=(name,))


def operator_policy(
    *, allow: Sequence[str] = (), allow_cluster: bool = False, cluster_cidrs: Sequence[str] = ()
) -> Policy:
    """The operator's policy: the default denials, less what the flags allow.
    ValueError names a flag value that is not a CIDR or host name."""
    cluster = (
        Rule("cluster-internal (--cluster-cidr)", networks=_nets(cluster_cidrs))
        if cluster_cidrs
        else Rule("private, where pod and service addresses live (no --cluster-cidr given)",
                  networks=_nets(PRIVATE))
    )  # fmt: skip
    cluster_names = Rule(
        "cluster-internal name (*.svc, *.cluster.local, no dot)",
        hosts=CLUSTER_HOSTS,
        dotless=True,
    )
    denied = [
        Rule("cloud metadata", networks=_nets(METADATA), hosts=METADATA_HOSTS),
        Rule("loopback", networks=_nets(LOOPBACK)),
        Rule("link-local", networks=_nets(LINK_LOCAL)),
    ]
    if not allow_cluster:
        denied += [cluster, cluster_names]
    allowed = tuple(_entry(v, f"--allow-outbound {v}") for v in allow)
    return Policy(
        "the operator's outbound policy",
        tuple(denied),
        allowed,
        hint="the platform team may allow it with --allow-outbound ADDRESS|CIDR|HOST "
        "(or --allow-outbound-cluster)",
    )


def local_policy(deny: Sequence[str] = ()) -> Policy:
    """Local mode: everything allowed, less each ``--deny-outbound`` value (a class:
    loopback, link-local, metadata; or a CIDR, address or host name)."""
    if not deny:
        return LOCAL_DEFAULT
    denied = tuple(
        Rule(v, networks=_nets(CLASSES[v])) if v in CLASSES else _entry(v, v) for v in deny
    )
    return Policy("--deny-outbound", denied, hint="drop the --deny-outbound flag to allow it")


def host_of(url: str) -> str | None:
    """The URL's host, lower case, without brackets or a trailing dot; None when the
    URL has none or is not http(s)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return host.rstrip(".").lower()


def _ip(value: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0])  # fe80::1%eth0
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def _name_matches(rule: Rule, host: str) -> bool:
    if rule.dotless and "." not in host and _ip(host) is None:
        return True
    for pattern in rule.hosts:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) or host == pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


def _addr_matches(rule: Rule, ip: Address) -> bool:
    return any(ip.version == net.version and ip in net for net in rule.networks)


def address_refusal(policy: Policy, what: str, address: str, host: str = "") -> str | None:
    """Why ``address`` (the one a connection reached, or one the host resolved to) may
    not be called under ``policy``; None when it may. ``host`` allowed by name allows
    every address it resolves to."""
    ip = _ip(address)
    if ip is None:
        return f"{what}: {address!r} is not an IP address"
    if host and any(_name_matches(r, host) for r in policy.allowed):
        return None
    if any(_addr_matches(r, ip) for r in policy.allowed):
        return None
    for rule in policy.denied:
        if _addr_matches(rule, ip):
            shown = f"{host} resolves to {ip}" if host and host != str(ip) else str(ip)
            return _refused(policy, what, f"{shown}, which is {rule.label}")
    return None


def refusal(policy: Policy, what: str, url: str, addresses: Iterable[str]) -> str | None:
    """Why ``url`` may not be called under ``policy`` when its host resolved to
    ``addresses`` (every one is checked: a name with one public and one internal
    address is refused); None when it may. ``what`` names the field in the message."""
    host = host_of(url)
    if host is None:
        return f"{what}: not an http(s) URL with a host"
    if not any(_name_matches(r, host) for r in policy.allowed):
        for rule in policy.denied:
            if _name_matches(rule, host):
                return _refused(policy, what, f"host {host}, which is {rule.label}")
    found = False
    for address in addresses:
        found = True
        why = address_refusal(policy, what, address, host)
        if why is not None:
            return why
    if not found:
        return f"{what}: host {host} does not resolve"
    return None


def _refused(policy: Policy, what: str, why: str) -> str:
    hint = f"; {policy.hint}" if policy.hint else ""
    return f"{what} refused by {policy.name}: {why}{hint}"


def answer_summary(status: int, reason: str) -> str:
    """What a message keeps of an HTTP answer: the status code and its reason phrase,
    cut to ``MAX_REASON`` characters and escaped, so a server's answer cannot write
    into status, Events or a terminal (the body is never kept)."""
    phrase = reason[:MAX_REASON].encode("unicode_escape").decode("ascii")
    phrase = phrase[:MAX_REASON] + ("..." if len(reason) > MAX_REASON else "")
    return f"HTTP {status} {phrase}".rstrip()
