"""What every practice actor shares, built once by the composition root (``supervisor.py``).

``Deps`` holds the store, the credentials vault, the Sikka client, the settings (and the pure
core's ``CoreSettings`` derived from them), the clock, the app-level budget, the starting actors'
grouped reads (``actors.runtime.loads``), and the hooks the
supervisor listens to: ``on_targets_changed`` (the app-level list task re-plans),
``on_events`` (the metrics' histograms), ``owns`` / ``owner_of`` (practice leases: a lone process
owns every practice it runs), ``database_problem`` (why the database is not usable now, from the
supervisor's probe: ``store.probe``; ``None`` when fine or not probed).

Clocks: ``utc_now`` in production; ``mock_clock(epoch)`` follows trio's clock (MockClock in
tests and the benchmarks' virtual time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import trio

from actors.core import events as ev
from actors.core.policy import CoreSettings
from actors.core.ratelimit import Budget
from actors.core.state import Practice
from actors.runtime.loads import Loads


class Deps:
    def __init__(
        self,
        *,
        store,
        credentials,
        client,
        settings,
        clock: Callable[[], datetime],
        app_budget: Budget,
        on_targets_changed: Callable[[], None] = lambda: None,
        on_events: Callable[[Practice, list[ev.Event]], None] = lambda before, events: None,
        owns: Callable[[str], Awaitable[bool]] | None = None,
        owner_of: Callable[[str], Awaitable[str | None]] | None = None,
        database_problem: Callable[[], str | None] = lambda: None,
    ):
        self.store = store
        self.credentials = credentials
        self.client = client
        self.settings = settings
        self.core_settings = CoreSettings.from_settings(settings)
        self.clock = clock
        self.app_budget = app_budget
        self.on_targets_changed = on_targets_changed
        self.on_events = on_events  # (state before, events appended): the metrics' histograms
        self.owns = owns or _owned_here
        self.owner_of = owner_of or _no_leases
        self.database_problem = database_problem
        self.loads = Loads(self)  # starting actors' reads, grouped

    def deadline(self, at: datetime) -> float:
        """The trio deadline of wall-clock time ``at``."""
        return trio.current_time() + max(0.0, (at - self.clock()).total_seconds())


async def _owned_here(office_id: str) -> bool:
    """Without leases (one process, tests) this process owns every practice it runs."""
    return True


async def _no_leases(office_id: str) -> str | None:
    return None


def utc_now() -> datetime:
    return datetime.now(UTC)


def mock_clock(epoch: datetime) -> Callable[[], datetime]:
    """Wall time that follows trio's clock (MockClock in tests): ``epoch + current_time()``."""
    return lambda: epoch + timedelta(seconds=trio.current_time())
