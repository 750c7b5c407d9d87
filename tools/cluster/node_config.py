"""The files a real node runs from, written into its work directory: certificates and
kubeconfigs for kubelet, kube-proxy and CoreDNS, containerd's config.toml, the CNI bridge
network, the KubeletConfiguration, the KubeProxyConfiguration, CoreDNS's Corefile, and
the values the node's private mount namespace shows in place of the host's kernel
settings; and the objects that make CoreDNS the cluster's DNS (`dns_objects`)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from tools.cluster.controlplane import CLUSTER_DOMAIN, DNS_SERVICE_IP, ControlPlane
from tools.cluster.host import MASKED_SYSCTLS
from tools.cluster.pki import write_kubeconfig
from tools.cluster.procs import free_ports

NODE_LABEL = ("greenloop.dev/node", "real")
NODE_TAINT = "greenloop.dev/real-node"
#: CoreDNS's user (its client certificate's CN) and the kube-dns EndpointSlice's name
COREDNS_USER = "system:coredns"
DNS_ENDPOINTS = "kube-dns-host"
CNI_BIN = Path("/usr/lib/cni")


def containerd_socket(workdir: Path) -> Path:
    return workdir / "containerd" / "containerd.sock"


def write_config(
    cp: ControlPlane,
    workdir: Path,
    *,
    node_id: str,
    name: str,
    node_ip: str,
    pod_subnet: ipaddress.IPv4Network,
    host_address: str,
    bridge: str,
    cgroup_root: str,
    pause_image: str,
    dedicated: bool,
    verbose: bool = False,
) -> dict[str, int]:
    """Write every file the node's processes read; returns the ports chosen for them.
    `dedicated`: registered with NODE_TAINT, so only pods that tolerate it land there."""
    w = workdir
    for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "varlog", "sysctl"):
        (w / sub).mkdir(parents=True)
    pki = cp.pki
    kubelet_cert, kubelet_key = pki.issue(
        f"kubelet-{node_id}", f"system:node:{name}", organizations=["system:nodes"]
    )
    write_kubeconfig(
        w / "kubelet.kubeconfig",
        server=cp.server,
        ca=pki.ca_cert,
        cert=kubelet_cert,
        key=kubelet_key,
        user=f"system:node:{name}",
        cluster="greenloop-test",
    )
    serving_cert, serving_key = pki.issue(
        f"kubelet-serving-{node_id}",
        name,
        server_sans=[f"IP:{node_ip}", f"DNS:{name}"],
        client=False,
    )
    proxy_cert, proxy_key = pki.issue(f"kube-proxy-{node_id}", "system:kube-proxy")
    write_kubeconfig(
        w / "kube-proxy.kubeconfig",
        server=cp.server,
        ca=pki.ca_cert,
        cert=proxy_cert,
        key=proxy_key,
        user="system:kube-proxy",
        cluster="greenloop-test",
    )
    for key, value in MASKED_SYSCTLS.items():
        (w / "sysctl" / key.replace("/", ".")).write_text(value + "\n")
    # the host's resolvers stay out of the pods (search domains, dnsPolicy Default): pods
    # resolve the cluster's names only, and nothing is forwarded off this machine
    (w / "resolv.conf").write_text("# no upstream DNS: all traffic stays on this machine\n")
    (w / "containerd" / "config.toml").write_text(containerd_config(w, pause_image))
    (w / "cni" / "net.d" / "10-greenloop.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": f"greenloop-{node_id}",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": bridge,
                        "isGateway": True,
                        "ipMasq": False,  # no NAT: nothing leaves this machine
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "dataDir": str(w / "cni" / "ipam"),
                            "ranges": [[{"subnet": str(pod_subnet), "gateway": host_address}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                        },
                    },
                    {"type": "loopback"},
                ],
            },
            indent=2,
        )
    )
    kport, hport = free_ports(2)
    ports = {"kubelet": kport, "kubelet_healthz": hport}
    kubelet_config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "port": kport,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": hport,
        "tlsCertFile": str(serving_cert),
        "tlsPrivateKeyFile": str(serving_key),
        # only holders of a certificate from the test CA (the API server) get in
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(pki.ca_cert)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{cgroup_root}",
        "failCgroupV1": False,
        "failSwapOn": False,
        "protectKernelDefaults": False,
        "containerRuntimeEndpoint": f"unix://{containerd_socket(w)}",
        "resolvConf": str(w / "resolv.conf"),
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [DNS_SERVICE_IP],
        "volumePluginDir": str(w / "kubelet" / "volume-plugins"),
        "registerWithTaints": (
            [{"key": NODE_TAINT, "value": "true", "effect": "NoSchedule"}] if dedicated else []
        ),
        "nodeStatusUpdateFrequency": "2s",
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "maxPods": 50,
        "shutdownGracePeriod": "0s",
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "containerLogMaxSize": "1Mi",
        "logging": {"format": "text"},
    }
    (w / "kubelet-config.json").write_text(json.dumps(kubelet_config, indent=2))
    proxy_healthz, proxy_metrics = free_ports(2)
    ports.update(proxy_healthz=proxy_healthz, proxy_metrics=proxy_metrics)
    proxy_config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(w / "kube-proxy.kubeconfig")},
        "mode": "iptables",
        "hostnameOverride": name,
        "clusterCIDR": str(pod_subnet),
        "healthzBindAddress": f"127.0.0.1:{proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{proxy_metrics}",
        # leave the host's conntrack and route_localnet settings alone
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False, "syncPeriod": "5s", "minSyncPeriod": "0s"},
        "nodePortAddresses": [f"{node_ip}/32"],
    }
    (w / "kube-proxy-config.json").write_text(json.dumps(proxy_config, indent=2))
    dns_cert, dns_key = pki.issue(f"coredns-{node_id}", COREDNS_USER)
    write_kubeconfig(
        w / "coredns.kubeconfig",
        server=cp.server,
        ca=pki.ca_cert,
        cert=dns_cert,
        key=dns_key,
        user=COREDNS_USER,
        cluster="greenloop-test",
    )
    dns, dns_ready = free_ports(2)
    ports.update(dns=dns, dns_ready=dns_ready)
    (w / "Corefile").write_text(
        corefile(host_address, dns, dns_ready, w / "coredns.kubeconfig", log_queries=verbose)
    )
    return ports


def corefile(
    address: str, port: int, ready_port: int, kubeconfig: Path, *, log_queries: bool
) -> str:
    """CoreDNS answering for the cluster's names on address:port (behind the kube-dns
    Service), ready on 127.0.0.1:ready_port. No `forward`: a name outside the cluster
    does not resolve, and no query leaves this machine."""
    return f"""\
.:{port} {{
    bind {address}
    ready 127.0.0.1:{ready_port}
    errors
{"    log" if log_queries else "    # log (tools/controlplane/up -v logs every query)"}
    cache 30
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
}}
"""


def dns_objects(address: str, port: int) -> list[dict[str, Any]]:
    """What makes CoreDNS on address:port the cluster's DNS: its read access (the rules of
    CoreDNS's own ClusterRole), and the kube-dns Service at DNS_SERVICE_IP (kubelet's
    clusterDNS) whose only endpoint is address:port."""
    dns_ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": COREDNS_USER},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": COREDNS_USER},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": COREDNS_USER,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "ports": [
                    {"name": name, "port": 53, "protocol": proto, "targetPort": port}
                    for name, proto in dns_ports
                ],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": DNS_ENDPOINTS,
                "namespace": "kube-system",
                "labels": {"kubernetes.io/service-name": "kube-dns"},
            },
            "addressType": "IPv4",
            "ports": [{"name": name, "port": port, "protocol": proto} for name, proto in dns_ports],
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        },
    ]


def containerd_config(w: Path, pause_image: str) -> str:
    c = w / "containerd"
    return f"""\
version = 3
root = "{c / "root"}"
state = "{c / "state"}"
temp = "{c / "tmp"}"
# not needed here, and each would leave files or sockets outside the work directory
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{c / "containerd.sock"}"

[ttrpc]
  address = "{c / "containerd.sock.ttrpc"}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # this machine lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{CNI_BIN}"]
    conf_dir = "{w / "cni" / "net.d"}"
    max_conf_num = 1

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{pause_image}"

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
