"""greenloop's pure core: decisions and data, no I/O (docs/design.md, "Architecture").

Nothing in this package starts a process, opens a socket or talks to Kubernetes;
the shells (`greenloop.local`, `greenloop.k8s`) observe and act, the core decides.
"""
