"""Authentication and key grants: who a call is, and the endpoints that hand out and describe keys.

Design: ``Keys`` owns the key book (``issued``: every request key by value; ``refresh``: refresh key
-> office) over the shared ``SimState``. ``attribute`` finds the practice a ``/v4`` call counts
against (by its request key, by the grant body's ``office_id``, or by the refresh key it
presents) before any limit is applied; ``authenticate`` then checks App-Id/App-Key or the request
key (revoked practice, announced expiry, ``expire_tokens`` fault). The endpoints: both
``request_key`` grants (several keys may live for one office), ``request_key_info``, ``DELETE
/request_key``, ``DELETE /refresh_key``, and the app-level practice listings
``authorized_practices`` (one practice unless ``show=all``) and ``data_sync_status``.
"""

from __future__ import annotations

from sim.data import AUTHORIZED_FIELDS, SYNC_FIELDS, PracticeInfo
from sim.lists import list_response
from sim.responses import Response, invalid, json_response, sikka_body
from sim.state import Key, PracticeState, Req, SimState
from sim.times import http_date, iso_t

SCOPE = (
    "start,end,appointment_statuses,appointments,appointments_available_slots,patients,providers,practices,"
    "operatories,practice_variables,practice_schedule,request_key_info,writeback_status,appointment,patient,"
    "medical_notes,authorized_practices,request_keys,request_keys_details"
)


class Keys:
    """Request and refresh keys, and the checks and endpoints that use them (see the module docstring)."""

    def __init__(self, state: SimState):
        self.state = state
        self.issued: dict[str, Key] = {}
        self.refresh: dict[str, str] = {}  # refresh key -> office_id

    # -- who is calling --------------------------------------------------------------------

    def attribute(self, req: Req, auth: str) -> PracticeState | None:
        """The practice a key or grant call counts against (also set on ``req``), if any."""
        office = None
        if auth == "key":
            key = self.issued.get(req.headers.get("request-key") or req.query.get("request_key", ""))
            if key is not None and not key.deleted:
                req.key, office = key, key.office_id
        else:  # a grant: by office_id, or by the refresh key
            body = req.json() or {}
            if body.get("grant_type") == "refresh_key":
                office = self.refresh.get(body.get("refresh_key") if isinstance(body.get("refresh_key"), str) else "")
            elif isinstance(body.get("office_id"), str):
                office = body["office_id"]
        ps = self.state.practice(office) if office else None
        if ps is not None:
            req.ps = ps
        return ps

    def authenticate(self, req: Req, auth: str) -> Response | None:
        """The refusal for a call that may not proceed; None when it may."""
        h, config = req.headers, self.state.config
        if auth == "app":
            if not h.get("app-id"):
                return sikka_body("API1001")
            if not h.get("app-key"):
                return sikka_body("API1002")
            if h["app-id"] != config.app_id or h["app-key"] != config.app_key:
                return sikka_body("API2003")
            return None
        if auth == "key":
            key = req.key
            if key is None:
                given = h.get("request-key") or req.query.get("request_key")
                return sikka_body("API1004", None if given else "Requestkey is missing.",
                                  None if given else "Please provide the requestkey.")
            if not self.state.authorized(key.office_id):
                return sikka_body("API2007")
            if req.now >= key.end:
                req.ps.expired_key_calls += 1
                return sikka_body("API1025")
            if key.forced_at is not None and req.now >= key.forced_at:
                req.ps.forced_expired_calls += 1
                return sikka_body("API1025")
            key.count += 1
        return None

    def expire_all(self, now: float) -> None:
        """The ``expire_tokens`` fault: every key issued so far expires at ``now``."""
        for key in self.issued.values():
            if key.forced_at is None:
                key.forced_at = now

    # -- key endpoints ---------------------------------------------------------------------

    def grant(self, req: Req) -> Response:
        body = req.json()
        if body is None:
            return invalid("body", "must be a JSON object")
        refused = self._refused_grant(req, body)
        if refused is not None:
            return refused
        ps, now, config, rng = req.ps, req.now, self.state.config, self.state.rng
        office = ps.info.office_id
        key = Key(f"{rng.getrandbits(128):032x}", office, now, now + config.token_ttl)
        self.issued[key.key] = key
        if ps.refresh_key is None or (body["grant_type"] == "refresh_key" and config.rotate_refresh_keys):
            self.refresh.pop(ps.refresh_key, None)
            ps.refresh_key = f"{rng.getrandbits(128):032x}"
            self.refresh[ps.refresh_key] = office
        info = self._key_info(req.base, key, now)
        info["refresh_key"] = ps.refresh_key
        return json_response(info, headers=[("Request-Key-Expires", http_date(key.expires))])

    def _refused_grant(self, req: Req, body: dict) -> Response | None:
        config = self.state.config
        for f in ("grant_type", "app_id", "app_key"):
            if not isinstance(body.get(f), str) or not body[f]:
                return invalid(f)
        grant = body["grant_type"]
        if grant not in ("request_key", "refresh_key"):
            return invalid("grant_type", "must be 'request_key' or 'refresh_key'")
        if body["app_id"] != config.app_id or body["app_key"] != config.app_key:
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
        if not self.state.authorized(ps.info.office_id):
            return sikka_body("API2007")
        return None

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

    def request_key_info(self, req: Req) -> Response:
        info = self._key_info(req.base, req.key, req.now)
        order = ("href", "status", "request_key", "start_time", "end_time", "expires_in", "issued_to",
                 "request_count", "scope", "domain")
        return json_response({k: info[k] for k in order})

    def delete_request_key(self, req: Req) -> Response:
        req.key.deleted = True
        return sikka_body("API0002")

    def delete_refresh_key(self, req: Req) -> Response:
        rk = req.headers.get("refresh-key") or req.query.get("refresh_key", "")
        if not rk:
            return invalid("Refresh-Key")
        office = self.refresh.pop(rk, None)
        if office is None:
            return sikka_body("API2003", "Refresh key is invalid or deleted.")
        self.state.practices[office].refresh_key = None
        return sikka_body("API0002")

    # -- practice listings -----------------------------------------------------------------

    def authorized_practices(self, req: Req) -> Response:
        offices = self._visible_offices(req)
        if req.key is None and req.query.get("show", "").lower() != "all":
            offices = offices[:1]

        def render(i: PracticeInfo) -> dict:
            sync, insert = _refresh_times(i, req.now)
            return {"href": f"{req.base}/authorized_practices/{i.office_id}", "city": i.city, "state": i.state,
                    "practice_id": "1", "address": f"{100 + i.index % 900} Main Street", "zip": i.zipcode,
                    "office_id": i.office_id, "domain": "Dental", "secret_key": i.secret_key,
                    "practice_name": i.name, "practice_management_system": i.pms, "financial_system": "",
                    "practice_management_system_refresh_date": sync, "data_synchronization_date": sync,
                    "data_insert_date": insert, "practice_management_system_version": i.pms_version,
                    "practice_management_system_refresh_date_time_zone": i.time_zone, "partner_id": "",
                    "financial_system_refresh_date": "1111-11-11", "financial_system_version": "",
                    "difference_in_minutes": str(i.utc_minutes)}

        return list_response(req, "authorized_practices", offices, render, AUTHORIZED_FIELDS)

    def data_sync_status(self, req: Req) -> Response:
        def render(i: PracticeInfo) -> dict:
            return {"status": "refresh", "practice_id": "1", "office_id": i.office_id, "domain": "Dental",
                    "practice_name": i.name, "practice_management_system": i.pms,
                    "data_insert_date": _refresh_times(i, req.now)[1],
                    "practice_management_system_version": i.pms_version,
                    "practice_management_system_refresh_date_time_zone": i.time_zone}

        return list_response(req, "data_sync_status", self._visible_offices(req), render, SYNC_FIELDS)

    def _visible_offices(self, req: Req) -> list[PracticeInfo]:
        if req.key is not None:
            return [req.ps.info]
        office = req.query.get("office_id", "")
        ids = [office] if office else self.state.office_ids()
        out = []
        for oid in ids:
            if self.state.authorized(oid) and (ps := self.state.practice(oid)) is not None:
                out.append(ps.info)
        return out


def _refresh_times(info: PracticeInfo, now: float) -> tuple[str, str]:
    last = now - (now % 900) - (info.index % 5) * 60  # the SPU refreshes every 15 minutes
    return iso_t(last - 120), iso_t(last)
