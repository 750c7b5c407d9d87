"""Test support shared by greenloop's test suites (not shipped with the operator).

`tests.support.cluster` starts a real Kubernetes control plane on loopback
(etcd, kube-apiserver and, on request, kube-controller-manager, kube-scheduler
and kwok with one fake node) from binaries built by tools/controlplane/build.
"""
