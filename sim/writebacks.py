"""Writebacks: acknowledged at once, completed (or failed) later, in due order, by the clock.

Design: ``Writebacks`` owns the writeback book over the shared ``SimState``: every writeback by id
(ids from a base drawn from the seed), the ids accepted per UTC day (for ``GET /writebacks``), a
heap of (due time, id) and a heap of webhooks to send. ``submit`` checks a request against this
module's own copy of Sikka's rules (``OPS``, ``FORMATS``: a bad field is the synchronous 400
``API1026`` naming it), draws the delay and the outcome, and acknowledges (201 ``API2016`` or 200
``API0007``/``API0011``, ``long_message: "Id:N"``). Nothing runs in the background: ``settle(now)``,
called at the start of every request, completes each writeback due by ``now`` in due order,
applying it to the practice data; one due while its practice's SPU is offline waits in
``PracticeState.blocked`` until ``release``. ``status``, ``listing`` and ``delete`` are
``writeback_status``, ``GET /writebacks`` and ``DELETE /writebacks``.
"""

from __future__ import annotations

import datetime as dt
import heapq
import re
import urllib.parse

import msgspec

from sim.data import Appointment, Patient, PracticeData
from sim.lists import envelope, list_response
from sim.responses import Response, invalid, json_response, sikka_body
from sim.state import Req, SimState
from sim.times import iso_sp, iso_t, iso_z, parse_date, utc_day


class Op(msgspec.Struct, frozen=True):
    """A writeback operation as Sikka validates it (this module's own copy of the rules)."""

    code: str  # acknowledgement error_code
    required: tuple[str, ...]
    one_of: tuple[str, ...] = ()
    path_field: str | None = None
    any_field: bool = False  # PATCH patient: at least one field besides the required ones


OPS: dict[tuple[str, str], Op] = {
    ("POST", "appointment"): Op(
        "API2016", ("patient_id", "date", "time", "length", "provider_id", "operatory", "practice_id")),
    ("PUT", "appointments"): Op(
        "API0007", ("practice_id",), ("date", "time", "length", "operatory", "provider_id", "status"),
        "appointment_sr_no"),
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
STATUS_NAMES = {"pending": "Pending", "completed": "Success", "failed": "Failed", "deleted": "Deleted"}
LIST_COLUMNS = ("href", "description", "id", "result", "office_id", "method", "completed_time", "api_name",
                "api_request_body", "command_time", "duration_in_second")
NOT_COPIED_TO_PATIENT = ("patient_id", "source", "writeback_id", "created_at", "visible_at")


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


class Writebacks:
    """The writeback book and its endpoints (see the module docstring)."""

    def __init__(self, state: SimState):
        self.state = state
        self.by_id: dict[int, Writeback] = {}
        self.by_day: dict[dt.date, list[int]] = {}
        self.due: list[tuple[float, int]] = []  # heap of (due_at, writeback id)
        self.next_id = state.rng.randrange(100_000, 900_000)
        self.next_note_id = 1
        self.webhooks: list[tuple[float, int, dict]] = []  # heap of (send_at, seq, payload)
        self.webhook_seq = 0

    # -- acceptance ------------------------------------------------------------------------

    def submit(self, req: Req) -> Response:
        op = OPS[(req.method, req.segs[0])]
        if len(req.segs) != (2 if op.path_field else 1):
            return sikka_body("API2009")
        path_id = urllib.parse.unquote(req.segs[1]) if op.path_field else None
        if path_id is not None and (not path_id or FORBIDDEN_IN_PATH & set(req.segs[1])):
            return invalid(op.path_field, "contains a character not allowed in a path")
        body = req.json()
        if body is None:
            return invalid("body", "must be a JSON object")
        refused = _refused_fields(op, body)
        if refused is not None:
            return refused
        if body.get("check_spu", "").lower() == "true" and self.state.offline(req.ps.info.office_id):
            return sikka_body("API2017")
        wid = self._accept(req, path_id, body)
        resp = sikka_body(op.code, f"Id:{wid}", f"{req.base}/writeback_status?id={wid}")
        if (rate := self.state.faults.get("drop_after_accept_rate", 0)) and self.state.rng.random() < rate:
            resp.cut = True
        return resp

    def _accept(self, req: Req, path_id: str | None, body: dict) -> int:
        """Record a valid writeback, its delay and outcome drawn now; its id."""
        ps, rng, config = req.ps, self.state.rng, self.state.config
        d = self.state.data(ps)
        key = (req.method, req.segs[0])
        created_id = ""
        if key == ("POST", "appointment"):
            created_id, d.next_sr_no = str(d.next_sr_no), d.next_sr_no + 1
        elif key == ("POST", "patient"):
            created_id, d.next_patient_id = str(d.next_patient_id), d.next_patient_id + 1
        elif key == ("POST", "medical_notes"):
            created_id, self.next_note_id = str(self.next_note_id), self.next_note_id + 1
        lo, hi = config.writeback_delay
        wid = self.next_id
        self.next_id += 1
        wb = Writeback(id=wid, office_id=ps.info.office_id, method=req.method, api_name=req.segs[0], path_id=path_id,
                       body=body, request_key=req.key.key, accepted_at=req.now,
                       due_at=req.now + rng.uniform(lo, hi),
                       fail=rng.random() < config.writeback_failure_rate, created_id=created_id)
        self.by_id[wid] = wb
        self.by_day.setdefault(utc_day(req.now), []).append(wid)
        heapq.heappush(self.due, (wb.due_at, wid))
        ps.writebacks_submitted += 1
        return wid

    # -- completion ------------------------------------------------------------------------

    def settle(self, now: float) -> None:
        """Complete (or fail) every writeback due by ``now``, in due order."""
        due = self.due
        while due and due[0][0] <= now:
            at, wid = heapq.heappop(due)
            wb = self.by_id[wid]
            if wb.state != "pending":
                continue
            if self.state.offline(wb.office_id):
                self.state.practices[wb.office_id].blocked.append(wid)
                continue
            self._complete(wb, at)

    def release(self, now: float) -> None:
        """Writebacks held by an SPU that is back online are due at ``now``."""
        offline = set(self.state.faults.get("spu_offline", ()))
        for oid, ps in self.state.practices.items():
            if ps.blocked and oid not in offline:
                for wid in ps.blocked:
                    heapq.heappush(self.due, (now, wid))
                ps.blocked.clear()

    def _complete(self, wb: Writeback, at: float) -> None:
        ps = self.state.practices[wb.office_id]
        d = self.state.data(ps)
        error = _failure(wb, d)
        wb.completed_at = at
        if error:
            wb.state, wb.result = "failed", error
            ps.writebacks_failed += 1
            return
        wb.state, wb.result = "completed", RESULTS[(wb.method, wb.api_name)]
        ps.writebacks_completed += 1
        visible = at + self.state.config.refresh_lag
        _apply(wb, d, at, visible)
        event = {"appointment": "appointments", "appointments": "appointments", "patient": "patient"}.get(wb.api_name)
        if event and self.state.config.webhook_url:
            payload = {"event": event, "office_id": wb.office_id, "practice_id": "1", "customer_id": "1",
                       "prev_generated_time": iso_sp(at - 900), "next_data_synchronization_date": iso_sp(visible + 900),
                       "generated_time": iso_sp(visible)}
            self.webhook_seq += 1
            heapq.heappush(self.webhooks, (visible, self.webhook_seq, payload))

    # -- webhooks --------------------------------------------------------------------------

    def next_webhook_at(self, now: float) -> float | None:
        """When the next webhook is due (after settling writebacks due by ``now``)."""
        self.settle(now)
        return self.webhooks[0][0] if self.webhooks else (self.due[0][0] if self.due else None)

    def due_webhooks(self, now: float) -> list[dict]:
        """Pop the webhook payloads due by ``now`` (``appointments``/``patient`` events)."""
        self.settle(now)
        out = []
        while self.webhooks and self.webhooks[0][0] <= now:
            out.append(heapq.heappop(self.webhooks)[2])
        return out

    # -- endpoints -------------------------------------------------------------------------

    def status(self, req: Req) -> Response:
        wid = req.query.get("id", "")
        if not wid.isdigit():
            return invalid("id")
        wb = self.by_id.get(int(wid))
        if wb is None or wb.office_id != req.ps.info.office_id:
            return sikka_body("API2009", f"Writeback {wid} does not exist.")
        item = _status_item(wb)
        env = envelope(req, "writeback_status", [item], lambda x: x, tuple(item), tuple(item), default_limit=500)
        return env if isinstance(env, Response) else json_response([env])

    def listing(self, req: Req) -> Response:
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
            ids.extend(self.by_day.get(day, ()))
            day += dt.timedelta(days=1)
        rows = [self.by_id[i] for i in sorted(ids) if not wid or str(i) == wid]

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

        return list_response(req, "writebacks", rows, render, LIST_COLUMNS)

    def delete(self, req: Req) -> Response:
        wid = req.query.get("id", "")
        if not wid.isdigit():
            return invalid("id")
        wb = self.by_id.get(int(wid))
        if wb is None:
            return sikka_body("API2009", f"Writeback {wid} does not exist.")
        if wb.state != "pending":
            return invalid("id", f"is not a pending writeback (it is {wb.state}); only pending ones can be deleted")
        wb.state, wb.result, wb.completed_at = "deleted", "Writeback request deleted", req.now
        self.state.practices[wb.office_id].writebacks_deleted += 1
        return sikka_body("API4006")


def _refused_fields(op: Op, body: dict) -> Response | None:
    """The 400 ``API1026`` for the first missing or malformed field of ``body``; None when it is valid."""
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
    return None


def _failure(wb: Writeback, d: PracticeData) -> str:
    """Why the practice management system rejects ``wb`` at completion; "" when it does not."""
    b, key = wb.body, (wb.method, wb.api_name)
    if wb.fail:
        return "Writeback failed: the practice management system rejected the request."
    if key[1] == "appointments" and wb.path_id not in d.appointments:
        return f"Appointment {wb.path_id} does not exist."
    if key == ("PATCH", "patient") and wb.path_id not in d.patients:
        return f"Patient {wb.path_id} does not exist."
    if key in (("POST", "appointment"), ("POST", "medical_notes")) and b["patient_id"] not in d.patients:
        return f"Patient {b['patient_id']} does not exist."
    if "provider_id" in b and b["provider_id"] and all(v.provider_id != b["provider_id"] for v in d.providers):
        return f"Provider {b['provider_id']} does not exist."
    if b.get("operatory") and b["operatory"] not in d.operatories:
        return f"Operatory {b['operatory']} does not exist."
    return ""


def _apply(wb: Writeback, d: PracticeData, at: float, visible: float) -> None:
    """A completed writeback's effect on the practice data (new rows show in reads from ``visible``)."""
    b, key = wb.body, (wb.method, wb.api_name)
    common = dict(created_at=iso_z(at), source="writeback", writeback_id=str(wb.id), visible_at=visible)
    if key == ("POST", "appointment"):
        d.appointments[wb.created_id] = Appointment(
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
        d.patients[wb.created_id] = Patient(
            patient_id=wb.created_id, firstname=b["firstname"], lastname=b["lastname"],
            birthdate=b.get("birthdate", ""), gender=b.get("gender", ""), cell=b.get("cell", ""),
            homephone=b.get("homephone", ""), workphone=b.get("workphone", ""), email=b.get("email", ""),
            provider_id=b["provider_id"], middlename=b.get("middlename", ""),
            address_line1=b.get("address_line1", ""), city=b.get("city", ""), state=b.get("state", ""),
            zipcode=b.get("zipcode", ""), **common)
    elif key == ("PATCH", "patient"):
        p = d.patients[wb.path_id]
        for f in p.__struct_fields__:
            if b.get(f) and f not in NOT_COPIED_TO_PATIENT:
                setattr(p, f, b[f])


def _status_item(wb: Writeback) -> dict[str, str]:
    """The one item of a ``writeback_status`` envelope."""
    done = wb.state != "pending"
    return {
        "id": str(wb.id), "office_id": wb.office_id, "method": wb.method,
        "api": {"appointment": "appointments", "patient": "patients"}.get(wb.api_name, wb.api_name),
        "payload_body": msgspec.json.encode(wb.body).decode(),
        "appointment_sr_no": (wb.path_id or wb.created_id) if "appointment" in wb.api_name else "",
        "request_time": iso_sp(wb.accepted_at), "is_completed": "True" if done else "False",
        "has_error": "True" if wb.state in ("failed", "deleted") else "False",
        "completed_time": iso_sp(wb.completed_at) if wb.completed_at is not None else "",
        "result": wb.result if done else "Pending",
        "practice_id": wb.body.get("practice_id", "1"),
        "status": STATUS_NAMES[wb.state],
        "patient_id": wb.body.get("patient_id", wb.path_id if wb.api_name == "patient" else "") or "",
        "created_id": wb.created_id if wb.state == "completed" else "",
    }


def _mask(key: str) -> str:
    return f"{key[:10]}{'*' * 16}{key[-6:]}"
