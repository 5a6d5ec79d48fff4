"""Garbage-collector policy for a process holding thousands of long-lived actors.

CPython's full (generation 2) collection walks every tracked object: with 5,000 practices that
is some 300,000 objects (actor tasks, their coroutine frames, cancel scopes, folds) and a pause
of 150–250 ms, long enough to break the event-loop lag bound (p99 ≤ 50 ms, ``bench.scale``).
Nearly all of those objects live as long as the process, so they are moved out of the
collector's sight: every ``FREEZE_EVERY_S`` (first ``FIRST_FREEZE_S`` after start; start-up
onboarding of thousands of practices takes a minute or more, so the freeze repeats) one full
collection frees whatever is already garbage, then ``gc.freeze()`` puts every survivor in the
permanent generation. Later collections walk only the objects created since, and so does the
next freeze's collection (tens of milliseconds, once a minute: below the p99). A frozen object
that dies is still freed by reference counting; only a reference cycle that becomes garbage
after its freeze (a stopped actor's task and frames, say) is out of reach, so once every
``UNFREEZE_EVERY_S`` the permanent generation is thawed first and the collection walks
everything: one full pause an hour bounds what such cycles can hold.

Then, on glibc, ``malloc_trim(0)``: start-up (thousands of concurrent key grants) leaves the C
heap fragmented, and trimming hands the free pages back (26 MiB of 198 MiB at 5,000 practices).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

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


async def freeze_long_lived(
    first: float = FIRST_FREEZE_S, every: float = FREEZE_EVERY_S, thaw_every: float = UNFREEZE_EVERY_S
) -> None:
    await trio.sleep(first)
    thawed = trio.current_time()
    while True:
        if trio.current_time() - thawed >= thaw_every:
            gc.unfreeze()
            thawed = trio.current_time()
        collected = gc.collect()
        gc.freeze()
        if MALLOC_TRIM is not None:
            MALLOC_TRIM(0)
        log.info("gc.frozen", collected=collected, frozen=gc.get_freeze_count())
        await trio.sleep(every)
