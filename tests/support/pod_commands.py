"""The suite container's command greenloop's Job builder makes, for the tests of the pod
wrappers (core/pod_command, core/pod_listing, core/pod_reports): built with the real
``k8s.jobs.build_job``, so a test sees exactly what the pod would run."""

from __future__ import annotations

from collections.abc import Sequence

from greenloop.core.model import Suite
from greenloop.core.shards import Shard
from greenloop.k8s.jobs import Owner, SuiteJob, build_job


def container_command(
    suite: Suite,
    shards: Sequence[Shard] = (),
    *,
    selection: tuple[str, ...] | None = None,
    iteration: int = 1,
) -> list[str]:
    """The command of the suite's container in its Job: ``shards`` empty for a one-pod
    Job, else the Indexed Job's indexes; ``selection`` the ids of a rerun."""
    run = SuiteJob(
        owner=Owner(name="checkout", namespace="staging", uid="u-1"),
        iteration=iteration,
        suite=suite,
        reporter_image="greenloop:dev",
        results_url="http://results:8081",
        selection=selection,
        shards=tuple(shards),
        max_pods=max(len(shards), 1),
    )
    (container,) = build_job(run)["spec"]["template"]["spec"]["containers"]
    return list(container["command"])
