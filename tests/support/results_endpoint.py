"""greenloop's results endpoint on a loopback port, served from its own thread and event
loop, for tests that need uploads to land as they do inside `greenloop operator`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from greenloop.k8s.gateway import Gateway
from greenloop.k8s.results import Limits, ResultsServer, Stored, results_app
from tools.cluster.procs import free_ports


@dataclass
class Endpoint:
    url: str
    stored: list[Stored] = field(default_factory=list)


@contextlib.contextmanager
def serve_results(kubeconfig: Path, limits: Limits | None = None) -> Iterator[Endpoint]:
    port = free_ports(1)[0]
    ep = Endpoint(url=f"http://127.0.0.1:{port}")
    ready = threading.Event()
    state: dict[str, object] = {}

    async def serve() -> None:
        async with await Gateway.connect(str(kubeconfig)) as gw:

            async def on_stored(stored: Stored) -> None:
                ep.stored.append(stored)

            server = ResultsServer(gw, on_stored=on_stored, limits=limits)
            runner = web.AppRunner(results_app(server))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            stop = asyncio.Event()
            state["stop"], state["loop"] = stop, asyncio.get_running_loop()
            ready.set()
            await stop.wait()
            await runner.cleanup()
            # Let closed connections finish closing on this loop, not in the GC later.
            await asyncio.sleep(0.2)

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=main, name="results-endpoint", daemon=True)
    thread.start()
    if not ready.wait(30) or "error" in state:
        raise RuntimeError(f"the results endpoint did not start: {state.get('error')}")
    try:
        yield ep
    finally:
        loop, stop = state["loop"], state["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
