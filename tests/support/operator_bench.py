"""What the operator benches (bench/operator_latency.py, bench/target_change.py) run on:
a fresh control plane with kwok's node and `greenloop operator` watching a namespace;
and the p95 they report beside the median."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator, on_loopback


@contextlib.contextmanager
def kwok_operator(namespace: str) -> Iterator[tuple[ControlPlane, Operator, Path]]:
    """The control plane, the operator for `namespace` (created) and a scratch folder,
    once kopf lists and watches; all of it stopped and removed afterwards."""
    cp = ControlPlane.start(controllers=True, build=False)
    tmp = Path(tempfile.mkdtemp(prefix="greenloop-bench-"))
    try:
        cp.create_namespace(namespace)
        with on_loopback(cp, namespace, tmp / "operator.log") as op:
            time.sleep(3)  # let kopf list and watch before the first object
            yield cp, op, tmp
    finally:
        cp.stop()
        shutil.rmtree(cp.workdir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
