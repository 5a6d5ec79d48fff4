"""The simulated Sikka API v4: a pure model, no I/O, driven by an injected clock and random source.

Design: ``Simulator.handle(method, target, headers, body, now)`` takes one request and returns a
``Response`` (``sim/responses.py``: status, headers, body bytes, plus ``delay`` seconds the shell
should wait and ``cut`` when the connection must be dropped without an answer). The simulator is
composed of a shared ``SimState`` (``sim/state.py``) and endpoint groups that take it: ``Keys``
(authentication and key grants, ``sim/keys.py``), ``Reads`` (``sim/reads.py``), ``Writebacks``
(acceptance, completion, webhooks, ``sim/writebacks.py``) and ``Control`` (``/_sim/*`` and the
fault set, ``sim/control.py``); this module routes a call to them. Everything that takes time is
computed lazily from the clock, so the model runs the same on a wall clock and on trio's
MockClock without background tasks:

- A request key expires when ``now`` passes its ``end``; a writeback completes at
  ``accepted_at + delay`` drawn at acceptance (``Writebacks.settle`` drains the due heap at the
  start of every call, in due order); rate windows are fixed 60 s windows that start at their
  first request.
- Order of a ``/v4`` call: attribute it to a practice (by request key, grant body or refresh
  key) or to the app (App-Id/App-Key endpoints); record its arrival (stats, timeline); the
  ``error_rate`` fault; the one-shot ``throttle``; the daily quota; the fixed window; then
  authentication and the endpoint itself; last the ``latency_ms`` fault sets ``delay``.
- One ``rng`` drives ids, keys, delays, outcomes and fault draws, always in that call order, so
  one seed replays one run.

``Simulator.app`` is the web application (``handle``, then the latency fault slept on trio's
clock); ``transport()`` hands it to httpx in-process (``sim/transport.py``); ``sim/http.py``
serves it over HTTP and ``sim/cli.py`` is the ``sikka-sim`` command.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping

import trio

from sim.config import SimConfig
from sim.control import Control
from sim.data import PracticeData
from sim.keys import Keys
from sim.reads import Reads
from sim.responses import Response, sikka_body
from sim.state import Key, Meter, PracticeState, Req, SimState
from sim.times import http_date
from sim.transport import SimTransport
from sim.writebacks import OPS, Writeback, Writebacks

UA_NODE = re.compile(r"node=(\S+)")


class Simulator:
    """The Sikka API simulator (see the module docstring). ``handle`` is the whole API."""

    def __init__(self, config: SimConfig | None = None, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None):
        self.config = config or SimConfig()
        self.clock = clock
        self._state = state = SimState(self.config, clock, rng if rng is not None else random.Random(self.config.seed))
        self._keys = Keys(state)
        self._reads = Reads(state)
        self._writebacks = Writebacks(state)
        self._control = Control(state, self._keys, self._writebacks)
        keys, reads, writebacks = self._keys, self._reads, self._writebacks
        self._routes: dict[tuple[str, str], tuple[Callable[[Req], Response], str]] = {
            ("POST", "request_key"): (keys.grant, "none"),
            ("DELETE", "request_key"): (keys.delete_request_key, "key"),
            ("GET", "request_key_info"): (keys.request_key_info, "key"),
            ("DELETE", "refresh_key"): (keys.delete_refresh_key, "app"),
            ("GET", "authorized_practices"): (keys.authorized_practices, "app_or_key"),
            ("GET", "data_sync_status"): (keys.data_sync_status, "app"),
            ("GET", "writebacks"): (writebacks.listing, "app"),
            ("DELETE", "writebacks"): (writebacks.delete, "app"),
            ("GET", "writeback_status"): (writebacks.status, "key"),
            ("GET", "appointments"): (reads.appointments, "key"),
            ("GET", "appointments_available_slots"): (reads.slots, "key"),
            ("GET", "patients"): (reads.patients, "key"),
            ("GET", "providers"): (reads.providers, "key"),
            ("GET", "practices"): (reads.practices, "key"),
            ("GET", "operatories"): (reads.operatories, "key"),
            ("GET", "appointment_statuses"): (reads.appointment_statuses, "key"),
            ("GET", "practice_variables"): (reads.practice_variables, "key"),
            ("GET", "practice_schedule"): (reads.practice_schedule, "key"),
            **{op: (writebacks.submit, "key") for op in OPS},
        }

    # -- the model's state, for tests, benchmarks and the demo -----------------------------

    @property
    def today(self) -> dt.date:
        """The UTC date at creation: seeded appointments lie before it."""
        return self._state.today

    @property
    def requests(self) -> int:
        """``/v4`` calls so far."""
        return self._state.requests

    @property
    def faults(self) -> dict:
        """The fault set as ``GET /_sim/faults`` shows it."""
        return self._state.faults

    @property
    def keys(self) -> dict[str, Key]:
        """Every request key issued, by its value."""
        return self._keys.issued

    @property
    def writebacks(self) -> dict[int, Writeback]:
        """Every writeback accepted, by id."""
        return self._writebacks.by_id

    def practice(self, office_id: str) -> PracticeState | None:
        return self._state.practice(office_id)

    def office_ids(self) -> Iterable[str]:
        return self._state.office_ids()

    def data(self, ps: PracticeState) -> PracticeData:
        return self._state.data(ps)

    def stats(self) -> dict:
        return self._control.stats()

    def set_faults(self, new: dict, now: float | None = None) -> None:
        """Merge ``new`` into the fault set (``{}`` clears all); see interface section 5."""
        self._control.set_faults(new, self.clock() if now is None else now)

    def next_webhook_at(self) -> float | None:
        """When the next webhook is due (after settling writebacks due by now)."""
        return self._writebacks.next_webhook_at(self.clock())

    def due_webhooks(self, now: float | None = None) -> list[dict]:
        """Pop the webhook payloads due by ``now`` (``appointments``/``patient`` events)."""
        return self._writebacks.due_webhooks(self.clock() if now is None else now)

    # -- entry points ----------------------------------------------------------------------

    def transport(self) -> SimTransport:
        """An ``httpx.AsyncBaseTransport`` that calls this simulator in-process (no sockets)."""
        return SimTransport(self.app)

    async def app(self, method: str, target: str, headers, body: bytes = b"") -> Response:
        """The web application: ``handle`` plus the latency fault (sleeps on trio's clock)."""
        resp = self.handle(method, target, headers, body)
        if resp.delay > 0:
            await trio.sleep(resp.delay)
        return resp

    def handle(self, method: str, target: str, headers: Mapping | Iterable, body: bytes = b"",
               now: float | None = None) -> Response:
        now = self.clock() if now is None else now
        hdrs = _lower_headers(headers)
        path, _, qs = target.partition("?")
        query = dict(urllib.parse.parse_qsl(qs, keep_blank_values=True))
        method = method.upper()
        self._writebacks.settle(now)
        if path.startswith("/_sim/"):
            return self._control.handle(method, path, body, now)
        segs = [s for s in path.split("/") if s]
        if not segs or segs[0] != "v4":
            return sikka_body("API2009")
        base = f"http://{hdrs.get('host', f'{self.config.host}:{self.config.port}')}/v4"
        req = Req(method, path, segs[1:], query, hdrs, body, now, base)
        self._state.requests += 1
        resp = self._process(req)
        if req.key is not None and not any(k == "Request-Key-Expires" for k, _ in resp.headers):
            resp.headers.append(("Request-Key-Expires", http_date(req.key.expires)))
        if req.ps is not None:
            node = UA_NODE.search(hdrs.get("user-agent", ""))
            req.ps.timeline.append((now, method, path, node[1] if node else "", 0 if resp.cut else resp.status))
        if lat := self._state.faults.get("latency_ms"):
            lo, hi = lat
            resp.delay = (lo if lo == hi else self._state.rng.uniform(lo, hi)) / 1000
        return resp

    def _process(self, req: Req) -> Response:
        """Route, count, refuse (faults and limits, before any processing), authenticate, answer."""
        route = self._routes.get((req.method, req.segs[0] if req.segs else ""))
        if route is None:
            first = req.segs[0] if req.segs else ""
            return sikka_body("API2014" if any(seg == first for _, seg in self._routes) else "API2009")
        handler, auth = route
        if auth == "app_or_key":
            auth = "key" if ("request-key" in req.headers or "request_key" in req.query) else "app"
        meter, limit = self._meter(req, auth)
        if meter is not None:
            meter.arrive(req.now)
        rng = self._state.rng
        if (rate := self._state.faults.get("error_rate", 0)) and rng.random() < rate:
            return sikka_body("API2002" if rng.random() < 0.5 else "API2001")
        if req.ps is not None and (forced := self._forced_429(req.ps, req.now, limit)) is not None:
            return forced
        rl_headers: list[tuple[str, str]] = []
        if meter is not None:
            ok, rl_headers = meter.take(req.now, limit)
            if not ok:
                meter.status_429 += 1
                return sikka_body("", headers=rl_headers)
        denied = self._keys.authenticate(req, auth)
        resp = denied if denied is not None else handler(req)
        resp.headers.extend(rl_headers)
        return resp

    def _meter(self, req: Req, auth: str) -> tuple[Meter | None, int]:
        """The meter a request counts against (the practice's or the app's), and its per-minute limit."""
        config = self.config
        if auth == "app":
            return self._state.app_meter, config.app_rate_limit
        ps = self._keys.attribute(req, auth)
        if ps is None:
            return None, 0
        override = self._state.faults.get("rate_limit")
        if isinstance(override, dict):
            return ps, override.get(ps.info.office_id, config.rate_limit)
        return ps, override if override is not None else config.rate_limit

    def _forced_429(self, ps: PracticeState, now: float, limit: int) -> Response | None:
        """The one-shot ``throttle`` fault, then the daily quota (each counted in ``forced_429``)."""
        throttle = self._state.faults.get("throttle", {})
        if ps.info.office_id in throttle:
            reset = throttle.pop(ps.info.office_id)
            ps.forced_429 += 1
            return sikka_body("", headers=[("X-Rate-Limit-Limit", str(limit)), ("X-Rate-Limit-Remaining", "0"),
                                          ("X-Rate-Limit-Reset", str(reset))])
        if quota := self.config.daily_quota:
            day = int(now // 86400)
            if ps.quota_day != day:
                ps.quota_day, ps.quota_count = day, 0
            if ps.quota_count >= quota:
                ps.forced_429 += 1
                reset = (day + 1) * 86400 - now
                return sikka_body("API2012", headers=[("X-Rate-Limit-Limit", str(limit)),
                                                      ("X-Rate-Limit-Remaining", "0"),
                                                      ("X-Rate-Limit-Reset", str(math.ceil(reset)))])
            ps.quota_count += 1
        return None


def _lower_headers(headers) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = {}
    for k, v in items:
        k = k.decode("latin-1") if isinstance(k, bytes) else k
        v = v.decode("latin-1") if isinstance(v, bytes) else v
        out[k.lower()] = v
    return out
