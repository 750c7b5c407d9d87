"""Heavy pure work off the event loop (docs/design.md §8, "Heavy work off the loop").

One asyncio loop serves every object, the results endpoint, kopf's watches and
/healthz; work that grows with a suite's size — reading an uploaded JUnit XML (gunzip,
parse), the engine's merge and classification of its results, checking a spec (which
compiles its classification rules when they are not cached: seconds for 100 large
ones), decoding the stored state, rendering the report and compressing the state
snapshot — would hold all of them
for as long as one object's 100k-test result takes. It runs here instead, in a small
pool of worker threads, so the loop keeps answering while it does.

Threads, not processes: the work is pure (core functions on frozen values, which are
shared without copying), and handing a 100k-test state to a process would cost a
pickle each way. The GIL still lets the loop's thread in at every switch interval
(5 ms), which is what keeps its lag small.

At most ``WORKERS`` pieces run at once; the others wait their turn on the loop (an
awaiting coroutine costs nothing), so a burst of big results cannot take every core
from the loop. Callers pass only values nothing else changes while the work runs (each
object's unit awaits its own work: one piece per object at a time).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["WORKERS", "offload"]

#: Worker threads, and pieces of work at once: 2 keeps one core for the loop on a small
#: node while a second object's result is read.
WORKERS = 2

P = ParamSpec("P")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool  # one pool per process, made on first use (the CLI never needs it)
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="greenloop-work")
    return _pool


async def offload(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` in a worker thread; the loop runs on meanwhile."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(_executor(), call)
