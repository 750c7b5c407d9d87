"""greenloop's test cluster: a real Kubernetes control plane and a real node on this
machine, for the integration tests, the benchmarks and people (`tools/controlplane/up`).
A tool, not a test file; standard library only. Import it with the repository's root on
sys.path (the tests' conftest, bench/ and tools/controlplane/up put it there):

    from tools.cluster.controlplane import ControlPlane
    from tools.cluster.node import RealNode

- `controlplane`: etcd, kube-apiserver and, on request, kube-controller-manager,
  kube-scheduler and kwok with one fake node, on 127.0.0.1 (`ControlPlane`).
  `client`: how the harness talks to it as admin (kubectl, HTTPS).
- `node`: containerd, runc, a CNI bridge, kubelet and kube-proxy on this machine, joined
  to a `ControlPlane`, running real pods (`RealNode`); `node_config` writes the files
  they run from, `host` holds what the node reads of the host, changes and cleans up.
- `binaries`: where the pinned binaries and images are cached and how they are built
  (tools/controlplane/build, tools/node/build, tools/images/build).
- `pki`: the throwaway CA, certificates and kubeconfigs; `procs`: starting, waiting for
  and stopping processes, and the errors; `crds`: the repository's CRDs, applied once.
- `operator`: `greenloop operator` as a process on this host.
- `cli` (`python -m tools.cluster`): the command line behind tools/controlplane/up.
"""
