"""The event loop's share of the GIL.

The supervisor's trio loop shares the interpreter with worker threads: the database's psycopg
calls (parsing thousands of rows for a lease round or the projections), the lease plan,
``malloc_trim``. While one of them runs Python code, the loop thread, back from ``epoll`` with
tasks to run, waits for the GIL, and CPython asks the holder to give it up only after the switch
interval (5 ms by default). Every pass of the loop can wait that long and a wake-up takes one or
two passes: at 20,000 practices the loop-lag samples of 10–20 ms came with the worker threads'
busy moments. ``favour_the_loop`` sets the interval to ``SWITCH_INTERVAL_S``: the loop waits at
most about a millisecond for a busy thread, which is asked to pause more often (a cost of
microseconds each time).
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.001


def favour_the_loop() -> float:
    """Set the interpreter's switch interval to ``SWITCH_INTERVAL_S``; return the previous one."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return previous
