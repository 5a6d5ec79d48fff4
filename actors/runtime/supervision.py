"""One-for-one supervision of practice actors, with OTP's intensity/period rule.

``supervise(child, policy, ...)`` runs ``child()`` in a loop: a clean return ends supervision
(a *transient* child); a crash (any ``Exception``) is logged and the child is restarted after a
jittered, growing backoff. More than ``policy.intensity`` crashes within ``policy.period`` seconds
*parks* the child: it stays down for ``policy.park_for`` seconds (a cool-down reported through
``on_park``), then runs again with a clean slate (the child records the end of its parking when
it starts: for practice actors, ``actors.core.recover``).

A crash the child did not cause (``transient(exc)``: for practice actors, the database was away)
is restarted after the same backoff (its own streak, capped at ``TRANSIENT_MAX_CRASHES``
doublings) but never counts toward parking: an outage must not park every practice for 15 minutes.

This is the one place in the program that catches crashes. ``trio.Cancelled`` (a
``BaseException``) is never caught, and neither is a ``BaseExceptionGroup`` holding one: they
pass straight through, so stopping a practice or the process always works. One practice's
crash never reaches its siblings: each child runs in its own ``supervise`` call.

::

      ┌──────── crash, backoff ◄──────────┐
      ▼                                    │
    start ──► running ──── crash ──────────┤ (≤ intensity in period)
                 │                         │
                 │ clean return            └─► too many ──► parked ── park_for ──► start
                 ▼
               ended
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import msgspec
import structlog
import trio

from actors.monitoring import tracking
from actors.process.logs import scrub_text

log = structlog.get_logger("supervisor")


class RestartPolicy(msgspec.Struct, frozen=True):
    intensity: int = 5  # crashes allowed …
    period: float = 300.0  # … within this many seconds, else park
    base_delay: float = 1.0  # first restart delay; doubles per recent crash, jittered
    max_delay: float = 60.0
    park_for: float = 900.0  # cool-down before a parked child runs again


def restart_delay(policy: RestartPolicy, recent_crashes: int, jitter: float) -> float:
    """Backoff before the next restart: base × 2^(n-1), capped, times a jitter in [0.5, 1.0].

    >>> restart_delay(RestartPolicy(), 1, 1.0), restart_delay(RestartPolicy(), 3, 1.0)
    (1.0, 4.0)
    """
    return min(policy.max_delay, policy.base_delay * 2 ** max(0, recent_crashes - 1)) * (0.5 + 0.5 * jitter)


class SupervisionStatistics(msgspec.Struct, frozen=True):
    restarts: int
    crashes_in_period: int
    parked: bool
    last_error: str | None


_JITTER = random.Random()
TRANSIENT_MAX_CRASHES = 4  # a transient streak's backoff stops doubling here (base × 8)


class Supervised:
    """The supervision record of one child (what ``statistics()`` reports)."""

    def __init__(
        self,
        name: str,
        policy: RestartPolicy,
        rng: random.Random | None = None,
        transient: Callable[[Exception], bool] = lambda exc: False,
    ):
        self.name = name
        self.policy = policy
        self.rng = rng or _JITTER  # shared: a Random's state is 2.5 KiB, per practice that adds up
        self.transient = transient
        self.restarts = 0
        self.parked = False
        self.last_error: str | None = None
        self._crashes: list[float] = []  # within the period (a list: an empty deque takes 600 bytes)

    def statistics(self) -> SupervisionStatistics:
        return SupervisionStatistics(self.restarts, len(self._crashes), self.parked, self.last_error)

    async def run(
        self,
        child: Callable[[], Awaitable[None]],
        *,
        on_crash: Callable[[BaseException], Awaitable[None]] | None = None,
        on_park: Callable[[float, str], Awaitable[None]] | None = None,
    ) -> None:
        """Run ``child`` under the policy until it returns cleanly (or the caller cancels)."""
        transient_streak = 0
        while True:
            try:
                await child()
                return
            except Exception as exc:  # the one place that catches crashes (Cancelled passes through)
                # the text reaches the event log (parking), alerts and Slack: never a secret
                error = scrub_text(f"{type(exc).__name__}: {exc}")
                self.last_error = error
                transient = self.transient(exc)
                if transient:
                    log.warning("actor.interrupted", actor=self.name, error=error)
                else:
                    log.error("actor.crashed", actor=self.name, error=error, exc_info=exc)
                    tracking.capture(exc, office_id=self.name)
                if on_crash is not None:
                    await on_crash(exc)
            if transient:
                transient_streak = min(transient_streak + 1, TRANSIENT_MAX_CRASHES)
                await trio.sleep(restart_delay(self.policy, transient_streak, self.rng.random()))
                self.restarts += 1
                continue
            transient_streak = 0
            now = trio.current_time()
            self._crashes = [t for t in self._crashes if t >= now - self.policy.period] + [now]
            if len(self._crashes) > self.policy.intensity:
                self.parked = True
                log.error("actor.parked", actor=self.name, seconds=self.policy.park_for, error=self.last_error)
                if on_park is not None:
                    await on_park(self.policy.park_for, self.last_error or "")
                await trio.sleep(self.policy.park_for)
                self._crashes.clear()
                self.parked = False
            else:
                await trio.sleep(restart_delay(self.policy, len(self._crashes), self.rng.random()))
            self.restarts += 1
            log.info("actor.restarting", actor=self.name, restarts=self.restarts)
