"""Prometheus metrics (``GET /metrics``, interface section 4), in a registry of their own.

Two kinds of series:

- read at scrape time by ``StateCollector`` from what already exists (the actors' budgets and
  states, the supervision records, the alert table): ``sikka_rate_used``, ``sikka_rate_limit``,
  ``sikka_writebacks``, ``sikka_token_expiry_seconds``, ``sikka_actor_restarts_total``,
  ``sikka_alerts``. Nothing is updated per event for them;
- recorded as things happen: ``sikka_requests_total`` (``SikkaClient``'s ``on_call`` hook; the
  practice comes from the ``office_id`` bound in the calling task's log context, ``app`` for
  app-level calls), the confirmation and overshoot histograms (``observe_events``: the actor's
  events hook, with the state before them), ``sikka_event_append_seconds`` (``TimedStore``
  around the event store) and ``sikka_loop_lag_seconds`` (the samples of ``actors.monitoring.looplag``'s
  probe: how late a short sleep wakes up).

No label or value ever carries a payload or a secret: labels are office ids, endpoint names
(the first path segment), HTTP statuses, writeback states and alert kinds.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from actors.core import alerting
from actors.core import events as ev
from actors.core.state import WRITEBACK_STATES, Practice, writeback_counts

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def sikka_time(text: str | None) -> datetime | None:
    """Sikka's completion time (``yyyy-MM-dd HH:mm:ss`` or with ``T``, UTC) or None."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def endpoint_of(path: str) -> str:
    """The endpoint label of a Sikka path: its first segment (ids never reach a label)."""
    return path.strip("/").split("/", 1)[0] or "/"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # plain counts behind sikka_requests_total: a labelled prometheus child costs about 1 KiB,
        # two or three per practice (bench.scale counts every KiB per practice)
        self.requests: collections.Counter[tuple[str, str, str]] = collections.Counter()
        r.register(self)
        self.confirmation = Histogram(
            "sikka_writeback_confirmation_seconds",
            "writeback request to recorded completion",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 21600),
            registry=r,
        )
        self.overshoot = Histogram(
            "sikka_writeback_overshoot_seconds",
            "Sikka's completion time to the recorded outcome",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
            registry=r,
        )
        self.event_append = Histogram(
            "sikka_event_append_seconds",
            "event store append latency",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.loop_lag = Histogram(
            "sikka_loop_lag_seconds",
            "how late the event loop wakes a short sleep",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )

    def on_call(self, path: str, status: int | None, outcome: str) -> None:
        office_id = structlog.contextvars.get_contextvars().get("office_id") or "app"
        self.requests[(office_id, endpoint_of(path), str(status) if status is not None else outcome)] += 1

    def collect(self):
        requests = CounterMetricFamily(
            "sikka_requests", "Sikka requests by practice, endpoint and status", labels=["office_id", "endpoint", "status"]
        )
        for labels, count in sorted(self.requests.items()):
            requests.add_metric(list(labels), count)
        yield requests

    def observe_events(self, before: Practice, events: list[ev.Event]) -> None:
        """Confirmation and overshoot of the writebacks that ``events`` complete."""
        for e in events:
            if isinstance(e, ev.WritebackCompleted):
                wb = before.writebacks.get(e.writeback_id)
                if wb is not None:
                    self.confirmation.observe(max(0.0, (e.at - wb.requested_at).total_seconds()))
            if isinstance(e, ev.WritebackCompleted | ev.WritebackFailed):
                done = sikka_time(e.sikka_completed_time)
                if done is not None:
                    self.overshoot.observe(max(0.0, (e.at - done).total_seconds()))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class StateCollector:
    """The gauges read at scrape time from the practice supervisor, the alert table and the
    app-level task's counters (``AppLevel.statistics``)."""

    def __init__(
        self, practices, alert_table: Callable[[], alerting.Table], clock: Callable[[], datetime], app_level=None
    ):
        self.practices = practices
        self.alert_table = alert_table
        self.clock = clock
        self.app_level = app_level

    def collect(self):
        now = self.clock()
        used = GaugeMetricFamily("sikka_rate_used", "requests sent in the last 60 s", labels=["office_id"])
        limit = GaugeMetricFamily("sikka_rate_limit", "effective requests per 60 s", labels=["office_id"])
        expiry = GaugeMetricFamily("sikka_token_expiry_seconds", "seconds until the request key expires", labels=["office_id"])
        writebacks = GaugeMetricFamily("sikka_writebacks", "writebacks by state", labels=["office_id", "state"])
        restarts = CounterMetricFamily("sikka_actor_restarts", "actor restarts", labels=["office_id"])
        alerts = GaugeMetricFamily("sikka_alerts", "alerts holding", labels=["kind", "severity"])
        for office_id, actor in sorted(self.practices.actors.items()):
            budget = actor.budget.statistics(now.timestamp())
            used.add_metric([office_id], budget.used_last_60s)
            limit.add_metric([office_id], budget.limit)
            if actor.state.token_expires_at is not None:
                expiry.add_metric([office_id], (actor.state.token_expires_at - now).total_seconds())
            counts = writeback_counts(actor.state)
            for state in WRITEBACK_STATES:
                writebacks.add_metric([office_id, state], counts.get(state, 0))
        for office_id, supervised in sorted(self.practices.supervised.items()):
            restarts.add_metric([office_id], supervised.restarts)
        held = alerting.counts(self.alert_table())
        for kind in alerting.KINDS:
            severity = alerting.SEVERITY[kind]
            alerts.add_metric([kind, severity], held.get((kind, severity), 0))
        yield from (used, limit, expiry, writebacks, restarts, alerts)
        if self.app_level is not None:
            yield from self._confirmation(self.app_level.statistics())

    @staticmethod
    def _confirmation(stats):
        rounds = CounterMetricFamily(
            "sikka_confirmation_rounds",
            "confirmation rounds: a GET /writebacks round, or status reads",
            labels=["method"],
        )
        rounds.add_metric(["list"], stats.list_rounds)
        rounds.add_metric(["status"], stats.status_rounds)
        pages = CounterMetricFamily("sikka_list_pages", "GET /writebacks pages read (one app-level call each)")
        pages.add_metric([], stats.list_pages)
        planned = CounterMetricFamily(
            "sikka_status_checks_planned", "writebacks handed to their practice for a writeback_status check"
        )
        planned.add_metric([], stats.status_checks)
        app_limit = GaugeMetricFamily("sikka_app_rate_limit", "this node's share of the app-level limit per 60 s")
        app_limit.add_metric([], stats.budget.limit)
        yield from (rounds, pages, planned, app_limit)


class TimedStore:
    """An event store whose appends are timed into ``sikka_event_append_seconds``."""

    def __init__(self, inner, histogram: Histogram):
        self.inner = inner
        self._histogram = histogram

    async def append(self, stream_id: str, expected_version: int, events) -> int:
        began = time.perf_counter()
        try:
            return await self.inner.append(stream_id, expected_version, events)
        finally:
            self._histogram.observe(time.perf_counter() - began)

    def __getattr__(self, name):
        return getattr(self.inner, name)
