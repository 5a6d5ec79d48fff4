"""The read endpoints of ``sikka-api.md`` section 7, over each practice's seeded PMS data.

Design: ``Reads`` takes the shared ``SimState`` and answers one keyed ``GET`` per method: the
practice is the request key's, its rows come from ``SimState.data`` (built on first use by
``sim/data.py``), filters follow the documented query parameters, and ``sim/lists.py`` pages and
renders them. Rows created by writebacks stay hidden until their ``visible_at`` (the
``--refresh-lag``). Times of day are the practice's local time (``utc_minutes`` from UTC).
"""

from __future__ import annotations

import datetime as dt

from sim.data import (
    APPOINTMENT_ALL, APPOINTMENT_FIELDS, APPOINTMENT_STATUSES, CLOSE_HOUR, DAYS, OPEN_HOUR, OPERATORY_FIELDS,
    PATIENT_ALL, PATIENT_FIELDS, PRACTICE_ALL, PRACTICE_FIELDS, PRACTICE_VARIABLES, PROVIDER_ALL, PROVIDER_FIELDS,
    SCHEDULE_ALL, SCHEDULE_FIELDS, SLOT_ALL, SLOT_FIELDS, SLOT_MINUTES, STATUS_FIELDS, VARIABLE_ALL, VARIABLE_FIELDS,
    Patient, render_appointment, render_patient, render_practice, render_provider,
)
from sim.lists import list_response
from sim.responses import Response, invalid
from sim.state import PracticeState, Req, SimState
from sim.times import parse_date

APPOINTMENT_FILTERS = ("appointment_sr_no", "patient_id", "provider_id", "status", "operatory")
PATIENT_SEARCHED = ("firstname", "lastname", "email", "middlename", "city", "state", "zipcode", "homephone",
                    "workphone", "cell")


class Reads:
    """The keyed read endpoints (see the module docstring)."""

    def __init__(self, state: SimState):
        self.state = state

    def appointments(self, req: Req) -> Response:
        d, q, now = self.state.data(req.ps), req.query, req.now
        if len(req.segs) > 1:
            q = {**q, "appointment_sr_no": req.segs[1]}
        start, end = parse_date(q.get("startdate", "")), parse_date(q.get("enddate", ""))
        for f in ("startdate", "enddate"):
            if q.get(f) and parse_date(q[f]) is None:
                return invalid(f, "must be yyyy-mm-dd")
        match = {f: q[f] for f in APPOINTMENT_FILTERS if q.get(f)}
        rows = [
            a for a in d.appointments.values()
            if a.visible_at <= now
            and all(getattr(a, f) == v if f != "status" else a.status.lower() == v.lower() for f, v in match.items())
            and (start is None or a.date >= start.isoformat())
            and (end is None or a.date <= end.isoformat())
        ] if _practice_rows(req) else []
        return list_response(req, "appointments", rows, lambda a: render_appointment(req.base, a, d.patients),
                             APPOINTMENT_FIELDS, APPOINTMENT_ALL, headers=[("Data-Insert", "completed")])

    def patients(self, req: Req) -> Response:
        d, q, now = self.state.data(req.ps), req.query, req.now
        exact = {f: q[f] for f in ("patient_id", "provider_id", "status") if q.get(f)}
        text = {f: q[f].lower() for f in ("firstname", "lastname", "email") if q.get(f)}
        phones = {f: _digits(q[f]) for f in ("cell", "homephone", "workphone") if q.get(f)}
        if q.get("phone"):
            phones["phone"] = _digits(q["phone"])
        search = q.get("search", "").lower()

        def ok(p: Patient) -> bool:
            if p.visible_at > now or any(getattr(p, f) != v for f, v in exact.items()):
                return False
            if any(getattr(p, f).lower() != v for f, v in text.items()):
                return False
            for f, v in phones.items():
                have = [p.cell, p.homephone, p.workphone] if f == "phone" else [getattr(p, f)]
                if not any(_digits(x).endswith(v) and v for x in have):
                    return False
            return not search or _found(search, [getattr(p, f) for f in PATIENT_SEARCHED])

        rows = [p for p in d.patients.values() if ok(p)] if _practice_rows(req) else []
        return list_response(req, "patients", rows, lambda p: render_patient(req.base, p), PATIENT_FIELDS,
                             PATIENT_ALL, headers=[("Data-Insert", "completed")])

    def providers(self, req: Req) -> Response:
        q = req.query
        rows = [v for v in self.state.data(req.ps).providers
                if (not q.get("provider_id") or v.provider_id == q["provider_id"])
                and (not q.get("provider_type") or v.provider_type.lower() == q["provider_type"].lower())
                and (not q.get("status") or q["status"].lower() == "active")]
        info = req.ps.info
        return list_response(req, "providers", rows, lambda v: render_provider(req.base, info, v),
                             PROVIDER_FIELDS, PROVIDER_ALL)

    def practices(self, req: Req) -> Response:
        rows = [req.ps.info] if _practice_rows(req) else []
        return list_response(req, "practices", rows, lambda i: render_practice(req.base, i), PRACTICE_FIELDS,
                             PRACTICE_ALL)

    def operatories(self, req: Req) -> Response:
        hidden = req.query.get("is_hidden", "").upper()
        rows = [] if hidden == "T" else self.state.data(req.ps).operatories

        def render(op: str) -> dict:
            return {"provider_id": "", "practice_id": "1-0", "operatory": op, "cust_id": "1", "is_hidden": "F",
                    "abbreviation": f"OP-{op[2:]}"}

        return list_response(req, "operatories", rows, render, OPERATORY_FIELDS)

    def appointment_statuses(self, req: Req) -> Response:
        st = req.query.get("status", "").lower()
        rows = [s for s in APPOINTMENT_STATUSES if not st or s.lower() == st]
        pr = f"{req.base}/practices/1"
        return list_response(req, "appointment_statuses", rows, lambda s: {
            "href": f"{pr}/appointment_statuses/{s}", "status": s, "practice_id": "1", "practice_href": pr},
            STATUS_FIELDS)

    def practice_variables(self, req: Req) -> Response:
        svc = req.query.get("service_name", "")
        rows = list(PRACTICE_VARIABLES) if svc.lower() in ("", "appointment status") else []
        pr = f"{req.base}/practices/1"
        return list_response(req, "practice_variables", rows, lambda v: {
            "href": f"{pr}/practice_variables", "practice_id": "1", "practice_href": pr, "description": v,
            "service_name": "Appointment Status", "value": v, "service_item": v}, VARIABLE_FIELDS, VARIABLE_ALL)

    def practice_schedule(self, req: Req) -> Response:
        d, q = self.state.data(req.ps), req.query
        if q.get("date") and parse_date(q["date"]) is None:
            return invalid("date", "must be yyyy-mm-dd")
        week = parse_date(q.get("date", "")) or _week_start(_local_now(req.ps, req.now).date())
        resources = [("Practice", "1")] + [("Provider", v.provider_id) for v in d.providers] + [
            ("Operatory", o) for o in d.operatories]
        rtype, rid = q.get("resource_type", "").lower(), q.get("resource_id", "")
        rows = [r for r in resources if (not rtype or r[0].lower() == rtype) and (not rid or r[1] == rid)]
        pr = f"{req.base}/practices/1"

        def render(r):
            item = {"href": f"{pr}/practice_schedule/{r[1]}", "practice_id": "1", "practice_href": pr,
                    "date": f"{week.isoformat()}T00:00:00", "cust_id": "1", "resource_type": r[0], "resource_id": r[1]}
            for day in DAYS:
                works = day not in ("saturday", "sunday")
                hours = (f"{OPEN_HOUR:02d}:00", "12:00", "13:00", f"{CLOSE_HOUR:02d}:00", "", "")
                for n in range(3):
                    item[f"{day}_start_{n + 1}"] = hours[2 * n] if works else ""
                    item[f"{day}_end_{n + 1}"] = hours[2 * n + 1] if works else ""
                item[f"{day}_holiday"] = "False" if works else "True"
            return item

        return list_response(req, "practice_schedule", rows, render, SCHEDULE_FIELDS, SCHEDULE_ALL)

    def slots(self, req: Req) -> Response:
        q = req.query
        local = _local_now(req.ps, req.now)
        for f in ("startdate", "enddate"):
            if q.get(f) and parse_date(q[f]) is None:
                return invalid(f, "must be yyyy-mm-dd")
        start = max(parse_date(q.get("startdate", "")) or local.date(), local.date())
        end = min(parse_date(q.get("enddate", "")) or start + dt.timedelta(days=6), start + dt.timedelta(days=31))
        rows = self._free_slots(req, local, start, end)
        pr = f"{req.base}/practices/1"

        def render(r):
            pid, iso, m, op = r
            return {"href": f"{pr}/appointments_available_slots/1", "provider_id": pid,
                    "provider_href": f"{pr}/providers/{pid}", "practice_id": "1", "practice_href": pr,
                    "date": f"{iso}T00:00:00", "time": _hhmm(m), "template_code": "", "template_unit": "1",
                    "template_color": "", "template_type": "0", "old_color": "", "old_code": "",
                    "scheduled_color": "", "scheduled_code": "", "end_time": _hhmm(m + SLOT_MINUTES),
                    "time_units": str(SLOT_MINUTES), "operatory": op, "sr_no": "", "cust_id": "1"}

        return list_response(req, "appointments_available_slots", rows, render, SLOT_FIELDS, SLOT_ALL)

    def _free_slots(self, req: Req, local: dt.datetime, start: dt.date,
                    end: dt.date) -> list[tuple[str, str, int, str]]:
        """(provider_id, date, minute of day, operatory) of every free weekday slot from ``start`` to ``end``:
        office hours less lunch, the past and booked appointments (cancelled and broken ones aside)."""
        d, q = self.state.data(req.ps), req.query
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
                    for m in range(OPEN_HOUR * 60, CLOSE_HOUR * 60, SLOT_MINUTES):
                        if 12 * 60 <= m < 13 * 60 or (day == local.date() and m <= local.hour * 60 + local.minute):
                            continue
                        if any(s < m + SLOT_MINUTES and m < e for s, e in busy.get((v.provider_id, iso), ())):
                            continue
                        rows.append((v.provider_id, iso, m, op))
            day += dt.timedelta(days=1)
        return rows


def _practice_rows(req: Req) -> bool:
    """practice_id filter on single-practice offices: only "1" exists."""
    return req.query.get("practice_id", "1") in ("1", "")


def _found(search: str, hay: list[str]) -> bool:
    """The patient ``search``: a substring of any field, or (4+ digits) of any field's digits."""
    digits = _digits(search)
    return any(search in x.lower() or (digits and len(digits) >= 4 and digits in _digits(x)) for x in hay)


def _local_now(ps: PracticeState, now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now - ps.info.utc_minutes * 60, dt.UTC).replace(tzinfo=None)


def _week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=(day.weekday() + 1) % 7)


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def _minutes(hhmm: str) -> int:
    h, _, m = hhmm.partition(":")
    return int(h) * 60 + int(m or 0)


def _hhmm(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"
