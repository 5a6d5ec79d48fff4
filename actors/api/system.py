"""The supervisor as a whole (interface §4): health, rate usage, alerts, metrics, onboarding and
Sikka's webhook.

- ``GET /health``: 200 with the count of practices served (offboarded ones are not) while the
  database is usable, else 503 ``degraded`` with the reason: from the supervisor's background
  probe (``store.probe.DatabaseProbe``: the count read again for at most ``HEALTH_READ_S``, the
  last known one after that; without a probe: one read of the store, as long);
- ``GET /usage``: each running actor's rate budget; ``GET /alerts``: the monitor's alert table;
  ``GET /metrics``: the Prometheus exposition (404 when metrics are not collected);
- ``POST /onboard``: the authorization flow now (``AppLevel.onboard``), audited; with
  ``{"office_id"}`` for that practice only (an offboarded one comes back this way); it may take a
  while with many practices, so only each of its database calls is bounded, not their sum;
- ``POST /webhooks/sikka``: authenticated by its ``callback-key`` (constant-time compare; 404 when
  no key is configured), it asks for an early status poll and, at most every
  ``WEBHOOK_ONBOARD_S``, an onboarding check; ``last_webhook_at`` feeds the monitor.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
import trio

from actors.api.auth import webhook_refusal
from actors.api.http import Request, Response, json_response
from actors.api.errors import ApiError, audit, upstream_error
from actors.api.version import VERSION
from actors.api.schemas import OnboardBody
from actors.api.views import Accepted, Degraded, Health, OnboardReport, UsageList, alert_views, usage_view
from actors.core import alerting
from actors.monitoring import metrics as prometheus
from actors.monitoring.metrics import Metrics
from actors.monitoring.monitor import Monitor
from actors.runtime.applevel import AppLevel, NotAuthorized, OnboardFailed
from actors.runtime.deps import Deps
from actors.runtime.practices import PracticeSupervisor
from store.db import DatabaseUnavailable, answer_within
from store.probe import DatabaseProbe, DatabaseStatus

HEALTH_READ_S = 0.25
WEBHOOK_ONBOARD_S = 60.0  # a webhook triggers an onboarding check at most this often


class SystemHandlers:
    def __init__(
        self, deps: Deps, practices: PracticeSupervisor, app: AppLevel, monitor: Monitor | None,
        metrics: Metrics | None, database: DatabaseProbe | None = None,
    ):
        self.deps = deps
        self.database = database
        self.practices = practices
        self.app = app
        self.monitor = monitor  # the alert table
        self.metrics = metrics
        self.webhooks_received = 0
        self.last_webhook_at: datetime | None = None
        self._last_webhook_onboarding: float | None = None  # trio time

    async def health(self, request: Request) -> Response:
        if self.database is not None:
            status = await self.database.fresh(HEALTH_READ_S)
        else:
            status = await self._read_status()
        if not status.ok:
            return json_response(503, Degraded("degraded", f"the database is unusable: {status.detail}"))
        return json_response(200, Health("ok", status.practices, VERSION, self.deps.settings.node_id))

    async def _read_status(self) -> DatabaseStatus:
        """Without a probe (an in-process system): one read of the store."""
        with trio.move_on_after(HEALTH_READ_S):
            try:
                rows = await self.deps.store.practices()
                served = sum(1 for row in rows if row.practice.registered and not row.practice.offboarded)
                return DatabaseStatus(ok=True, practices=served)
            except DatabaseUnavailable as exc:
                return DatabaseStatus(ok=False, detail=str(exc))
        return DatabaseStatus(ok=False, detail=f"no answer within {HEALTH_READ_S:g} s")

    async def usage(self, request: Request) -> Response:
        now = self.deps.clock().timestamp()
        rows = [
            usage_view(office_id, actor.state.practice_name, actor.budget.statistics(now))
            for office_id, actor in sorted(self.practices.actors.items())
        ]
        return json_response(200, UsageList(rows))

    async def alerts(self, request: Request) -> Response:
        return json_response(200, alert_views(alerting.listing(self.monitor.table if self.monitor else {})))

    async def metrics_text(self, request: Request) -> Response:
        if self.metrics is None:
            raise ApiError(404, "not_found", "metrics are not collected")
        return Response(200, self.metrics.exposition(), prometheus.CONTENT_TYPE)

    async def onboard(self, request: Request, body: OnboardBody | None) -> Response:
        office_id = body.office_id if body is not None else None
        audit(request, "onboard", office_id)
        try:
            with answer_within(None):  # every practice's steps: each database call bounded on its own
                report = await self.app.onboard(office_id)
        except OnboardFailed as exc:
            raise upstream_error(exc.outcome) from None
        except NotAuthorized as exc:
            raise ApiError(404, "unknown_practice", str(exc), "office_id") from None
        return json_response(200, msgspec.convert({"practices": report}, OnboardReport))

    async def webhook(self, request: Request) -> Response:
        refusal = webhook_refusal(self.deps.settings.webhook_callback_key, request.headers)
        if refusal is not None:
            raise refusal
        self.webhooks_received += 1
        self.last_webhook_at = self.deps.clock()
        self.app.targets_changed()  # an early status poll (coalesced by the list planner)
        now = trio.current_time()
        if self._last_webhook_onboarding is None or now - self._last_webhook_onboarding >= WEBHOOK_ONBOARD_S:
            self._last_webhook_onboarding = now
            self.app.request_onboarding()
        return json_response(202, Accepted("accepted"))
