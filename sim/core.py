"""The simulated Sikka API v4: a pure model, no I/O, driven by an injected clock and random source.

Design: ``Simulator.handle(method, target, headers, body, now)`` takes one request and returns a
``Response`` (status, headers, body bytes, plus ``delay`` seconds the transport should wait and
``cut`` when the connection must be dropped without an answer). Everything that takes time is
computed lazily from the clock, so the model runs the same on a wall clock and on trio's
MockClock without background tasks:

- A request key expires when ``now`` passes its ``end``; a writeback completes at
  ``accepted_at + delay`` drawn at acceptance (a heap is drained at the start of every call, in
  due order, so completions apply to the practice data in time order); rate windows are fixed
  60 s windows that start at their first request.
- Order of a ``/v4`` call: attribute it to a practice (by request key, grant body or refresh
  key) or to the app (App-Id/App-Key endpoints); record its arrival (stats, timeline); the
  ``error_rate`` fault; the one-shot ``throttle``; the daily quota; the fixed window; then
  authentication and the endpoint itself.
- ``rng`` drives ids, keys, delays and outcomes and fault draws, so one seed replays one run.

``sim.http`` wraps this in an h11-on-trio server and an httpx transport; ``sim.cli`` is the
``sikka-sim`` command. The ``/_sim/*`` control endpoints (stats, ground truth, timeline, faults)
are served by the same ``handle``.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import random
import re
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from email.utils import formatdate

import msgspec
import trio

from sim import data as D

# ---------------------------------------------------------------------------------------------
# Configuration and responses


class SimConfig(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8089
    practices: int = 3
    seed: int = 1
    app_id: str = "sim-app-id"
    app_key: str = "sim-app-key"
    rate_limit: int = 250
    app_rate_limit: int = 250
    daily_quota: int = 0
    token_ttl: float = 86400.0
    writeback_delay: tuple[float, float] = (5.0, 40.0)
    writeback_failure_rate: float = 0.0
    patients_per_practice: int = 50
    appointments_per_practice: int = 100
    refresh_lag: float = 0.0
    webhook_url: str | None = None
    callback_key: str = ""
    rotate_refresh_keys: bool = False  # a refresh grant returns a new refresh key (old one dies)
    timeline_limit: int = 10_000  # newest entries kept per practice


class Response(msgspec.Struct):
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    delay: float = 0.0  # seconds to wait before answering (latency fault)
    cut: bool = False  # drop the connection instead of answering

    def json(self):
        return msgspec.json.decode(self.body)


_json = msgspec.json.encode
JSON_CT = ("Content-Type", "application/json; charset=utf-8")

# error_code: (http status, http_code_desc, short_message, long_message, more_information)
CODES: dict[str, tuple[int, str, str, str, str]] = {
    "API0002": (200, "OK", "OK", "Request Session terminated successfully.", ""),
    "API0007": (200, "OK", "Appointment status logged successfully", "", ""),
    "API0011": (200, "OK", "Patient update request logged successfully", "", ""),
    "API2016": (201, "Created", "New resource created successfully", "", ""),
    "API4006": (200, "OK", "", "Writeback request deleted successfully.", ""),
    "API1001": (400, "BadRequest", "Missing Parameter", "ApplicationID is missing.", "Please provide the applicationid."),
    "API1002": (400, "BadRequest", "Missing Parameter", "ApplicationKey is missing.", "Please provide the applicationkey."),
    "API1004": (400, "BadRequest", "Missing Parameter", "Requestkey is missing/invalid", "Please provide correct requestkey"),
    "API1025": (400, "BadRequest", "Request key expired", "Request key is not valid, it is expired.",
                "Please generate new request key and make new request."),
    "API1026": (400, "BadRequest", "Missing/Invalid Parameter", "One of the parameter is missing or invalid.", ""),
    "API2001": (500, "InternalServerError", "Internal Error", "Internal Error.", "Please contact Sikka API Support."),
    "API2002": (503, "ServiceUnavailable", "Try again later.",
                "The Sikka APIs are up, but overloaded with requests. Try again later.", ""),
    "API2003": (401, "Unauthorized", "Authentication/Authorization Failed", "ID or key is incorrect.",
                "Please provide correct application id , application key or secret key."),
    "API2007": (401, "Unauthorized", "Authentication/Authorization Failed",
                "You are not authorized to access practice details with Sikka API.",
                "Practice details not accessible by you. Please contact practice and ask to allow access."),
    "API2009": (404, "NotFound", "Resource not found", "The resource you requested does not exist.",
                "The resource you requested does not exist."),
    "API2012": (429, "Too Many Requests", "Request limit exceeded", "Requests per practice per day exceeded",
                "Please make request to the datalimit API for more information."),
    "API2014": (405, "Method Not Allowed", "Method not allowed for the resource",
                "Requested method not allowed for the resource", "Please contact Sikka API support"),
    "API2017": (412, "Precondition Failed",
                "The server does not meet one of the preconditions that the requester put on the request.",
                "Sikka platform utility is offline", "--"),
    # The body of a per-minute 429 is undocumented: the six fields with an empty error_code.
    "": (429, "Too Many Requests", "Rate limit exceeded", "Too many requests in the current 60 second window.",
         "Retry after X-Rate-Limit-Reset seconds."),
}


def sikka_body(code: str, long: str | None = None, more: str | None = None, headers=()) -> Response:
    status, desc, short, dlong, dmore = CODES[code]
    body = {
        "http_code": str(status),
        "http_code_desc": desc,
        "error_code": code,
        "short_message": short,
        "long_message": dlong if long is None else long,
        "more_information": dmore if more is None else more,
    }
    return Response(status, [JSON_CT, *headers], _json(body))


def invalid(field: str, why: str = "is missing or invalid") -> Response:
    return sikka_body("API1026", f"Parameter '{field}' {why}.", field)


def json_response(obj, status: int = 200, headers=()) -> Response:
    return Response(status, [JSON_CT, *headers], _json(obj))


# ---------------------------------------------------------------------------------------------
# Time formats


def iso_t(ts: float) -> str:  # yyyy-MM-ddTHH:mm:ss, UTC, no zone (Sikka record format)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def iso_sp(ts: float) -> str:  # yyyy-MM-dd HH:mm:ss (writeback_status)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def iso_z(ts: float) -> str:  # ISO-8601 UTC with milliseconds (control endpoints)
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_date(ts: float) -> str:  # RFC 1123, GMT
    return formatdate(ts, usegmt=True)


def parse_date(s: str) -> dt.date | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s or ""):
        return None
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Model state


class Meter:
    """Arrivals (sliding 60 s max), a fixed 60 s window that starts at its first request."""

    __slots__ = ("requests", "status_429", "max_in_any_60s", "_arrivals", "_start", "_count")

    def __init__(self):
        self.requests = self.status_429 = self.max_in_any_60s = 0
        self._arrivals: deque[float] = deque()
        self._start: float | None = None
        self._count = 0

    def arrive(self, now: float) -> None:
        self.requests += 1
        a = self._arrivals
        a.append(now)
        while a[0] <= now - 60:
            a.popleft()
        self.max_in_any_60s = max(self.max_in_any_60s, len(a))

    def take(self, now: float, limit: int) -> tuple[bool, list[tuple[str, str]]]:
        if self._start is None or now >= self._start + 60:
            self._start, self._count = now, 0
        self._count += 1
        reset = max(0, math.ceil(self._start + 60 - now))
        headers = [
            ("X-Rate-Limit-Limit", str(limit)),
            ("X-Rate-Limit-Remaining", str(max(0, limit - self._count))),
            ("X-Rate-Limit-Reset", str(reset)),
        ]
        return self._count <= limit, headers


class PracticeState(Meter):
    __slots__ = (
        "info", "data", "forced_429", "expired_key_calls", "forced_expired_calls", "writebacks_submitted",
        "writebacks_completed", "writebacks_failed", "writebacks_deleted", "timeline", "quota_day",
        "quota_count", "refresh_key", "blocked",
    )

    def __init__(self, info: D.PracticeInfo, timeline_limit: int):
        super().__init__()
        self.info = info
        self.data: D.PracticeData | None = None
        self.forced_429 = self.expired_key_calls = self.forced_expired_calls = 0
        self.writebacks_submitted = self.writebacks_completed = 0
        self.writebacks_failed = self.writebacks_deleted = 0
        self.timeline: deque[tuple] = deque(maxlen=timeline_limit)
        self.quota_day, self.quota_count = -1, 0
        self.refresh_key: str | None = None
        self.blocked: list[int] = []  # writebacks due while the SPU was offline

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "status_429": self.status_429,
            "forced_429": self.forced_429,
            "max_in_any_60s": self.max_in_any_60s,
            "expired_key_calls": self.expired_key_calls,
            "forced_expired_calls": self.forced_expired_calls,
            "writebacks_submitted": self.writebacks_submitted,
            "writebacks_completed": self.writebacks_completed,
            "writebacks_failed": self.writebacks_failed,
            "writebacks_deleted": self.writebacks_deleted,
        }


class Key:
    __slots__ = ("key", "office_id", "start", "end", "forced_at", "count", "deleted")

    def __init__(self, key: str, office_id: str, start: float, end: float):
        self.key, self.office_id, self.start, self.end = key, office_id, start, end
        self.forced_at: float | None = None  # set by the expire_tokens fault
        self.count = 1
        self.deleted = False

    @property
    def expires(self) -> float:
        return self.end if self.forced_at is None else min(self.end, self.forced_at)


class Writeback:
    __slots__ = (
        "id", "office_id", "method", "api_name", "path_id", "body", "request_key", "accepted_at", "due_at",
        "fail", "created_id", "state", "completed_at", "result",
    )

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
        self.state = "pending"  # pending | completed | failed | deleted
        self.completed_at: float | None = None
        self.result = ""


class Op(msgspec.Struct, frozen=True):
    """A writeback operation as Sikka validates it (this module's own copy of the rules)."""

    code: str  # acknowledgement error_code
    required: tuple[str, ...]
    one_of: tuple[str, ...] = ()
    path_field: str | None = None
    any_field: bool = False  # PATCH patient: at least one field besides the required ones


OPS: dict[tuple[str, str], Op] = {
    ("POST", "appointment"): Op("API2016", ("patient_id", "date", "time", "length", "provider_id", "operatory", "practice_id")),
    ("PUT", "appointments"): Op("API0007", ("practice_id",), ("date", "time", "length", "operatory", "provider_id", "status"), "appointment_sr_no"),
    ("PATCH", "appointments"): Op("API0007", ("op", "path", "value", "practice_id"), path_field="appointment_sr_no"),
    ("POST", "patient"): Op("API2016", ("firstname", "lastname", "provider_id", "practice_id")),
    ("PATCH", "patient"): Op("API0011", ("practice_id",), path_field="patient_id", any_field=True),
    ("POST", "medical_notes"): Op("API2016", ("date", "patient_id", "type", "text", "provider_id", "practice_id")),
}
FORMATS: dict[str, tuple[str, str]] = {  # field: (regex, description)
    "date": (r"\d{4}-\d{2}-\d{2}", "must be yyyy-mm-dd"),
    "birthdate": (r"\d{4}-\d{2}-\d{2}", "must be yyyy-mm-dd"),
    "time": (r"([01]\d|2[0-3]):[0-5]\d", "must be HH:mm"),
    "length": (r"[1-9]\d{0,3}", "must be a positive integer"),
    "op": (r"replace", "must be 'replace'"),
    "path": (r"/appointment_status", "must be '/appointment_status'"),
    "check_spu": (r"(?i)(true|false)?", "must be 'true' or 'false'"),
}
FORBIDDEN_IN_PATH = set(':#?/\\%+=')
RESULTS = {
    ("POST", "appointment"): "New Appointment inserted successfully",
    ("PUT", "appointments"): "Appointment updated successfully",
    ("PATCH", "appointments"): "Appointment status updated successfully",
    ("POST", "patient"): "New Patient inserted successfully",
    ("PATCH", "patient"): "Patient updated successfully",
    ("POST", "medical_notes"): "Medical note inserted successfully",
}
SCOPE = (
    "start,end,appointment_statuses,appointments,appointments_available_slots,patients,providers,practices,"
    "operatories,practice_variables,practice_schedule,request_key_info,writeback_status,appointment,patient,"
    "medical_notes,authorized_practices,request_keys,request_keys_details"
)
UA_NODE = re.compile(r"node=(\S+)")


class Req:
    """One /v4 request while it is processed."""

    __slots__ = ("method", "path", "segs", "query", "headers", "body", "now", "base", "ps", "key", "_json")

    def __init__(self, method, path, segs, query, headers, body, now, base):
        self.method, self.path, self.segs, self.query = method, path, segs, query
        self.headers, self.body, self.now, self.base = headers, body, now, base
        self.ps: PracticeState | None = None
        self.key: Key | None = None
        self._json = None

    def json(self):
        """The JSON body as a dict, or None if it is not a JSON object."""
        if self._json is None:
            try:
                obj = msgspec.json.decode(self.body) if self.body else {}
            except msgspec.DecodeError:
                obj = None
            self._json = obj if isinstance(obj, dict) else False
        return self._json if self._json is not False else None


# ---------------------------------------------------------------------------------------------


class Simulator:
    """The Sikka API simulator (see the module docstring). ``handle`` is the whole API."""

    def __init__(self, config: SimConfig | None = None, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None):
        self.config = config or SimConfig()
        self.clock = clock
        self.rng = rng if rng is not None else random.Random(self.config.seed)
        self.today = dt.datetime.fromtimestamp(clock(), dt.UTC).date()  # seeded appointments lie before it
        self._practices: dict[str, PracticeState] = {}
        self.app_meter = Meter()
        self.requests = 0
        self.keys: dict[str, Key] = {}
        self.refresh_keys: dict[str, str] = {}  # refresh key -> office_id
        self.writebacks: dict[int, Writeback] = {}
        self._by_day: dict[dt.date, list[int]] = {}
        self._due: list[tuple[float, int]] = []  # heap of (due_at, writeback id)
        self._next_wb_id = self.rng.randrange(100_000, 900_000)
        self._next_note_id = 1
        self.faults: dict = {}
        self._webhooks: list[tuple[float, int, dict]] = []  # heap of (send_at, seq, payload)
        self._webhook_seq = 0
        self._routes = {
            ("POST", "request_key"): (self._grant, "none"),
            ("DELETE", "request_key"): (self._delete_request_key, "key"),
            ("GET", "request_key_info"): (self._request_key_info, "key"),
            ("DELETE", "refresh_key"): (self._delete_refresh_key, "app"),
            ("GET", "authorized_practices"): (self._authorized_practices, "app_or_key"),
            ("GET", "data_sync_status"): (self._data_sync_status, "app"),
            ("GET", "writebacks"): (self._list_writebacks, "app"),
            ("DELETE", "writebacks"): (self._delete_writeback, "app"),
            ("GET", "writeback_status"): (self._writeback_status, "key"),
            ("GET", "appointments"): (self._appointments, "key"),
            ("GET", "appointments_available_slots"): (self._slots, "key"),
            ("GET", "patients"): (self._patients, "key"),
            ("GET", "providers"): (self._providers, "key"),
            ("GET", "practices"): (self._practices_list, "key"),
            ("GET", "operatories"): (self._operatories, "key"),
            ("GET", "appointment_statuses"): (self._appointment_statuses, "key"),
            ("GET", "practice_variables"): (self._practice_variables, "key"),
            ("GET", "practice_schedule"): (self._practice_schedule, "key"),
            **{op: (self._submit, "key") for op in OPS},
        }

    # -- practices -------------------------------------------------------------------------

    def practice(self, office_id: str) -> PracticeState | None:
        ps = self._practices.get(office_id)
        if ps is None:
            m = re.fullmatch(r"D(\d+)", office_id or "")
            if not m or not 0 <= int(m[1]) - 1000 < self.config.practices or m[1] != str(int(m[1])):
                return None
            info = D.practice_info(self.config.seed, int(m[1]) - 1000)
            ps = self._practices[office_id] = PracticeState(info, self.config.timeline_limit)
        return ps

    def office_ids(self) -> Iterable[str]:
        return (f"D{1000 + i}" for i in range(self.config.practices))

    def data(self, ps: PracticeState) -> D.PracticeData:
        if ps.data is None:
            c = self.config
            ps.data = D.build_practice(c.seed, ps.info, self.today, c.patients_per_practice, c.appointments_per_practice)
        return ps.data

    def _authorized(self, office_id: str) -> bool:
        return office_id not in self.faults.get("revoke", ())

    def _offline(self, office_id: str) -> bool:
        return office_id in self.faults.get("spu_offline", ())

    # -- entry points ----------------------------------------------------------------------

    def transport(self):
        """An ``httpx.AsyncBaseTransport`` that calls this simulator in-process (no sockets)."""
        from sim.http import SimTransport

        return SimTransport(self)

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
        self._settle(now)
        if path.startswith("/_sim/"):
            return self._control(method, path, body, now)
        segs = [s for s in path.split("/") if s]
        if not segs or segs[0] != "v4":
            return sikka_body("API2009")
        segs = segs[1:]
        base = f"http://{hdrs.get('host', f'{self.config.host}:{self.config.port}')}/v4"
        req = Req(method, path, segs, query, hdrs, body, now, base)
        self.requests += 1
        resp = self._process(req)
        if req.key is not None and not any(k == "Request-Key-Expires" for k, _ in resp.headers):
            resp.headers.append(("Request-Key-Expires", http_date(req.key.expires)))
        if req.ps is not None:
            node = UA_NODE.search(hdrs.get("user-agent", ""))
            req.ps.timeline.append((now, method, path, node[1] if node else "", 0 if resp.cut else resp.status))
        if lat := self.faults.get("latency_ms"):
            lo, hi = lat
            resp.delay = (lo if lo == hi else self.rng.uniform(lo, hi)) / 1000
        return resp

    def _process(self, req: Req) -> Response:
        route = self._routes.get((req.method, req.segs[0] if req.segs else ""))
        if route is None:
            first = req.segs[0] if req.segs else ""
            return sikka_body("API2014" if any(seg == first for _, seg in self._routes) else "API2009")
        handler, auth = route
        if auth == "app_or_key":
            auth = "key" if ("request-key" in req.headers or "request_key" in req.query) else "app"
        meter, limit = self._attribute(req, auth)
        if meter is not None:
            meter.arrive(req.now)
        # Faults and limits, before any processing.
        if (rate := self.faults.get("error_rate", 0)) and self.rng.random() < rate:
            return sikka_body("API2002" if self.rng.random() < 0.5 else "API2001")
        ps = req.ps
        if ps is not None:
            throttle = self.faults.get("throttle", {})
            if ps.info.office_id in throttle:
                reset = throttle.pop(ps.info.office_id)
                ps.forced_429 += 1
                return sikka_body("", headers=[("X-Rate-Limit-Limit", str(limit)), ("X-Rate-Limit-Remaining", "0"),
                                              ("X-Rate-Limit-Reset", str(reset))])
            if quota := self.config.daily_quota:
                day = int(req.now // 86400)
                if ps.quota_day != day:
                    ps.quota_day, ps.quota_count = day, 0
                if ps.quota_count >= quota:
                    ps.forced_429 += 1
                    reset = (day + 1) * 86400 - req.now
                    return sikka_body("API2012", headers=[("X-Rate-Limit-Limit", str(limit)),
                                                          ("X-Rate-Limit-Remaining", "0"),
                                                          ("X-Rate-Limit-Reset", str(math.ceil(reset)))])
                ps.quota_count += 1
        rl_headers: list[tuple[str, str]] = []
        if meter is not None:
            ok, rl_headers = meter.take(req.now, limit)
            if not ok:
                meter.status_429 += 1
                return sikka_body("", headers=rl_headers)
        denied = self._authenticate(req, auth)
        resp = denied if denied is not None else handler(req)
        resp.headers.extend(rl_headers)
        return resp

    def _attribute(self, req: Req, auth: str) -> tuple[Meter | None, int]:
        """Find the practice (or the app) a request counts against, and its per-minute limit."""
        if auth == "app":
            return self.app_meter, self.config.app_rate_limit
        office = None
        if auth == "key":
            key = self.keys.get(req.headers.get("request-key") or req.query.get("request_key", ""))
            if key is not None and not key.deleted:
                req.key, office = key, key.office_id
        else:  # a grant: by office_id, or by the refresh key
            body = req.json() or {}
            if body.get("grant_type") == "refresh_key":
                office = self.refresh_keys.get(body.get("refresh_key") if isinstance(body.get("refresh_key"), str) else "")
            elif isinstance(body.get("office_id"), str):
                office = body["office_id"]
        ps = self.practice(office) if office else None
        if ps is None:
            return None, 0
        req.ps = ps
        override = self.faults.get("rate_limit")
        if isinstance(override, dict):
            limit = override.get(office, self.config.rate_limit)
        else:
            limit = override if override is not None else self.config.rate_limit
        return ps, limit

    def _authenticate(self, req: Req, auth: str) -> Response | None:
        h = req.headers
        if auth == "app":
            if not h.get("app-id"):
                return sikka_body("API1001")
            if not h.get("app-key"):
                return sikka_body("API1002")
            if h["app-id"] != self.config.app_id or h["app-key"] != self.config.app_key:
                return sikka_body("API2003")
            return None
        if auth == "key":
            key = req.key
            if key is None:
                given = h.get("request-key") or req.query.get("request_key")
                return sikka_body("API1004", None if given else "Requestkey is missing.",
                                  None if given else "Please provide the requestkey.")
            if not self._authorized(key.office_id):
                return sikka_body("API2007")
            if req.now >= key.end:
                req.ps.expired_key_calls += 1
                return sikka_body("API1025")
            if key.forced_at is not None and req.now >= key.forced_at:
                req.ps.forced_expired_calls += 1
                return sikka_body("API1025")
            key.count += 1
        return None

    # -- keys ------------------------------------------------------------------------------

    def _grant(self, req: Req) -> Response:
        body = req.json()
        if body is None:
            return invalid("body", "must be a JSON object")
        for f in ("grant_type", "app_id", "app_key"):
            if not isinstance(body.get(f), str) or not body[f]:
                return invalid(f)
        grant = body["grant_type"]
        if grant not in ("request_key", "refresh_key"):
            return invalid("grant_type", "must be 'request_key' or 'refresh_key'")
        if body["app_id"] != self.config.app_id or body["app_key"] != self.config.app_key:
            return sikka_body("API2003")
        fields = ("office_id", "secret_key") if grant == "request_key" else ("refresh_key",)
        for f in fields:
            if not isinstance(body.get(f), str) or not body[f]:
                return invalid(f)
        ps = req.ps
        if grant == "request_key":
            if ps is None or body["secret_key"] != ps.info.secret_key:
                return sikka_body("API2003")
        elif ps is None:
            return sikka_body("API2003", "Refresh key is invalid or deleted.")
        office = ps.info.office_id
        if not self._authorized(office):
            return sikka_body("API2007")
        now = req.now
        key = Key(f"{self.rng.getrandbits(128):032x}", office, now, now + self.config.token_ttl)
        self.keys[key.key] = key
        if ps.refresh_key is None or (grant == "refresh_key" and self.config.rotate_refresh_keys):
            self.refresh_keys.pop(ps.refresh_key, None)
            ps.refresh_key = f"{self.rng.getrandbits(128):032x}"
            self.refresh_keys[ps.refresh_key] = office
        info = self._key_info(req.base, key, now)
        info["refresh_key"] = ps.refresh_key
        return json_response(info, headers=[("Request-Key-Expires", http_date(key.expires))])

    def _key_info(self, base: str, key: Key, now: float) -> dict[str, str]:
        return {
            "href": f"{base}/request_key_info?request_key={key.key}",
            "request_key": key.key,
            "start_time": iso_t(key.start),
            "end_time": iso_t(key.end),
            "expires_in": f"{max(0, round(key.expires - now))} second(s)",
            "issued_to": key.office_id,
            "status": "active" if now < key.expires else "expired",
            "request_count": str(key.count),
            "scope": SCOPE,
            "domain": "Dental",
        }

    def _request_key_info(self, req: Req) -> Response:
        info = self._key_info(req.base, req.key, req.now)
        order = ("href", "status", "request_key", "start_time", "end_time", "expires_in", "issued_to",
                 "request_count", "scope", "domain")
        return json_response({k: info[k] for k in order})

    def _delete_request_key(self, req: Req) -> Response:
        req.key.deleted = True
        return sikka_body("API0002")

    def _delete_refresh_key(self, req: Req) -> Response:
        rk = req.headers.get("refresh-key") or req.query.get("refresh_key", "")
        if not rk:
            return invalid("Refresh-Key")
        office = self.refresh_keys.pop(rk, None)
        if office is None:
            return sikka_body("API2003", "Refresh key is invalid or deleted.")
        self._practices[office].refresh_key = None
        return sikka_body("API0002")

    # -- lists -----------------------------------------------------------------------------

    def _envelope(self, req: Req, endpoint: str, rows: list, render: Callable, fields: tuple, all_fields: tuple,
                  default_limit: int = 50) -> dict | Response:
        q = req.query
        try:
            offset = int(q.get("offset") or 0)
            limit = int(q.get("limit") or default_limit)
        except ValueError:
            return invalid("offset" if not (q.get("offset") or "0").isdigit() else "limit", "must be an integer")
        if offset < 0 or limit < 1:
            return invalid("offset" if offset < 0 else "limit", "is out of range")
        limit = min(limit, 5000)
        total = len(rows)
        last = max(0, math.ceil(total / limit) - 1)
        page = rows[offset * limit:(offset + 1) * limit]
        chosen = _choose_fields(q, fields, all_fields)
        link = f"{req.base}/{endpoint}?offset={{}}&limit={limit}"
        return {
            "offset": str(offset),
            "limit": str(limit),
            "total_count": str(total),
            "execution_time": str(3 + len(page) // 50),
            "pagination": {
                "first": link.format(0),
                "previous": link.format(offset - 1) if offset > 0 else "",
                "current": link.format(offset),
                "next": link.format(offset + 1) if offset < last else "",
                "last": link.format(last),
            },
            "items": [{f: item.get(f, "") for f in chosen} for item in map(render, page)],
        }

    def _list(self, req, endpoint, rows, render, fields, all_fields=None, headers=()) -> Response:
        env = self._envelope(req, endpoint, rows, render, fields, all_fields or fields)
        return env if isinstance(env, Response) else json_response(env, headers=headers)

    def _practice_rows(self, req: Req) -> bool:
        """practice_id filter on single-practice offices: only "1" exists."""
        return req.query.get("practice_id", "1") in ("1", "")

    def _appointments(self, req: Req) -> Response:
        d, q, now = self.data(req.ps), req.query, req.now
        if len(req.segs) > 1:
            q = {**q, "appointment_sr_no": req.segs[1]}
        start, end = parse_date(q.get("startdate", "")), parse_date(q.get("enddate", ""))
        for f in ("startdate", "enddate"):
            if q.get(f) and parse_date(q[f]) is None:
                return invalid(f, "must be yyyy-mm-dd")
        match = {f: q[f] for f in ("appointment_sr_no", "patient_id", "provider_id", "status", "operatory") if q.get(f)}
        rows = [
            a for a in d.appointments.values()
            if a.visible_at <= now
            and all(getattr(a, f) == v if f != "status" else a.status.lower() == v.lower() for f, v in match.items())
            and (start is None or a.date >= start.isoformat())
            and (end is None or a.date <= end.isoformat())
        ] if self._practice_rows(req) else []
        return self._list(req, "appointments", rows, lambda a: D.render_appointment(req.base, a, d.patients),
                          D.APPOINTMENT_FIELDS, D.APPOINTMENT_ALL, headers=[("Data-Insert", "completed")])

    def _patients(self, req: Req) -> Response:
        d, q, now = self.data(req.ps), req.query, req.now
        exact = {f: q[f] for f in ("patient_id", "provider_id", "status") if q.get(f)}
        text = {f: q[f].lower() for f in ("firstname", "lastname", "email") if q.get(f)}
        phones = {f: _digits(q[f]) for f in ("cell", "homephone", "workphone") if q.get(f)}
        if q.get("phone"):
            phones["phone"] = _digits(q["phone"])
        search = q.get("search", "").lower()

        def ok(p: D.Patient) -> bool:
            if p.visible_at > now or any(getattr(p, f) != v for f, v in exact.items()):
                return False
            if any(getattr(p, f).lower() != v for f, v in text.items()):
                return False
            for f, v in phones.items():
                have = [p.cell, p.homephone, p.workphone] if f == "phone" else [getattr(p, f)]
                if not any(_digits(x).endswith(v) and v for x in have):
                    return False
            if search:
                hay = (p.firstname, p.lastname, p.email, p.middlename, p.city, p.state, p.zipcode,
                       p.homephone, p.workphone, p.cell)
                digits = _digits(search)
                if not any(search in x.lower() or (digits and len(digits) >= 4 and digits in _digits(x)) for x in hay):
                    return False
            return True

        rows = [p for p in d.patients.values() if ok(p)] if self._practice_rows(req) else []
        return self._list(req, "patients", rows, lambda p: D.render_patient(req.base, p), D.PATIENT_FIELDS,
                          D.PATIENT_ALL, headers=[("Data-Insert", "completed")])

    def _providers(self, req: Req) -> Response:
        q = req.query
        rows = [v for v in self.data(req.ps).providers
                if (not q.get("provider_id") or v.provider_id == q["provider_id"])
                and (not q.get("provider_type") or v.provider_type.lower() == q["provider_type"].lower())
                and (not q.get("status") or q["status"].lower() == "active")]
        info = req.ps.info
        return self._list(req, "providers", rows, lambda v: D.render_provider(req.base, info, v),
                          D.PROVIDER_FIELDS, D.PROVIDER_ALL)

    def _practices_list(self, req: Req) -> Response:
        rows = [req.ps.info] if self._practice_rows(req) else []
        return self._list(req, "practices", rows, lambda i: D.render_practice(req.base, i), D.PRACTICE_FIELDS,
                          D.PRACTICE_ALL)

    def _operatories(self, req: Req) -> Response:
        hidden = req.query.get("is_hidden", "").upper()
        rows = [] if hidden == "T" else self.data(req.ps).operatories

        def render(op: str) -> dict:
            return {"provider_id": "", "practice_id": "1-0", "operatory": op, "cust_id": "1", "is_hidden": "F",
                    "abbreviation": f"OP-{op[2:]}"}

        return self._list(req, "operatories", rows, render, D.OPERATORY_FIELDS)

    def _appointment_statuses(self, req: Req) -> Response:
        st = req.query.get("status", "").lower()
        rows = [s for s in D.APPOINTMENT_STATUSES if not st or s.lower() == st]
        pr = f"{req.base}/practices/1"
        return self._list(req, "appointment_statuses", rows, lambda s: {
            "href": f"{pr}/appointment_statuses/{s}", "status": s, "practice_id": "1", "practice_href": pr},
            D.STATUS_FIELDS)

    def _practice_variables(self, req: Req) -> Response:
        svc = req.query.get("service_name", "")
        rows = list(D.PRACTICE_VARIABLES) if svc.lower() in ("", "appointment status") else []
        pr = f"{req.base}/practices/1"
        return self._list(req, "practice_variables", rows, lambda v: {
            "href": f"{pr}/practice_variables", "practice_id": "1", "practice_href": pr, "description": v,
            "service_name": "Appointment Status", "value": v, "service_item": v}, D.VARIABLE_FIELDS, D.VARIABLE_ALL)

    def _local_now(self, ps: PracticeState, now: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(now - ps.info.utc_minutes * 60, dt.UTC).replace(tzinfo=None)

    def _practice_schedule(self, req: Req) -> Response:
        d, q = self.data(req.ps), req.query
        if q.get("date") and parse_date(q["date"]) is None:
            return invalid("date", "must be yyyy-mm-dd")
        week = parse_date(q.get("date", "")) or _week_start(self._local_now(req.ps, req.now).date())
        resources = [("Practice", "1")] + [("Provider", v.provider_id) for v in d.providers] + [
            ("Operatory", o) for o in d.operatories]
        rtype, rid = q.get("resource_type", "").lower(), q.get("resource_id", "")
        rows = [r for r in resources if (not rtype or r[0].lower() == rtype) and (not rid or r[1] == rid)]
        pr = f"{req.base}/practices/1"

        def render(r):
            item = {"href": f"{pr}/practice_schedule/{r[1]}", "practice_id": "1", "practice_href": pr,
                    "date": f"{week.isoformat()}T00:00:00", "cust_id": "1", "resource_type": r[0], "resource_id": r[1]}
            for day in D.DAYS:
                works = day not in ("saturday", "sunday")
                hours = (f"{D.OPEN_HOUR:02d}:00", "12:00", "13:00", f"{D.CLOSE_HOUR:02d}:00", "", "")
                for n in range(3):
                    item[f"{day}_start_{n + 1}"] = hours[2 * n] if works else ""
                    item[f"{day}_end_{n + 1}"] = hours[2 * n + 1] if works else ""
                item[f"{day}_holiday"] = "False" if works else "True"
            return item

        return self._list(req, "practice_schedule", rows, render, D.SCHEDULE_FIELDS, D.SCHEDULE_ALL)

    def _slots(self, req: Req) -> Response:
        ps, q = req.ps, req.query
        d = self.data(ps)
        local = self._local_now(ps, req.now)
        for f in ("startdate", "enddate"):
            if q.get(f) and parse_date(q[f]) is None:
                return invalid(f, "must be yyyy-mm-dd")
        start = max(parse_date(q.get("startdate", "")) or local.date(), local.date())
        end = min(parse_date(q.get("enddate", "")) or start + dt.timedelta(days=6), start + dt.timedelta(days=31))
        busy: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for a in d.appointments.values():
            if a.status not in ("Cancelled", "Broken") and start.isoformat() <= a.date <= end.isoformat():
                m = _minutes(a.time)
                busy.setdefault((a.provider_id, a.date), []).append((m, m + int(a.length)))
        rows = []
        day = start
        while day <= end:
            if day.weekday() < 5:
                iso = day.isoformat()
                for i, v in enumerate(d.providers):
                    op = d.operatories[i % len(d.operatories)]
                    if q.get("provider_id", v.provider_id) != v.provider_id or q.get("operatory", op) != op:
                        continue
                    for m in range(D.OPEN_HOUR * 60, D.CLOSE_HOUR * 60, D.SLOT_MINUTES):
                        if 12 * 60 <= m < 13 * 60 or (day == local.date() and m <= local.hour * 60 + local.minute):
                            continue
                        if any(s < m + D.SLOT_MINUTES and m < e for s, e in busy.get((v.provider_id, iso), ())):
                            continue
                        rows.append((v.provider_id, iso, m, op))
            day += dt.timedelta(days=1)
        pr = f"{req.base}/practices/1"

        def render(r):
            pid, iso, m, op = r
            return {"href": f"{pr}/appointments_available_slots/1", "provider_id": pid,
                    "provider_href": f"{pr}/providers/{pid}", "practice_id": "1", "practice_href": pr,
                    "date": f"{iso}T00:00:00", "time": _hhmm(m), "template_code": "", "template_unit": "1",
                    "template_color": "", "template_type": "0", "old_color": "", "old_code": "",
                    "scheduled_color": "", "scheduled_code": "", "end_time": _hhmm(m + D.SLOT_MINUTES),
                    "time_units": str(D.SLOT_MINUTES), "operatory": op, "sr_no": "", "cust_id": "1"}

        return self._list(req, "appointments_available_slots", rows, render, D.SLOT_FIELDS, D.SLOT_ALL)

    def _visible_offices(self, req: Req) -> list[D.PracticeInfo]:
        if req.key is not None:
            return [req.ps.info]
        office = req.query.get("office_id", "")
        ids = [office] if office else self.office_ids()
        out = []
        for oid in ids:
            if self._authorized(oid) and (ps := self.practice(oid)) is not None:
                out.append(ps.info)
        return out

    def _refresh_times(self, info: D.PracticeInfo, now: float) -> tuple[str, str]:
        last = now - (now % 900) - (info.index % 5) * 60  # the SPU refreshes every 15 minutes
        return iso_t(last - 120), iso_t(last)

    def _authorized_practices(self, req: Req) -> Response:
        offices = self._visible_offices(req)
        if req.key is None and req.query.get("show", "").lower() != "all":
            offices = offices[:1]

        def render(i: D.PracticeInfo) -> dict:
            sync, insert = self._refresh_times(i, req.now)
            return {"href": f"{req.base}/authorized_practices/{i.office_id}", "city": i.city, "state": i.state,
                    "practice_id": "1", "address": f"{100 + i.index % 900} Main Street", "zip": i.zipcode,
                    "office_id": i.office_id, "domain": "Dental", "secret_key": i.secret_key,
                    "practice_name": i.name, "practice_management_system": i.pms, "financial_system": "",
                    "practice_management_system_refresh_date": sync, "data_synchronization_date": sync,
                    "data_insert_date": insert, "practice_management_system_version": i.pms_version,
                    "practice_management_system_refresh_date_time_zone": i.time_zone, "partner_id": "",
                    "financial_system_refresh_date": "1111-11-11", "financial_system_version": "",
                    "difference_in_minutes": str(i.utc_minutes)}

        return self._list(req, "authorized_practices", offices, render, D.AUTHORIZED_FIELDS)

    def _data_sync_status(self, req: Req) -> Response:
        def render(i: D.PracticeInfo) -> dict:
            return {"status": "refresh", "practice_id": "1", "office_id": i.office_id, "domain": "Dental",
                    "practice_name": i.name, "practice_management_system": i.pms,
                    "data_insert_date": self._refresh_times(i, req.now)[1],
                    "practice_management_system_version": i.pms_version,
                    "practice_management_system_refresh_date_time_zone": i.time_zone}

        return self._list(req, "data_sync_status", self._visible_offices(req), render, D.SYNC_FIELDS)

    # -- writebacks ------------------------------------------------------------------------

    def _submit(self, req: Req) -> Response:
        op = OPS[(req.method, req.segs[0])]
        ps = req.ps
        if len(req.segs) != (2 if op.path_field else 1):
            return sikka_body("API2009")
        path_id = urllib.parse.unquote(req.segs[1]) if op.path_field else None
        if path_id is not None and (not path_id or FORBIDDEN_IN_PATH & set(req.segs[1])):
            return invalid(op.path_field, "contains a character not allowed in a path")
        body = req.json()
        if body is None:
            return invalid("body", "must be a JSON object")
        for f, v in body.items():
            if not isinstance(v, str):
                return invalid(f, "must be a string")
        for f in op.required:
            if not body.get(f):
                return invalid(f)
        if op.one_of and not any(body.get(f) for f in op.one_of):
            return invalid(op.one_of[0], f"is missing: one of {', '.join(op.one_of)} is required")
        if op.any_field and not any(v for f, v in body.items() if f not in ("practice_id", "patient_id", "check_spu")):
            return invalid("firstname", "is missing: at least one field to update is required")
        for f, v in body.items():
            fmt = FORMATS.get(f)
            if fmt and v and (not re.fullmatch(fmt[0], v) or f in ("date", "birthdate") and not parse_date(v)):
                return invalid(f, fmt[1])
        office = ps.info.office_id
        if body.get("check_spu", "").lower() == "true" and self._offline(office):
            return sikka_body("API2017")
        d = self.data(ps)
        key = (req.method, req.segs[0])
        created_id = ""
        if key == ("POST", "appointment"):
            created_id, d.next_sr_no = str(d.next_sr_no), d.next_sr_no + 1
        elif key == ("POST", "patient"):
            created_id, d.next_patient_id = str(d.next_patient_id), d.next_patient_id + 1
        elif key == ("POST", "medical_notes"):
            created_id, self._next_note_id = str(self._next_note_id), self._next_note_id + 1
        lo, hi = self.config.writeback_delay
        wid = self._next_wb_id
        self._next_wb_id += 1
        wb = Writeback(id=wid, office_id=office, method=req.method, api_name=req.segs[0], path_id=path_id,
                       body=body, request_key=req.key.key, accepted_at=req.now,
                       due_at=req.now + self.rng.uniform(lo, hi),
                       fail=self.rng.random() < self.config.writeback_failure_rate, created_id=created_id)
        self.writebacks[wid] = wb
        self._by_day.setdefault(_utc_day(req.now), []).append(wid)
        heapq.heappush(self._due, (wb.due_at, wid))
        ps.writebacks_submitted += 1
        resp = sikka_body(op.code, f"Id:{wid}", f"{req.base}/writeback_status?id={wid}")
        if (rate := self.faults.get("drop_after_accept_rate", 0)) and self.rng.random() < rate:
            resp.cut = True
        return resp

    def _settle(self, now: float) -> None:
        """Complete (or fail) every writeback due by ``now``, in due order."""
        due = self._due
        while due and due[0][0] <= now:
            at, wid = heapq.heappop(due)
            wb = self.writebacks[wid]
            if wb.state != "pending":
                continue
            if self._offline(wb.office_id):
                self._practices[wb.office_id].blocked.append(wid)
                continue
            self._complete(wb, at)

    def _complete(self, wb: Writeback, at: float) -> None:
        ps = self._practices[wb.office_id]
        d = self.data(ps)
        b, key = wb.body, (wb.method, wb.api_name)
        error = ""
        if wb.fail:
            error = "Writeback failed: the practice management system rejected the request."
        elif key[1] == "appointments" and wb.path_id not in d.appointments:
            error = f"Appointment {wb.path_id} does not exist."
        elif key == ("PATCH", "patient") and wb.path_id not in d.patients:
            error = f"Patient {wb.path_id} does not exist."
        elif key in (("POST", "appointment"), ("POST", "medical_notes")) and b["patient_id"] not in d.patients:
            error = f"Patient {b['patient_id']} does not exist."
        elif "provider_id" in b and b["provider_id"] and all(v.provider_id != b["provider_id"] for v in d.providers):
            error = f"Provider {b['provider_id']} does not exist."
        elif b.get("operatory") and b["operatory"] not in d.operatories:
            error = f"Operatory {b['operatory']} does not exist."
        wb.completed_at = at
        if error:
            wb.state, wb.result = "failed", error
            ps.writebacks_failed += 1
            return
        wb.state, wb.result = "completed", RESULTS[key]
        ps.writebacks_completed += 1
        visible = at + self.config.refresh_lag
        common = dict(created_at=iso_z(at), source="writeback", writeback_id=str(wb.id), visible_at=visible)
        if key == ("POST", "appointment"):
            d.appointments[wb.created_id] = D.Appointment(
                appointment_sr_no=wb.created_id, patient_id=b["patient_id"], provider_id=b["provider_id"],
                operatory=b["operatory"], date=b["date"], time=b["time"], length=str(int(b["length"])),
                status=b.get("status") or "Scheduled", description=b.get("description", ""),
                made_date=iso_t(at)[:10], **common)
        elif key == ("PUT", "appointments"):
            a = d.appointments[wb.path_id]
            for f in ("date", "time", "length", "operatory", "provider_id", "status", "description"):
                if b.get(f):
                    setattr(a, f, b[f])
        elif key == ("PATCH", "appointments"):
            d.appointments[wb.path_id].status = b["value"]
        elif key == ("POST", "patient"):
            d.patients[wb.created_id] = D.Patient(
                patient_id=wb.created_id, firstname=b["firstname"], lastname=b["lastname"],
                birthdate=b.get("birthdate", ""), gender=b.get("gender", ""), cell=b.get("cell", ""),
                homephone=b.get("homephone", ""), workphone=b.get("workphone", ""), email=b.get("email", ""),
                provider_id=b["provider_id"], middlename=b.get("middlename", ""),
                address_line1=b.get("address_line1", ""), city=b.get("city", ""), state=b.get("state", ""),
                zipcode=b.get("zipcode", ""), **common)
        elif key == ("PATCH", "patient"):
            p = d.patients[wb.path_id]
            for f in p.__struct_fields__:
                if b.get(f) and f not in ("patient_id", "source", "writeback_id", "created_at", "visible_at"):
                    setattr(p, f, b[f])
        event = {"appointment": "appointments", "appointments": "appointments", "patient": "patient"}.get(wb.api_name)
        if event and self.config.webhook_url:
            payload = {"event": event, "office_id": wb.office_id, "practice_id": "1", "customer_id": "1",
                       "prev_generated_time": iso_sp(at - 900), "next_data_synchronization_date": iso_sp(visible + 900),
                       "generated_time": iso_sp(visible)}
            self._webhook_seq += 1
            heapq.heappush(self._webhooks, (visible, self._webhook_seq, payload))

    def _writeback_status(self, req: Req) -> Response:
        wid = req.query.get("id", "")
        if not wid.isdigit():
            return invalid("id")
        wb = self.writebacks.get(int(wid))
        if wb is None or wb.office_id != req.ps.info.office_id:
            return sikka_body("API2009", f"Writeback {wid} does not exist.")
        done = wb.state != "pending"
        item = {
            "id": str(wb.id), "office_id": wb.office_id, "method": wb.method,
            "api": {"appointment": "appointments", "patient": "patients"}.get(wb.api_name, wb.api_name),
            "payload_body": _json(wb.body).decode(),
            "appointment_sr_no": (wb.path_id or wb.created_id) if "appointment" in wb.api_name else "",
            "request_time": iso_sp(wb.accepted_at), "is_completed": "True" if done else "False",
            "has_error": "True" if wb.state in ("failed", "deleted") else "False",
            "completed_time": iso_sp(wb.completed_at) if wb.completed_at is not None else "",
            "result": wb.result if done else "Pending",
            "practice_id": wb.body.get("practice_id", "1"),
            "status": {"pending": "Pending", "completed": "Success", "failed": "Failed", "deleted": "Deleted"}[wb.state],
            "patient_id": wb.body.get("patient_id", wb.path_id if wb.api_name == "patient" else "") or "",
            "created_id": wb.created_id if wb.state == "completed" else "",
        }
        env = self._envelope(req, "writeback_status", [item], lambda x: x, tuple(item), tuple(item), default_limit=500)
        return env if isinstance(env, Response) else json_response([env])

    def _list_writebacks(self, req: Req) -> Response:
        q = req.query
        for f in ("startdate", "enddate"):
            if parse_date(q.get(f, "")) is None:
                return invalid(f, "is required as yyyy-mm-dd")
        start, end = parse_date(q["startdate"]), parse_date(q["enddate"])
        if end < start or (end - start).days > 7:
            return invalid("enddate", "must be within 7 days after startdate")
        wid = q.get("id", "")
        ids: list[int] = []
        day = start
        while day <= end:
            ids.extend(self._by_day.get(day, ()))
            day += dt.timedelta(days=1)
        rows = [self.writebacks[i] for i in sorted(ids) if not wid or str(i) == wid]

        def render(wb: Writeback) -> dict:
            fields = [("request_key", _mask(wb.request_key)), *wb.body.items()]
            if wb.path_id is not None:
                fields.append(("id", wb.path_id))
            return {"href": f"{req.base}/writebacks/{wb.id}", "description": "", "id": str(wb.id),
                    "result": wb.state, "office_id": wb.office_id, "method": wb.method,
                    "completed_time": iso_t(wb.completed_at) if wb.completed_at is not None else "",
                    "api_name": wb.api_name, "api_request_body": urllib.parse.urlencode(fields),
                    "command_time": iso_t(wb.accepted_at),
                    "duration_in_second": str(int(wb.completed_at - wb.accepted_at)) if wb.completed_at else ""}

        cols = ("href", "description", "id", "result", "office_id", "method", "completed_time", "api_name",
                "api_request_body", "command_time", "duration_in_second")
        return self._list(req, "writebacks", rows, render, cols)

    def _delete_writeback(self, req: Req) -> Response:
        wid = req.query.get("id", "")
        if not wid.isdigit():
            return invalid("id")
        wb = self.writebacks.get(int(wid))
        if wb is None:
            return sikka_body("API2009", f"Writeback {wid} does not exist.")
        if wb.state != "pending":
            return invalid("id", f"is not a pending writeback (it is {wb.state}); only pending ones can be deleted")
        wb.state, wb.result, wb.completed_at = "deleted", "Writeback request deleted", req.now
        self._practices[wb.office_id].writebacks_deleted += 1
        return sikka_body("API4006")

    # -- webhooks --------------------------------------------------------------------------

    def next_webhook_at(self) -> float | None:
        """When the next webhook is due (after settling writebacks due by now)."""
        self._settle(self.clock())
        return self._webhooks[0][0] if self._webhooks else (self._due[0][0] if self._due else None)

    def due_webhooks(self, now: float | None = None) -> list[dict]:
        """Pop the webhook payloads due by ``now`` (``appointments``/``patient`` events)."""
        now = self.clock() if now is None else now
        self._settle(now)
        out = []
        while self._webhooks and self._webhooks[0][0] <= now:
            out.append(heapq.heappop(self._webhooks)[2])
        return out

    # -- control endpoints -----------------------------------------------------------------

    def stats(self) -> dict:
        a = self.app_meter
        return {
            "requests": self.requests,
            "app": {"requests": a.requests, "status_429": a.status_429, "max_in_any_60s": a.max_in_any_60s},
            "practices": {oid: self.practice(oid).stats() for oid in self.office_ids()},
        }

    def _control(self, method: str, path: str, body: bytes, now: float) -> Response:
        segs = [s for s in path.split("/") if s][1:]
        if method == "GET" and segs == ["stats"]:
            return json_response(self.stats())
        if segs == ["faults"]:
            if method == "GET":
                return json_response(self.faults)
            if method == "POST":
                try:
                    self.set_faults(msgspec.json.decode(body or b"{}"), now)
                except (msgspec.DecodeError, ValueError, TypeError) as e:
                    return json_response({"error": str(e)}, 400)
                return json_response(self.faults)
        if method == "GET" and len(segs) == 3 and segs[0] == "practices":
            ps = self.practice(segs[1])
            if ps is None:
                return json_response({"error": f"unknown office {segs[1]}"}, 404)
            if segs[2] == "appointments":
                return json_response({"items": [_truth(a, D.Appointment) for a in self.data(ps).appointments.values()]})
            if segs[2] == "patients":
                return json_response({"items": [_truth(p, D.Patient) for p in self.data(ps).patients.values()]})
            if segs[2] == "requests":
                return json_response({"items": [
                    {"at": iso_z(at), "method": m, "path": p, "node": n, "status": s} for at, m, p, n, s in ps.timeline]})
        return json_response({"error": f"no control endpoint {method} {path}"}, 404)

    def set_faults(self, new: dict, now: float | None = None) -> None:
        """Merge ``new`` into the fault set (``{}`` clears all); see interface section 5."""
        now = self.clock() if now is None else now
        if not isinstance(new, dict):
            raise ValueError("faults must be a JSON object")
        self._settle(now)
        merged = {} if not new else dict(self.faults)
        for k, v in new.items():
            if v is None:
                merged.pop(k, None)
            elif k in ("error_rate", "drop_after_accept_rate"):
                if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                    raise ValueError(f"{k} must be a number in [0, 1]")
                merged[k] = float(v)
            elif k == "latency_ms":
                lo, _, hi = str(v).partition(":")
                merged[k] = (float(lo), float(hi or lo))
            elif k in ("spu_offline", "revoke"):
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise ValueError(f"{k} must be a list of office ids")
                merged[k] = list(v)
            elif k == "expire_tokens":
                if v is True:
                    for key in self.keys.values():
                        if key.forced_at is None:
                            key.forced_at = now
            elif k == "rate_limit":
                if not (isinstance(v, int) or (isinstance(v, dict) and all(isinstance(x, int) for x in v.values()))):
                    raise ValueError("rate_limit must be an integer or {office_id: integer}")
                merged[k] = v
            elif k == "throttle":
                if not isinstance(v, dict) or not all(isinstance(x, (int, float)) for x in v.values()):
                    raise ValueError("throttle must be {office_id: reset_seconds}")
                merged[k] = {**merged.get(k, {}), **{o: int(s) for o, s in v.items()}}
            else:
                raise ValueError(f"unknown fault {k!r}")
        self.faults = merged
        offline = set(merged.get("spu_offline", ()))
        for oid, ps in self._practices.items():  # writebacks held by an SPU that is back online
            if ps.blocked and oid not in offline:
                for wid in ps.blocked:
                    heapq.heappush(self._due, (now, wid))
                ps.blocked.clear()
        self._settle(now)


# ---------------------------------------------------------------------------------------------
# Small helpers


def _lower_headers(headers) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = {}
    for k, v in items:
        k = k.decode("latin-1") if isinstance(k, bytes) else k
        v = v.decode("latin-1") if isinstance(v, bytes) else v
        out[k.lower()] = v
    return out


def _choose_fields(q: Mapping[str, str], fields: tuple, all_fields: tuple) -> tuple:
    wanted = [f.strip() for f in q.get("fields", "").split(",") if f.strip()]
    if "get_all" in wanted:
        return all_fields
    listed = tuple(f for f in wanted if f in all_fields or f in fields)
    if q.get("lightweight", "").lower() == "true" and listed:
        return listed
    return fields + tuple(f for f in listed if f not in fields)


def _truth(row, cls) -> dict:
    out = {f: getattr(row, f) for f in cls.__struct_fields__ if f not in ("visible_at", "made_date")}
    if out.get("source") == "seed" and len(out.get("created_at", "")) == 10:
        out["created_at"] = f"{out['created_at']}T00:00:00Z"
    return out


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def _minutes(hhmm: str) -> int:
    h, _, m = hhmm.partition(":")
    return int(h) * 60 + int(m or 0)


def _hhmm(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


def _week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=(day.weekday() + 1) % 7)


def _utc_day(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date()


def _mask(key: str) -> str:
    return f"{key[:10]}{'*' * 16}{key[-6:]}"
