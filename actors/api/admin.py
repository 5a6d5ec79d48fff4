"""The admin API (interface section 4): HTTP/1.1 + JSON on the Unix socket (``actors.api.http``).

``Admin`` is what the composition root (``supervisor.serve``) builds and serves: the route table
below, read top to bottom, is the whole API, and ``handle`` answers one request through it
(``actors.api.router``). The handlers are grouped by topic and receive only what they need:

- ``actors.api.practices``: practices and the operator's actions on them;
- ``actors.api.writebacks``: submit (the submission flow is drawn there), read with ``?wait``,
  list, cancel, statistics;
- ``actors.api.sikka_reads``: Sikka reads through the practice's actor;
- ``actors.api.system``: health, usage, alerts, metrics, onboarding, Sikka's webhook;
- ``/openapi.json``: ``actors.api.openapi``, generated from the same table.

Handlers read the projections and the actors' statistics, and deliver commands to the actors
(``actors.api.access``), which answer after their events are committed. Bad input never reaches
an actor: bodies are decoded with msgspec into structs that forbid unknown fields
(``actors.api.schemas``), query parameters are checked (``actors.api.query``), payloads are
validated against the operation table, and every failure is ``{"error", "detail", "field"}``
with the status the interface fixes (never a 500, nothing stored).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from actors.api import query, views
from actors.api.access import PracticeAccess
from actors.api.http import Request, Response, json_response
from actors.api.openapi import openapi_document
from actors.api.practices import PracticeHandlers
from actors.api.router import Media, Route, Router
from actors.api.schemas import OnboardBody, SubmitBody
from actors.api.sikka_reads import SikkaReads
from actors.api.system import SystemHandlers
from actors.api.version import VERSION
from actors.api.writebacks import WritebackHandlers, new_writeback_id
from actors.monitoring import metrics as prometheus
from actors.monitoring.metrics import Metrics
from actors.monitoring.monitor import Monitor
from actors.runtime.applevel import AppLevel
from actors.runtime.deps import Deps
from actors.runtime.practices import PracticeSupervisor
from store.probe import DatabaseProbe

__all__ = ["VERSION", "Admin"]  # VERSION: the release the composition root names (error tracking)


class Admin:
    def __init__(
        self, deps: Deps, practices: PracticeSupervisor, app: AppLevel, *, monitor: Monitor | None = None,
        metrics: Metrics | None = None, new_id: Callable[[], str] = new_writeback_id,
        database: DatabaseProbe | None = None,
    ):
        access = PracticeAccess(deps, practices)
        on_practices = PracticeHandlers(access)
        on_writebacks = WritebackHandlers(deps, access, new_id)  # new_id: seeded by deterministic simulations
        sikka = SikkaReads(deps, access)
        self._system = system = SystemHandlers(deps, practices, app, monitor, metrics, database)
        P, W = "/practices/{office_id}", "/writebacks/{writeback_id}"
        Q, V = query, views
        UPSTREAM = (502, 503, 504)  # a Sikka read: Sikka's errors, the practice unavailable
        self.routes: list[Route] = [
            Route("GET", "/health", system.health, "liveness and the database", V.Health,
                  errors=((503, V.Degraded),), database=False),
            Route("GET", "/openapi.json", self.openapi, "this description", dict[str, Any], database=False),
            Route("GET", "/practices", on_practices.list_practices, "every practice's status (offboarded too)",
                  V.Practices),
            Route("GET", P, on_practices.get_practice, "one practice's status (offboarded too)", V.PracticeStatus),
            Route("POST", P + "/writebacks", on_writebacks.submit, "queue a writeback", V.Writeback,
                  statuses=(202, 200), body=SubmitBody, errors=(409,)),
            Route("GET", P + "/writebacks", on_writebacks.list_writebacks, "a practice's writebacks, newest first",
                  V.Writebacks, query=Q.WritebackListQuery),
            Route("GET", W, on_writebacks.get_writeback, "one writeback (long-poll with wait)", V.Writeback,
                  query=Q.WaitQuery),
            Route("POST", W + "/cancel", on_writebacks.cancel, "cancel a writeback", V.Writeback, errors=(409,)),
            Route("GET", P + "/stats", on_writebacks.stats, "counts, success rate, confirmation latency", V.Stats,
                  query=Q.StatsQuery),
            Route("POST", P + "/refresh-token", on_practices.refresh_token, "refresh the request key now",
                  V.PracticeStatus),
            Route("POST", P + "/retry-failed", on_practices.retry_failed, "re-queue retryable failures once",
                  V.Retried),
            Route("POST", P + "/pause", on_practices.pause, "send nothing new to Sikka", V.PracticeStatus),
            Route("POST", P + "/resume", on_practices.resume, "resume sending", V.PracticeStatus),
            Route("POST", P + "/offboard", on_practices.offboard,
                  "delete keys at Sikka, shred credentials and payloads (onboard --office brings it back)",
                  V.PracticeStatus, errors=(409,), follow=False),
            Route("GET", P + "/appointments", sikka.appointments, "appointments in a date range", V.Items,
                  query=Q.AppointmentsQuery, errors=UPSTREAM),
            Route("GET", P + "/appointments/{appointment_sr_no}", sikka.appointment, "one appointment",
                  V.SikkaItem, errors=UPSTREAM),
            Route("GET", P + "/available-slots", sikka.available_slots, "open slots on a date", V.Slots,
                  query=Q.SlotsQuery, errors=UPSTREAM),
            Route("GET", P + "/patients", sikka.patients, "patients by name or phone", V.Items,
                  query=Q.PatientsQuery, errors=UPSTREAM),
            Route("GET", P + "/patients/{patient_id}", sikka.patient, "one patient", V.SikkaItem, errors=UPSTREAM),
            Route("GET", P + "/providers", sikka.providers, "providers", V.Items, errors=UPSTREAM),
            Route("GET", P + "/operatories", sikka.operatories, "operatories", V.Items, errors=UPSTREAM),
            Route("GET", P + "/appointment-statuses", sikka.appointment_statuses, "appointment status values",
                  V.Items, errors=UPSTREAM),
            Route("GET", "/usage", system.usage, "rate usage per practice", V.UsageList),
            Route("GET", "/alerts", system.alerts, "the alerts that hold", V.Alerts),
            Route("GET", "/metrics", system.metrics_text, "Prometheus metrics", Media(prometheus.CONTENT_TYPE),
                  errors=(404,), database=False),
            Route("POST", "/onboard", system.onboard, "the authorization flow now (every practice, or the one named)",
                  V.OnboardReport, body=OnboardBody, body_required=False, errors=(404, 502, 504)),
            Route("POST", "/webhooks/sikka", system.webhook, "Sikka's webhook (callback-key)", V.Accepted,
                  statuses=(202,), query=None, errors=(401, 404), database=False),
        ]
        self._router = Router(self.routes, database_timeout=deps.settings.db_timeout)

    async def handle(self, request: Request) -> Response:
        """The answer to one request (the HTTP server's handler)."""
        return await self._router.dispatch(request)

    async def openapi(self, request: Request) -> Response:
        """The description of this API as the listener it is asked on serves it (bearer on TCP)."""
        return json_response(200, openapi_document(self.routes, bearer=request.peer == "tcp"))

    @property
    def last_webhook_at(self) -> datetime | None:
        """When Sikka's webhook last called (the monitor's webhook-silence alert)."""
        return self._system.last_webhook_at

    @property
    def webhooks_received(self) -> int:
        return self._system.webhooks_received
