"""Garbage-collector policy for a process holding thousands of long-lived actors.

CPython's full (generation 2) collection walks every tracked object: with 20,000 practices that
is some 900,000 objects (actor tasks, their coroutine frames, cancel scopes, folds) and a pause
of 300 ms or more, far beyond the event-loop lag bound (p99 ≤ 10 ms, ``bench.scale``). Nearly
all of those objects live as long as the process, so they are moved out of the collector's
sight: every ``FREEZE_EVERY_S`` (first ``FIRST_FREEZE_S`` after start; start-up onboarding of
thousands of practices takes minutes, so the freeze repeats) one full collection walks what is
not frozen yet (the survivors of the last minute: some 70,000 objects and 50 ms at 20,000
practices in steady state, as each actor's step leaves new waiting coroutines behind) and
``gc.freeze()`` puts every survivor in the permanent generation (a list splice: no walk). Later
collections see only the objects created since. A frozen object that dies is still freed by
reference counting; only a reference cycle that reached the old generation before its freeze, or
became garbage after it (a stopped actor's task and frames, say), is out of reach, so once every
``UNFREEZE_EVERY_S`` the permanent generation is thawed and one full collection walks
everything: one full pause an hour bounds what such cycles can hold.

While the policy runs, CPython's own full collections are off (``gc.set_threshold``'s third
threshold out of reach; the young generations keep theirs): the policy's once a minute is the only
full walk. CPython started one whenever the objects promoted since the last one passed a quarter
of those it had found: at 20,000 practices every 6 s, 50–90 ms each, on the event loop or in
whichever worker thread allocated (holding the GIL the loop waits for), and several times a
minute at 300–640 ms before the first freeze.

Then, on glibc, ``malloc_trim(0)`` in a worker thread (ctypes releases the GIL; Python's small
objects come from its own arenas, so the loop rarely waits for glibc's): start-up (thousands of
concurrent key grants) leaves the C heap fragmented, and trimming hands the free pages back (26
MiB of 198 MiB at 5,000 practices; 60–100 ms of work at 20,000, once held on the event loop).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time

import structlog
import trio

log = structlog.get_logger("gcpolicy")


def _malloc_trim():
    """glibc's ``malloc_trim`` (hands freed heap pages back to the OS), or ``None`` elsewhere."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


MALLOC_TRIM = _malloc_trim()

FIRST_FREEZE_S = 30.0
FREEZE_EVERY_S = 60.0
UNFREEZE_EVERY_S = 3600.0
NO_AUTOMATIC_FULL = 2**31 - 1  # gc.set_threshold's third threshold: never reached


async def freeze_long_lived(
    first: float = FIRST_FREEZE_S, every: float = FREEZE_EVERY_S, thaw_every: float = UNFREEZE_EVERY_S
) -> None:
    """Run the policy until cancelled (CPython's thresholds are restored then)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], NO_AUTOMATIC_FULL)
    try:
        await trio.sleep(first)
        thawed = trio.current_time()
        while True:
            began = time.perf_counter()
            if trio.current_time() - thawed >= thaw_every:
                gc.unfreeze()
                thawed = trio.current_time()
            collected = gc.collect()  # what is not frozen (everything, once an hour)
            gc.freeze()
            paused_ms = round((time.perf_counter() - began) * 1000, 1)
            if MALLOC_TRIM is not None:
                await trio.to_thread.run_sync(MALLOC_TRIM, 0)
            log.info("gc.frozen", collected=collected, paused_ms=paused_ms)  # (no get_freeze_count: it walks them all)
            await trio.sleep(every)
    finally:
        gc.set_threshold(*thresholds)
