"""`greenloop operator`: kopf watches, one long-lived unit per object, the results
endpoint and the metrics port in one process (docs/design.md §8).

kopf is used for what it is good at — watching StagingValidations and greenloop's Jobs
across namespaces, peering, logging — through `on.event` handlers only. Each object gets
one asyncio task (its *unit*) that loops `Reconciler.tick`; kopf's events, a stored
upload and a Job change only *wake* the unit. Why not a kopf daemon or timer: both make
kopf put a finalizer on every object, and a stopped operator would then block every
deletion until someone removed it by hand. Event handlers need no finalizer: deleting an
object is never blocked, and owner references let the garbage collector remove its Jobs,
pods, Secrets and ConfigMaps (docs/design.md §8). The unit is still one per object, so
no two steps for one object ever run at once in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import kopf
from aiohttp import web
from prometheus_client import Counter, Gauge, start_http_server

from greenloop.core import crd
from greenloop.core.exits import ExitCode
from greenloop.core.outbound import Policy
from greenloop.k8s.gateway import Gateway
from greenloop.k8s.jobs import LABEL_MANAGED_BY, LABEL_VALIDATION_UID
from greenloop.k8s.metrics import PHASES, measure_loop_lag
from greenloop.k8s.peering import Peers
from greenloop.k8s.reconcile import Reconciler, Settings
from greenloop.k8s.redeploy import OPERATOR_DEFAULT
from greenloop.k8s.results import BODY_SECONDS, Limits, ResultsServer, Stored, results_app

__all__ = ["OperatorConfig", "run"]

log = logging.getLogger("greenloop.operator")
FINALIZER = "greenloop.dev/finalizer"
PREFIX = "greenloop.dev"  # of kopf's own annotations (the domain's, not the CRD group)
MAX_BACKOFF = 60.0
PAUSED_SECONDS = 2.0  # how often a paused unit looks whether it may act again
WORKLOAD_KINDS = (("Deployment", "deployments"), ("StatefulSet", "statefulsets"),
                  ("DaemonSet", "daemonsets"))  # fmt: skip

TICKS = Counter("greenloop_ticks_total", "Reconcile ticks carried out", ["outcome"])
UNITS = Gauge("greenloop_objects", "StagingValidations this operator is reconciling")
UPLOADS = Counter("greenloop_results_stored_total", "Uploads stored by the results endpoint")


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    namespaces: Sequence[str] = ()  # empty: every namespace
    kubeconfig: str | None = None
    results_host: str = "0.0.0.0"  # pods must reach it
    results_port: int = 8081
    results_url: str = ""  # how Job pods reach the endpoint
    results_body_seconds: float = BODY_SECONDS  # an upload's body arrives within this
    metrics_port: int = 8080  # 0: no metrics endpoint
    reporter_image: str = "localhost/greenloop:dev"
    json_logs: bool = True
    verbose: bool = False
    peering: str | None = None  # a kopf peering name; None: standalone
    priority: int = 0
    peering_lifetime: int = 60  # seconds a silent peer counts as alive (kopf's default)
    outbound: Policy = OPERATOR_DEFAULT  # where webhook and health calls may go


@dataclass(frozen=True, slots=True)
class Unit:
    """Which object a unit serves: its uid, and the name it reads it by."""

    namespace: str
    name: str
    uid: str


class Units:
    """One task per object, woken by events; it alone carries out that object's steps.

    Keyed by uid, as kopf keys its own per-object workers: a name deleted and recreated
    is two objects, and the old one's end (its last tick finding the name gone, or its
    DELETED event handled after the new object's ADDED - kopf keeps no order between
    two uids) must not stop the new one's unit (issue 19; docs/design.md §8)."""

    def __init__(self, reconciler: Reconciler, peers: Peers | None = None) -> None:
        self.reconciler = reconciler
        self.peers = peers  # with --peering: pause while a higher-priority peer lives
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.wake: dict[str, asyncio.Event] = {}
        self.units: dict[str, Unit] = {}
        # (namespace, kind, name) of a target workload -> the uids of objects that target it.
        self.targets: dict[tuple[str, str, str], set[str]] = {}

    def ensure(self, namespace: str, name: str, uid: str) -> None:
        if uid not in self.tasks or self.tasks[uid].done():
            unit = Unit(namespace, name, uid)
            self.units[uid] = unit
            self.wake[uid] = asyncio.Event()
            self.tasks[uid] = asyncio.create_task(self._loop(unit), name=f"sv/{namespace}/{name}")
            UNITS.set(len(self.tasks))
        self.wake[uid].set()

    def watch_targets(self, namespace: str, uid: str, workloads: Sequence[Any]) -> None:
        """Remember which workloads this object targets, so their changes wake it."""
        self._forget_targets(uid)
        for w in workloads:
            if isinstance(w, dict) and w.get("kind") and w.get("name"):
                target = (namespace, str(w["kind"]), str(w["name"]))
                self.targets.setdefault(target, set()).add(uid)

    def targeted(self, namespace: str | None, kind: str, name: str) -> bool:
        return namespace is not None and (namespace, kind, name) in self.targets

    def poke_target(self, namespace: str, kind: str, name: str) -> None:
        for uid in self.targets.get((namespace, kind, name), ()):
            self.poke_uid(uid)

    def _forget_targets(self, uid: str) -> None:
        for target in [t for t, uids in self.targets.items() if uid in uids]:
            self.targets[target].discard(uid)
            if not self.targets[target]:
                del self.targets[target]

    def poke_uid(self, uid: str) -> None:
        if uid in self.wake:
            self.wake[uid].set()

    def _forget(self, uid: str) -> None:
        self.tasks.pop(uid, None)
        self.wake.pop(uid, None)
        unit = self.units.pop(uid, None)
        self._forget_targets(uid)
        # The phase gauge is by name: leave it to a newer object of the same name.
        if unit is not None and not any(
            (u.namespace, u.name) == (unit.namespace, unit.name) for u in self.units.values()
        ):
            PHASES.forget(unit.namespace, unit.name)
        UNITS.set(len(self.tasks))

    async def stop(self, uid: str) -> None:
        task = self.tasks.get(uid)
        self._forget(uid)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def stop_all(self) -> None:
        for uid in list(self.tasks):
            await self.stop(uid)

    async def _loop(self, unit: Unit) -> None:
        uid, key = unit.uid, f"{unit.namespace}/{unit.name}"
        backoff = 1.0
        paused = False
        while True:
            wake = self.wake.get(uid)
            if wake is None:
                return
            wake.clear()
            try:
                if self.peers is not None and not await self.peers.may_act(unit.namespace):
                    if not paused:
                        log.info("%s paused: a peer of higher priority is active", key)
                    paused = True
                    await _sleep_or_wake(wake, PAUSED_SECONDS)
                    continue
                paused = False
                tick = await self.reconciler.tick(unit.namespace, unit.name, uid)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Not a decision: an API outage or a bug. Retry later, bounded; the
                # status keeps what was last written.
                TICKS.labels("error").inc()
                log.exception("tick of %s failed; retrying in %.0f s", key, backoff)
                await _sleep_or_wake(wake, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 1.0
            TICKS.labels("stop" if tick.stop else "ok").inc()
            log.info("%s: %s", key, tick.note)
            if tick.stop:
                self._forget(uid)
                return
            if tick.wait > 0:
                await _sleep_or_wake(wake, tick.wait)


async def _sleep_or_wake(wake: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()


@dataclass
class Memo:
    """The operator's shared state, in one declared shape: kopf's memo (kopf docs,
    "In-memory containers"), passed to `kopf.operator(memo=...)` and handed to every
    handler. Filled by the startup handler; kopf gives each object a shallow copy made
    after startup, so every copy points at the same running parts."""

    units: Units | None = None
    gateway: Gateway | None = None
    results: web.AppRunner | None = None
    heartbeat: asyncio.Task[None] | None = None  # greenloop_event_loop_lag_seconds


def _register(registry: kopf.OperatorRegistry, config: OperatorConfig, identity: str) -> None:
    _register_lifecycle(registry, config, identity)
    _register_validations(registry)
    _register_wakers(registry)


def _configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # A standby takes over once the active's last keep-alive is this old.
    settings.peering.lifetime = config.peering_lifetime
    settings.posting.enabled = False  # greenloop posts its own Events, one per decision
    settings.watching.server_timeout = 300
    # With -n, kopf has the namespaces by name: it need not list and watch namespaces
    # (nor CRDs) to find them, and an operator bound per namespace (RoleBinding) may
    # not - kopf retried each 403 for about a minute before it started watching.
    # Cluster-wide, kopf still watches CRDs to notice one being (re)installed.
    settings.scanning.disabled = bool(config.namespaces)


async def _start(memo: Memo, config: OperatorConfig, identity: str) -> None:
    """Connect, start the units and the results endpoint (and metrics), into the memo."""
    gw = await Gateway.connect(config.kubeconfig)
    url = config.results_url or f"http://127.0.0.1:{config.results_port}"
    peers = None
    if config.peering is not None:
        peers = Peers(
            gw, config.peering, identity, config.priority, clusterwide=not config.namespaces
        )
    settings = Settings(
        reporter_image=config.reporter_image, results_url=url, outbound=config.outbound
    )
    units = Units(Reconciler(gw, settings), peers)

    async def on_stored(stored: Stored) -> None:
        UPLOADS.inc()
        units.poke_uid(stored.validation_uid)

    limits = Limits(body_seconds=config.results_body_seconds)
    runner = web.AppRunner(results_app(ResultsServer(gw, on_stored=on_stored, limits=limits)))
    await runner.setup()
    await web.TCPSite(runner, config.results_host, config.results_port).start()
    if config.metrics_port:
        start_http_server(config.metrics_port)
    memo.gateway, memo.units, memo.results = gw, units, runner
    memo.heartbeat = asyncio.create_task(measure_loop_lag(), name="event loop lag")
    # Everything loaded so far (kopf, the API client, aiohttp: most of the heap) lives as
    # long as the process: out of the collector's sight, a gen-2 collection - which
    # holds the GIL, the event loop's too, while a worker builds a 100k-test state -
    # scans only what came after. Measured on the 100k-test round of test_operator_loop
    # (2 shared cores, 5-7 runs each): /healthz p95 median 96 ms, against 166 ms without;
    # the worst answer (0.4-1.4 s) is noise-bound either way. Frozen objects are still
    # freed by refcount, and these are never garbage.
    gc.freeze()
    log.info(
        "greenloop operator: results endpoint on %s:%d (pods use %s), metrics on %s",
        config.results_host, config.results_port, url, config.metrics_port or "off",
    )  # fmt: skip


async def _stop(memo: Memo) -> None:
    if memo.units is not None:
        await memo.units.stop_all()
    if memo.results is not None:
        await memo.results.cleanup()
    if memo.gateway is not None:
        await memo.gateway.close()


def _register_lifecycle(
    registry: kopf.OperatorRegistry, config: OperatorConfig, identity: str
) -> None:
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if config.kubeconfig or os.environ.get("KUBECONFIG"):
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: Memo, **_: Any) -> None:
        _configure(settings, config)
        await _start(memo, config, identity)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Memo, **_: Any) -> None:
        await _stop(memo)


def _register_validations(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.event(crd.GROUP, crd.VERSION, crd.PLURAL, registry=registry)
    async def on_validation(
        *, event: Any, name: str, namespace: str | None, meta: Any, spec: Any, memo: Memo,
        **_: Any,
    ) -> None:  # fmt: skip
        units = memo.units
        if units is None or namespace is None:
            return
        uid = str(meta.get("uid"))
        if event.get("type") == "DELETED" or meta.get("deletionTimestamp"):
            await units.stop(uid)
            return
        target = spec.get("target") if hasattr(spec, "get") else None
        workloads = target.get("workloads") if isinstance(target, dict) else None
        units.watch_targets(namespace, uid, workloads if isinstance(workloads, list) else ())
        units.ensure(namespace, name, uid)


def _register_wakers(registry: kopf.OperatorRegistry) -> None:
    """Watches that only wake a unit: its target workloads, its Jobs and their pods."""

    # A target workload changed (someone deployed, a rollout moved on): wake the objects
    # that target it, so a fingerprint change is seen at once (docs/design.md §8) instead
    # of on the next idle tick. A dict lookup per event; nothing else is read.
    # The `when` filter keeps kopf from calling (and logging) the handler for the many
    # workloads no object targets.
    def workload_handler(kind: str) -> tuple[Any, Any]:
        def targeted(*, name: str, namespace: str | None, memo: Memo, **_: Any) -> bool:
            return memo.units is not None and memo.units.targeted(namespace, kind, name)

        async def on_workload(*, name: str, namespace: str | None, memo: Memo, **_: Any) -> None:
            if memo.units is not None and namespace is not None:
                memo.units.poke_target(namespace, kind, name)

        return targeted, on_workload

    for kind, plural in WORKLOAD_KINDS:
        when, handler = workload_handler(kind)
        kopf.on.event("apps", "v1", plural, registry=registry, id=f"wake-{plural}", when=when)(
            handler
        )

    def poke(memo: Memo, labels: Any) -> None:
        uid = labels.get(LABEL_VALIDATION_UID)
        if memo.units is not None and uid:
            memo.units.poke_uid(str(uid))

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: "greenloop"}, registry=registry)
    async def on_job(*, labels: Any, memo: Memo, **_: Any) -> None:
        poke(memo, labels)

    # A suite pod's waiting reason (ImagePullBackOff...) is seen on the pod, not the Job:
    # the Job controller deletes the pod at the deadline, so look while it waits.
    @kopf.on.event("", "v1", "pods", labels={LABEL_MANAGED_BY: "greenloop"}, registry=registry)
    async def on_pod(*, labels: Any, memo: Memo, **_: Any) -> None:
        poke(memo, labels)


def run(config: OperatorConfig) -> int:
    if config.kubeconfig:
        os.environ["KUBECONFIG"] = config.kubeconfig
    kopf.configure(
        verbose=config.verbose,
        log_format=kopf.LogFormat.JSON if config.json_logs else kopf.LogFormat.FULL,
    )
    registry = kopf.OperatorRegistry()
    # Our own peering identity (kopf's shape), so the units can find this operator's
    # record among its peers'.
    identity = os.environ.get("POD_ID") or (
        f"greenloop@{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
    )
    _register(registry, config, identity)
    namespaces = list(config.namespaces)
    try:
        asyncio.run(
            kopf.operator(
                registry=registry,
                memo=Memo(),
                clusterwide=not namespaces,
                namespaces=namespaces,
                standalone=config.peering is None,
                peering_name=config.peering,
                priority=config.priority,
                identity=cast(Any, identity),  # kopf's Identity is a NewType of str
            )
        )
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK)
