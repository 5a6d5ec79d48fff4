"""The console's pages: overview, practice (and its actions), writeback timeline, alerts.

Each page asks the admin API (``ApiClient``: its handlers in process, JSON in and out, so the
console shows exactly what ``GET /practices`` & co. answer), adds what only the console shows
(the rate over the last hour from ``RateHistory``, a writeback's events from the log through
``timeline``), and renders its template. A region of a page marked ``data-live`` is replaced by
the script's poll (``static/console.js``, each second); the poll sends ``X-Console-Live: 1`` and
the practice page then skips its statistics (they read every writeback of the practice).

An action (pause, resume, refresh-token, retry-failed) is a confirmation page, then a posted form
(CSRF-checked by ``actors.api.console.app``) that calls the API's own endpoint with the
browser's request as the audited one, and answers 303 back to the practice with what was done.
Payload values (patient data) appear only on the writeback page and only with
``SIKKA_UI_SHOW_PAYLOADS=true``.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlencode

import msgspec

from actors.api.console import render
from actors.api.console.rates import RateHistory
from actors.api.console.timeline import sikka_calls, timeline
from actors.api.http import Handler, Request, Response
from actors.core import events as ev
from actors.core.state import FINAL_STATES, PRACTICE_STATES, WRITEBACK_STATES
from actors.runtime.deps import Deps
from store.db import DatabaseUnavailable

OPEN_STATES = tuple(s for s in WRITEBACK_STATES if s not in FINAL_STATES)
FINAL_ORDER = tuple(s for s in WRITEBACK_STATES if s in FINAL_STATES)
PAGE_SIZE = 50
LIVE_HEADER = "x-console-live"


class Viewer(msgspec.Struct, frozen=True):
    """Who looks at a page: ``binding`` of their CSRF token (``actors.api.console.session``),
    whether they hold a session cookie (then the page offers to log out), and the token."""

    binding: str
    session: bool
    csrf: str


class Action(msgspec.Struct, frozen=True):
    title: str
    summary: str
    explain: str
    states: tuple[str, ...]  # where it is the expected next step (its button stands out)

    def applies(self, state: str) -> bool:
        return state in self.states


ACTIONS: dict[str, Action] = {
    "pause": Action(
        "Pause", "send nothing new to Sikka",
        "While paused nothing new is sent to Sikka: submissions are still accepted and wait, pending writebacks "
        "are still checked and deadlines still run; Sikka reads answer 503.", ("active",)),
    "resume": Action("Resume", "resume sending", "Queued writebacks are sent again, in order.", ("paused",)),
    "refresh-token": Action(
        "Refresh token", "get a new request key now",
        "The practice asks Sikka for a new request key now (past any backoff); the answer comes once Sikka "
        "answered, within 20 s. A failure shows as the practice's last error.", ("setup_required",)),
    "retry-failed": Action(
        "Retry failed", "re-queue retryable failures once",
        "Each failed writeback marked retryable that was never retried is queued again as a new writeback "
        "(retry of the old one). Doing it twice retries nothing twice.", ()),
}
DONE = {"pause": "Paused.", "resume": "Resumed.", "refresh-token": "Token refresh done.",
        "retry-failed": "Re-queued {n} writeback(s)."}


class ConsoleError(Exception):
    """A page cannot be shown: its status, heading and one sentence (the API's ``detail``)."""

    def __init__(self, status: int, heading: str, detail: str, code: str | None = None, back: str | None = None):
        super().__init__(detail)
        self.status, self.heading, self.detail, self.code, self.back = status, heading, detail, code, back


class ApiClient:
    """The admin API's handler, called in process on behalf of a console request."""

    def __init__(self, api: Handler):
        self.api = api

    async def call(self, request: Request, method: str, path: str, query: dict[str, list[str]] | None = None,
                   back: str | None = None) -> dict:
        """The API's answer to ``method path`` as the console's ``request`` (its peer is audited);
        an error answer is a ``ConsoleError`` carrying its status and detail."""
        response = await self.api(Request(method, path, query or {}, {}, b"", request.peer, target=path))
        try:
            body = msgspec.json.decode(response.body) if response.body else {}
        except msgspec.DecodeError:
            body = {}
        if response.status >= 400:
            heading = "Not found" if response.status == 404 else f"The admin API answered {response.status}"
            raise ConsoleError(response.status, heading, body.get("detail", ""), body.get("error"), back)
        return body


def frame(viewer: Viewer | None, *, live: bool, now: datetime, node: str, nav: str = "") -> dict:
    """What the layout (``base.html``) and the writeback counts need."""
    return {"viewer": viewer, "live": live, "nav": nav, "now": now, "node": node, "open_states": OPEN_STATES,
            "final_states": FINAL_ORDER, "open_writebacks": lambda counts: sum(counts.get(s, 0) for s in OPEN_STATES)}


class Pages:
    def __init__(self, api: ApiClient, deps: Deps, rates: RateHistory | None, *, show_payloads: bool):
        self.api = api
        self.deps = deps
        self.rates = rates
        self.show_payloads = show_payloads

    def frame(self, viewer: Viewer | None, *, live: bool, nav: str = "") -> dict:
        return frame(viewer, live=live, nav=nav, now=self.deps.clock(), node=self.deps.settings.node_id)

    def _hour(self, office_id: str):
        return self.rates.last_hour(office_id) if self.rates is not None else None

    async def overview(self, request: Request, viewer: Viewer) -> Response:
        practices = (await self.api.call(request, "GET", "/practices"))["practices"]
        alerts = (await self.api.call(request, "GET", "/alerts"))["alerts"]
        states = [(s, n) for s in PRACTICE_STATES if (n := sum(p["state"] == s for p in practices))]
        hours = {p["office_id"]: self._hour(p["office_id"]) for p in practices}
        return render.page(200, "overview.html", title="Practices", practices=practices, alerts=alerts,
                           states=states, hours=hours, **self.frame(viewer, live=True, nav="overview"))

    async def alerts(self, request: Request, viewer: Viewer) -> Response:
        alerts = (await self.api.call(request, "GET", "/alerts"))["alerts"]
        return render.page(200, "alerts.html", title="Alerts", alerts=alerts,
                           **self.frame(viewer, live=True, nav="alerts"))

    async def practice(self, request: Request, viewer: Viewer, office_id: str) -> Response:
        status = await self.api.call(request, "GET", f"/practices/{office_id}")
        states = request.query.get("state", [])
        before = request.query.get("before", [None])[-1]
        query = {"state": states, "limit": [str(PAGE_SIZE)], **({"before": [before]} if before else {})}
        back = f"/ui/practices/{office_id}"
        writebacks = (await self.api.call(request, "GET", f"/practices/{office_id}/writebacks", query, back))[
            "writebacks"]
        live = request.headers.get(LIVE_HEADER) == "1"
        stats = None if live else await self.api.call(request, "GET", f"/practices/{office_id}/stats")
        alerts = [a for a in (await self.api.call(request, "GET", "/alerts"))["alerts"] if a["office_id"] == office_id]
        page_of = f"/ui/practices/{office_id}"
        older = (f"{page_of}?{urlencode({'state': states, 'before': writebacks[-1]['writeback_id']}, doseq=True)}"
                 if len(writebacks) == PAGE_SIZE else None)
        newest = f"{page_of}?{urlencode({'state': states}, doseq=True)}" if states else page_of
        done = request.query.get("done", [None])[-1]
        retried = request.query.get("n", ["0"])[-1]
        return render.page(
            200, "practice.html", title=office_id, p=status, writebacks=writebacks, stats=stats, alerts=alerts,
            hour=self._hour(office_id), states=states, all_states=WRITEBACK_STATES, before=before,
            older_url=older, newest_url=newest, actions=ACTIONS,
            done=DONE[done].format(n=retried if retried.isdigit() else 0) if done in DONE else None,
            **self.frame(viewer, live=True),
        )

    def _action(self, office_id: str, action: str) -> Action:
        found = ACTIONS.get(action)
        if found is None:
            raise ConsoleError(404, "Not found", f"No action {action!r}: {', '.join(ACTIONS)}.", None,
                               f"/ui/practices/{office_id}")
        return found

    async def confirm(self, request: Request, viewer: Viewer, office_id: str, action: str) -> Response:
        chosen = self._action(office_id, action)
        status = await self.api.call(request, "GET", f"/practices/{office_id}")
        return render.page(200, "confirm.html", title=f"{chosen.title} {office_id}", p=status, name=action,
                           action=chosen, **self.frame(viewer, live=False))

    async def act(self, request: Request, viewer: Viewer, office_id: str, action: str) -> Response:
        self._action(office_id, action)
        back = f"/ui/practices/{office_id}"
        answer = await self.api.call(request, "POST", f"/practices/{office_id}/{action}", back=back)
        query = {"done": action, **({"n": answer["retried"]} if action == "retry-failed" else {})}
        return render.redirect(f"{back}?{urlencode(query)}")

    async def writeback(self, request: Request, viewer: Viewer, writeback_id: str) -> Response:
        wb = await self.api.call(request, "GET", f"/writebacks/{writeback_id}")
        try:
            records = await self.deps.store.read_writeback(wb["office_id"], writeback_id)
        except DatabaseUnavailable as exc:
            raise ConsoleError(503, "The database is unavailable", str(exc), "database_unavailable") from None
        steps = timeline(wb["office_id"], records)
        payload = await self._payload(writeback_id, records) if self.show_payloads else None
        return render.page(200, "writeback.html", title=f"Writeback {writeback_id[:8]}", w=wb, steps=steps,
                           calls=sikka_calls(steps), payload=payload, **self.frame(viewer, live=True))

    async def _payload(self, writeback_id: str, records) -> str:
        """The payload as indented JSON ("" once purged)."""
        sealed = next((r.event.payload for r in records if isinstance(r.event, ev.WritebackRequested)), "")
        opened = await self.deps.credentials.open_payload(writeback_id, sealed) if sealed else None
        if opened is None:
            return ""
        try:
            return json.dumps(json.loads(opened), indent=2, ensure_ascii=False)
        except ValueError:
            return opened.decode("utf-8", "replace")
