"""The monitor: the shell around ``actors.alerting``, a task in the supervisor's nursery.

Every ``period`` seconds it takes a ``Snapshot`` (the running actors' states and budgets, the
supervision records, the recorded outcomes of the last 24 h, whether the database answers, when
the webhook last called), folds the raised conditions into the alert table (``GET /alerts``,
``sikka_alerts``) and hands each onset and clearing to the log and to ``publish`` (the Slack
notifier's non-blocking queue).

The database is probed by a task of its own (``recent_outcomes``, one aggregate query), so a
database that hangs never stalls the evaluation: a probe that failed, or that has not answered
for ``DB_TIMEOUT_S``, raises ``database_unreachable`` while the last figures stand in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
import trio

from actors import alerting, tracking
from actors.alerting import Outcomes, PracticeView, Snapshot, Transition
from store.db import DatabaseUnavailable

log = structlog.get_logger("alerts")

MONITOR_S = 5.0
DB_TIMEOUT_S = 5.0


class Monitor:
    def __init__(
        self,
        deps,
        practices,
        *,
        webhook_last_at: Callable[[], datetime | None] = lambda: None,
        publish: Callable[[Transition], None] = lambda t: None,
        period: float = MONITOR_S,
    ):
        self.deps = deps
        self.practices = practices
        self.webhook_last_at = webhook_last_at
        self.publish = publish
        self.period = period
        self.table: alerting.Table = {}
        self.started_at = deps.clock()
        self._names: dict[str, str] = {}
        self._outcomes: dict[str, Outcomes] = {}
        self._db_error: str | None = None
        self._probe_began: float | None = None  # trio time of the probe in flight

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._probe_database)
            task_status.started()
            while True:
                try:
                    self.evaluate()
                except Exception as exc:  # a monitoring bug must never stop the supervisor
                    log.error("alerts.evaluation_failed", error=repr(exc), exc_info=exc)
                    tracking.capture(exc)
                await trio.sleep(self.period)

    def evaluate(self) -> list[Transition]:
        snapshot = self.snapshot()
        self.table, transitions = alerting.fold(self.table, alerting.raised(snapshot), snapshot.now)
        for t in transitions:
            a = t.alert
            log.warning(
                "alert.onset" if t.phase == "onset" else "alert.cleared",
                kind=a.kind,
                severity=a.severity,
                office_id=a.office_id,
                message=a.message,
            )
            self.publish(t)
        return transitions

    def snapshot(self) -> Snapshot:
        now = self.deps.clock()
        views = []
        for office_id, supervised in list(self.practices.supervised.items()):
            stats = supervised.statistics()
            actor = self.practices.actors.get(office_id)
            if actor is not None and actor.state.practice_name:
                self._names[office_id] = actor.state.practice_name
            views.append(
                PracticeView(
                    office_id=office_id,
                    practice_name=self._names.get(office_id, ""),
                    practice=actor.state if actor is not None else None,
                    budget=actor.budget.statistics(now.timestamp()) if actor is not None else None,
                    crashes_in_period=stats.crashes_in_period,
                    parked=stats.parked,
                    last_error=stats.last_error,
                )
            )
        error = self._db_error
        if self._probe_began is not None and trio.current_time() - self._probe_began > DB_TIMEOUT_S:
            error = f"no answer for over {DB_TIMEOUT_S:g} s"
        settings = self.deps.settings
        return Snapshot(
            now=now,
            practices=tuple(views),
            outcomes=self._outcomes,
            database_ok=error is None,
            database_error=error or "",
            webhook_configured=bool(settings.webhook_callback_key),
            webhook_last_at=self.webhook_last_at(),
            started_at=self.started_at,
        )

    async def _probe_database(self) -> None:
        while True:
            self._probe_began = trio.current_time()
            try:
                raw = await self.deps.store.recent_outcomes(self.deps.clock())
            except DatabaseUnavailable as exc:
                self._db_error = str(exc)
            else:
                self._outcomes = {
                    office_id: Outcomes(failed_24h=f24, failed_1h=f1, completed_1h=c1)
                    for office_id, (f24, f1, c1) in raw.items()
                }
                self._db_error = None
            self._probe_began = None
            await trio.sleep(self.period)
