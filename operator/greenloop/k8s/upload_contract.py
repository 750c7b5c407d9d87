"""The upload contract between the results sidecar (``upload.py``, in every test pod) and
the endpoint (``results.py``): constants only, standard library only, so the sidecar's
process imports this and not the Job builder (``jobs.py``, which pulls in the CRD, the
runners and the planner): what the sidecar imports, each shard's pod pays for on the
node's cores while its suite starts (tests/unit/test_pod_imports.py)."""

from __future__ import annotations

__all__ = [
    "GZIP",
    "MAX_COMPRESSED",
    "TOKEN_DIR",
    "TOKEN_FILE",
    "TOKEN_PATH",
    "UPLOAD_DEADLINE_SECONDS",
]

#: Where the sidecar's projected token is mounted (``jobs.TOKEN_VOLUME``).
TOKEN_DIR = "/var/run/secrets/greenloop.dev/results"
TOKEN_FILE = "token"
TOKEN_PATH = f"{TOKEN_DIR}/{TOKEN_FILE}"

GZIP = "application/gzip"
#: The gzipped body is stored as is; base64 in a ConfigMap grows it by 4/3, and a
#: ConfigMap holds at most 1 MiB.
MAX_COMPRESSED = 700 * 1024

#: How long the sidecar may take to upload after the test container exited; the pod's
#: terminationGracePeriodSeconds leaves a margin above it so the kubelet does not kill
#: an upload that is still inside its own deadline. Sized for a burst: 1,000 uploads
#: 64 at a time took at most 28 s each with the endpoint's queue (load ~22), so 90 s is
#: three times that. Not more: a suite container that ignores SIGTERM keeps its pod
#: (and the Job's Failed condition) for the whole grace period after its timeout.
UPLOAD_DEADLINE_SECONDS = 90
