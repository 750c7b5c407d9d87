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

The GIL lets the loop in between bytecodes, not inside one C call: a full (gen-2)
garbage collection is one, and it walks every tracked object - with a 100k-test
state alive, seconds in which the loop, /healthz and every other object wait
(measured: up to 3 s per collection, 7-8 s in all while one such state was merged and
decoded). So the collector follows a policy around the pieces (`_collector_policy`):

- while any piece runs, gen-2 collections are off (its threshold raised, not the
  collector disabled: gen-0 and gen-1 collections, which walk only young objects, go
  on and still free the loop's short-lived cycles);
- when the last piece ends, what is alive is frozen (``gc.freeze``): the states,
  results and reports a piece made - and the decoded states the reconciler keeps - are
  out of every later collection's sight. A frozen object is still freed by its
  reference count when dropped; the engine's values (frozen dataclasses, tuples, dicts
  of strings) hold no reference cycles, so none of them is kept for good;
- when the first piece starts, one full collection runs first: it walks only what is
  not frozen (what the loop made since the last freeze: milliseconds), and frees the
  cycles that reached gen 2 before they could be frozen.

The bound: what is frozen and never freed is a cycle that became garbage in gen 2
during a piece (the loop's, not the work's: the work makes none) - the loop's
long-lived cycles in the seconds a piece runs, not the state's size.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import threading
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

#: gen-2 threshold while pieces run: no number of gen-1 collections reaches it.
NO_FULL_COLLECTIONS = 1 << 30


class _CollectorPolicy:
    """Counts the pieces running in every worker; the first to start and the last to
    end apply the policy in the module's docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._threshold2 = 0

    def enter(self) -> None:
        with self._lock:
            self._running += 1
            if self._running > 1:
                return
            gc.collect()  # only what is not frozen: the loop's since the last piece
            young, middle, self._threshold2 = gc.get_threshold()
            gc.set_threshold(young, middle, NO_FULL_COLLECTIONS)

    def exit(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running > 0:
                return
            young, middle, _ = gc.get_threshold()
            gc.set_threshold(young, middle, self._threshold2)
            gc.collect(1)  # the young garbage, before the survivors are frozen
            gc.freeze()


_collector_policy = _CollectorPolicy()


def _piece(fn: Callable[[], R]) -> R:
    _collector_policy.enter()
    try:
        return fn()
    finally:
        _collector_policy.exit()


def _executor() -> ThreadPoolExecutor:
    global _pool  # one pool per process, made on first use (the CLI never needs it)
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="greenloop-work")
    return _pool


async def offload(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` in a worker thread; the loop runs on meanwhile."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(_executor(), _piece, call)
