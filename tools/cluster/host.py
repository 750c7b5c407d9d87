"""The host a real node runs on: what the node reads of it and changes, how its state is
compared before and after, and how what a node made is removed again - by this run's
teardown or, after a run that was killed, by the next one.

Only one node runs on the machine at a time (`node_lock`), because kube-proxy's iptables
chains are host-wide; the lock dies with its process, so a failed run never blocks the next.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.cluster.binaries import cache_root
from tools.cluster.procs import NodeError, wait_until

#: kernel settings kubelet writes unless they already hold these values (host-wide)
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
#: written by the CNI bridge plugin when it is a gateway; the host keeps not forwarding
MASKED_SYSCTLS = {**KUBELET_SYSCTLS, "net/ipv4/ip_forward": "1"}
#: places containerd, its shims, runc, CNI and kubelet use whatever their configuration
#: says; inside the node's namespace each is a folder of the work directory
HIDDEN_DIRS = (
    "/run/containerd",
    "/var/lib/containerd",
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/etc/cni",
)
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw")


def run(*cmd: str, check: bool = True, timeout: float = 60.0) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NodeError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def node_ip() -> str:
    """This machine's own non-loopback address (kubelet refuses a loopback node IP)."""
    for line in run("ip", "-o", "-4", "addr", "show", "scope", "global").splitlines():
        parts = line.split()
        if "inet" in parts:
            return parts[parts.index("inet") + 1].split("/")[0]
    raise NodeError("no non-loopback IPv4 address on this machine for the node IP")


def iptables_rules() -> dict[str, list[str]]:
    rules: dict[str, list[str]] = {}
    for exe in ("iptables", "ip6tables"):
        if not shutil.which(exe):
            continue
        for table in IPTABLES_TABLES:
            out = subprocess.run(
                [exe, "-w", "5", "-t", table, "-S"], capture_output=True, text=True, check=False
            )
            if out.returncode == 0:
                rules[f"{exe}/{table}"] = out.stdout.splitlines()
    return rules


def host_state_links() -> list[str]:
    return sorted(
        line.split(":")[1].strip().split("@")[0]
        for line in run("ip", "-o", "link", "show").splitlines()
        if ":" in line
    )


def host_state() -> dict[str, Any]:
    """What a node could leave behind on the host: compare before and after."""
    sysctls = {}
    for key in [
        *MASKED_SYSCTLS,
        "net/ipv4/conf/all/route_localnet",
        "net/ipv4/conf/all/forwarding",
    ]:
        with contextlib.suppress(OSError):
            sysctls[key] = Path("/proc/sys", key).read_text().strip()
    links = host_state_links()
    # mounts and cgroups of the whole machine change as other work runs beside the tests;
    # these are the ones a node makes
    node_mounts = ("/proc/sys", "/var/log", "/run", "/var/lib", "/etc/cni", "/sys/fs/cgroup")
    mounts = sorted(
        point
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        for point in [line.split()[4]]
        if point.startswith(node_mounts) or "gln-" in point
    )
    cgroups = sorted(
        str(p.relative_to("/sys/fs/cgroup"))
        for p in Path("/sys/fs/cgroup").glob("*/*")
        if p.is_dir() and p.name.startswith(("greenloop-", "kubepods"))
    )
    paths = sorted(
        str(p) for d in HIDDEN_DIRS if Path(d).exists() for p in [Path(d), *Path(d).rglob("*")]
    )
    return {
        "paths": paths,
        "sysctls": sysctls,
        "links": links,
        "iptables": iptables_rules(),
        "mounts": mounts,
        "cgroups": cgroups,
    }


def pick_pod_subnet(service_cidr: str) -> ipaddress.IPv4Network:
    """A free 10.x.y.0/24 for the pods: no route of this machine's, not the Services'."""
    used = [
        ipaddress.ip_network(line.split()[0], strict=False)
        for line in run("ip", "-4", "route", "show").splitlines()
        if line and line.split()[0][0].isdigit()
    ]
    service = ipaddress.ip_network(service_cidr)
    for _ in range(200):
        net = ipaddress.IPv4Network(
            f"10.{secrets.randbelow(200) + 40}.{secrets.randbelow(256)}.0/24"
        )
        if not net.overlaps(service) and not any(net.overlaps(u) for u in used):
            return net
    raise NodeError("no free 10.x.y.0/24 for the pod network")


def shim_pids(address_prefix: str) -> list[int]:
    """containerd shims whose -address starts with `address_prefix`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv and argv[0].endswith("containerd-shim-runc-v2") and "-address" in argv:
            address = (
                argv[argv.index("-address") + 1] if argv.index("-address") + 1 < len(argv) else ""
            )
            if address.startswith(address_prefix):
                found.append(int(entry.name))
    return found


def made_dirs_record() -> Path:
    """Mount points a node created on the host (so a later run can remove them)."""
    return cache_root() / "node" / "made-mount-points"


# --------------------------------------------------------------------------------------
# the machine's node lock


def acquire_node_lock(timeout: float) -> int:
    """Wait up to `timeout` seconds for the machine's node lock; its file descriptor."""
    path = cache_root() / "node" / ".run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise NodeError(
                    f"another real node runs on this machine (lock {path}); "
                    "only one at a time, since kube-proxy's iptables chains are host-wide"
                ) from None
            time.sleep(0.5)


# --------------------------------------------------------------------------------------
# what a node makes on the host, and its removal


def add_bridge(bridge: str) -> None:
    # made here (not by the CNI plugin) so the host's address exists before the first pod
    run("ip", "link", "add", bridge, "type", "bridge")


def configure_bridge(bridge: str, address: str, prefixlen: int) -> None:
    """The host's address on the pods' bridge, forwarding only what arrives on it; up."""
    run("ip", "addr", "add", f"{address}/{prefixlen}", "dev", bridge)
    # A pod reaching another pod through a ClusterIP is routed by this host (DNAT,
    # then out of the same bridge). Forwarding is allowed for packets that arrive on
    # this bridge only: the machine-wide ip_forward stays as it was, and the setting
    # goes with the bridge.
    Path(f"/proc/sys/net/ipv4/conf/{bridge}/forwarding").write_text("1\n")
    run("ip", "link", "set", bridge, "up")


def make_cgroups(cgroup_root: str, made: list[Path]) -> None:
    """`cgroup_root` in every hierarchy (kubelet wants it everywhere), each path appended
    to `made` as it is made (so a failure part-way leaves nothing unrecorded)."""
    for hierarchy in sorted(Path("/sys/fs/cgroup").iterdir()):
        if not hierarchy.is_dir() or not (hierarchy / "cgroup.procs").exists():
            continue
        path = hierarchy / cgroup_root
        path.mkdir()
        made.append(path)
        if hierarchy.name == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                (path / f).write_text((hierarchy / f).read_text())


def cgroup_dirs(roots: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        if root.exists():
            found += [p for p in root.rglob("*") if p.is_dir()]
            found.append(root)
    return found


def kill_cgroup_procs(roots: Sequence[Path], cgroup_root: str) -> None:
    for _ in range(20):
        pids = set()
        for d in cgroup_dirs(roots):
            with contextlib.suppress(OSError):
                pids |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise NodeError(f"processes left in cgroup {cgroup_root}")


def remove_cgroups(roots: Sequence[Path]) -> list[str]:
    """Remove the cgroups under `roots`, deepest first; those still busy."""
    left: list[str] = []
    for d in sorted(cgroup_dirs(roots), key=lambda p: len(p.parts), reverse=True):
        for _ in range(50):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)
        else:
            left.append(str(d))
    return left


def kill_shims(workdir: Path) -> None:
    """Shims reparent themselves to init; find ours by the socket in their command line."""
    for _ in range(20):
        found = shim_pids(str(workdir))
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def wait_links_gone(before: Sequence[str]) -> None:
    """A pod's veth goes when its network namespace is freed, a moment after its
    last process and mount went."""
    old = set(before)

    def gone() -> bool:
        now = set(host_state_links())
        return not {n for n in now - old if n.startswith("veth")}

    wait_until("the pods' veth interfaces to go", gone, timeout=15, interval=0.1)


def clean_iptables(
    before: Mapping[str, list[str]],
    *,
    only_kube: bool = False,
    kube_proxy: Path | None = None,
    proxy_config: Path | None = None,
) -> None:
    """`kube_proxy --cleanup` (when its config exists), then remove any rule and chain not
    in `before` (kubelet's canaries); `only_kube`: every KUBE-* chain and the rules that
    jump to one."""
    if kube_proxy is not None and proxy_config is not None and proxy_config.exists():
        run(str(kube_proxy), f"--config={proxy_config}", "--cleanup", check=False)

    def ours(rule: str) -> bool:
        words = shlex.split(rule)
        return not only_kube or words[1].startswith("KUBE-") or "-j KUBE-" in rule

    for key, rules in iptables_rules().items():
        exe, table = key.split("/")
        old = set(before.get(key, []))
        for rule in rules:
            if rule.startswith("-A ") and rule not in old and ours(rule):
                run(exe, "-w", "5", "-t", table, "-D", *shlex.split(rule)[1:], check=False)
        chains = [r.split()[1] for r in rules if r.startswith("-N ") and r not in old and ours(r)]
        for chain in chains:
            run(exe, "-w", "5", "-t", table, "-F", chain, check=False)
        for chain in chains:
            run(exe, "-w", "5", "-t", table, "-X", chain, check=False)


def reap_leftovers() -> None:
    """Remove what a killed run (SIGKILL: no teardown) left. Holding the machine's node
    lock, any bridge or cgroup root of ours and kubelet's or kube-proxy's canary chain
    belongs to a run that is gone."""
    reaped: list[str] = []
    shims = shim_pids(f"{tempfile.gettempdir()}/gln-")
    for pid in shims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if shims:
        reaped.append(f"{len(shims)} containerd shim(s)")
    pids: set[int] = set()
    for root in Path("/sys/fs/cgroup").glob("*/greenloop-*"):
        for d in root.rglob("*"):
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        reaped.append(f"{len(pids)} container process(es)")
    if shims or pids:
        time.sleep(0.5)  # let the kernel take them out of their cgroups
    for line in run("ip", "-o", "link", "show", "type", "bridge").splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith("glbr"):
            run("ip", "link", "del", name, check=False)
            reaped.append(f"bridge {name}")
    for root in Path("/sys/fs/cgroup").glob("*/greenloop-*"):
        dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, root]:
            with contextlib.suppress(OSError):
                d.rmdir()
        if not root.exists():
            reaped.append(f"cgroup {root}")
    rules = iptables_rules()
    canaries = ("-N KUBE-KUBELET-CANARY", "-N KUBE-PROXY-CANARY")
    if any(r in canaries for lines in rules.values() for r in lines):
        clean_iptables({}, only_kube=True)
        reaped.append("iptables chains KUBE-*")
    made = made_dirs_record()
    if made.exists():
        for point in made.read_text().split():
            with contextlib.suppress(OSError):
                Path(point).rmdir()
                reaped.append(f"mount point {point}")
        made.unlink()
    if reaped:
        print(
            f"[greenloop] removed what an earlier, killed node run left: {', '.join(reaped)}",
            file=sys.__stderr__ or sys.stderr,
        )
