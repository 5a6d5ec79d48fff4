"""The monitor: the shell around ``actors.core.alerting``, a task in the supervisor's nursery.

Every ``period`` seconds it takes ``Snapshot``s (the running actors' states and budgets, the
supervision records, the recorded outcomes of the last 24 h, whether the database answers, when
the webhook last called; in chunks of ``CHUNK`` practices with a checkpoint between them, so
5,000 practices never hold the event loop for tens of milliseconds), folds the raised
conditions into the alert table (``GET /alerts``,
``sikka_alerts``) and hands each onset and clearing to the log and to ``publish`` (the Slack
notifier's non-blocking queue).

The outcome figures are read by a task of its own (``recent_outcomes``, one aggregate query), so a
database that hangs never stalls the evaluation: the last figures stand in. ``database_unreachable``
holds while ``database_problem()`` names one (the supervisor's probe, ``store.probe``: down,
frozen or read-only); without it, while that read failed or has not answered for ``DB_TIMEOUT_S``.

With ``rows`` (``store.alerts.AlertRows``: this node's rows of the ``alerts`` table) the table
survives restarts: it is read back at start (an alert that held when the node stopped keeps its
``since`` and raises no second onset; one whose condition is gone clears 2 minutes later), and a
task of its own mirrors every onset and clearing into the database, so a slow or failing database
delays the mirror, never the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import structlog
import trio

from actors.core import alerting
from actors.monitoring import tracking
from actors.core.alerting import Outcomes, PracticeView, Snapshot, Transition
from store.alerts import AlertRows
from store.db import DatabaseUnavailable

log = structlog.get_logger("alerts")

MONITOR_S = 5.0
CHUNK = 100  # practices evaluated between two checkpoints (about 2 ms: 20 µs each)
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
        rows: AlertRows | None = None,
        database_problem: Callable[[], str | None] | None = None,
    ):
        self.deps = deps
        self.practices = practices
        self.webhook_last_at = webhook_last_at
        self.publish = publish
        self.period = period
        self.database_problem = database_problem
        self.table: alerting.Table = {}
        self.started_at = deps.clock()
        self._names: dict[str, str] = {}
        self._outcomes: dict[str, Outcomes] = {}
        self._db_error: str | None = None
        self._probe_began: float | None = None  # trio time of the probe in flight
        self.rows = rows  # None: the table lives in memory only
        self._stored: alerting.Table = {}  # the table as last written to ``rows``
        self._changed = trio.Event()  # set: the table has onsets or clearings not yet written

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self._restore()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._probe_database)
            if self.rows is not None:
                nursery.start_soon(self._mirror)
            task_status.started()
            while True:
                try:
                    await self.evaluate()
                except Exception as exc:  # a monitoring bug must never stop the supervisor
                    log.error("alerts.evaluation_failed", error=repr(exc), exc_info=exc)
                    tracking.capture(exc)
                await trio.sleep(self.period)

    async def evaluate(self) -> list[Transition]:
        now = self.deps.clock()
        conditions = []
        for snapshot in self.snapshots(now):
            conditions += alerting.raised(snapshot)
            await trio.sleep(0)  # thousands of practices: let the actors run between chunks
        self.table, transitions = alerting.fold(self.table, conditions, now)
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
        if transitions:
            self._changed.set()
        return transitions

    def snapshots(self, now: datetime) -> Iterator[Snapshot]:
        """The state at ``now`` in parts whose conditions add up to the whole: the supervised
        practices ``CHUNK`` at a time (each taken when its turn comes), then the rest (outcomes of
        practices not supervised here, the database, the webhook)."""
        supervised = list(self.practices.supervised.items())
        for start in range(0, len(supervised), CHUNK):
            views = tuple(self._view(office_id, s, now) for office_id, s in supervised[start : start + CHUNK])
            outcomes = {v.office_id: self._outcomes[v.office_id] for v in views if v.office_id in self._outcomes}
            yield Snapshot(now=now, practices=views, outcomes=outcomes)
        seen = {office_id for office_id, _ in supervised}
        error = self._db_error
        if self._probe_began is not None and trio.current_time() - self._probe_began > DB_TIMEOUT_S:
            error = f"no answer for over {DB_TIMEOUT_S:g} s"
        if self.database_problem is not None:
            error = self.database_problem()
        yield Snapshot(
            now=now,
            outcomes={k: v for k, v in self._outcomes.items() if k not in seen},
            database_ok=error is None,
            database_error=error or "",
            webhook_configured=bool(self.deps.settings.webhook_callback_key),
            webhook_last_at=self.webhook_last_at(),
            started_at=self.started_at,
        )

    def _view(self, office_id: str, supervised, now: datetime) -> PracticeView:
        stats = supervised.statistics()
        actor = self.practices.actors.get(office_id)
        if actor is not None and actor.state.practice_name:
            self._names[office_id] = actor.state.practice_name
        return PracticeView(
            office_id=office_id,
            practice_name=self._names.get(office_id, ""),
            practice=actor.state if actor is not None else None,
            budget=actor.budget.statistics(now.timestamp()) if actor is not None else None,
            crashes_in_period=stats.crashes_in_period,
            parked=stats.parked,
            last_error=stats.last_error,
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

    async def _restore(self) -> None:
        """The alerts that held when this node last stopped (``rows``), as the starting table."""
        if self.rows is None:
            return
        try:
            self.table = await self.rows.load()
        except Exception as exc:  # without its history the monitor still runs: alerts start anew
            log.error("alerts.restore_failed", error=str(exc))
            return
        self._stored = dict(self.table)
        if self.table:
            log.info("alerts.restored", count=len(self.table))

    async def _mirror(self) -> None:
        """Write each onset and clearing to ``rows``; a failed write is tried again a period later."""
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            table = self.table
            held = [a for key, a in table.items() if key not in self._stored or self._stored[key].since != a.since]
            cleared = [key for key in self._stored if key not in table]
            if not held and not cleared:
                continue
            try:
                await self.rows.save(held, cleared)
            except Exception as exc:  # e.g. DatabaseUnavailable, or a role without the grant on alerts
                log.error("alerts.save_failed", error=str(exc))
                self._changed.set()
                await trio.sleep(self.period)
            else:
                self._stored = dict(table)
