"""Sikka reads through the practice's actor (interface §4): appointments, open slots, patients,
providers, operatories, appointment statuses.

Every read goes through the actor that runs the practice here, on its interactive lane (its
request key and rate budget; a refused key is refreshed once and the read retried)::

    practice served? (404, offboarded too) ─► run by another supervisor? (503 naming it) ─► actor here? (503)
        ─► actor.read(call) ─► Ok: the items; otherwise the upstream error (502/503/504)

An item read by a path id (an appointment, a patient) checks the id against the characters
Sikka forbids in paths first, and answers 404 ``not_found`` when Sikka has no such item. Open
slots come from Sikka when it lists any, else are computed from the practice's schedule, its
booked appointments and its active providers (``actors.core.slotting``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

from actors.api.access import PracticeAccess
from actors.api.http import Request, Response, json_response
from actors.api.query import AppointmentsQuery, PatientsQuery, SlotsQuery, path_id
from actors.api.errors import ApiError, upstream_error
from actors.api.views import Items, Slots
from actors.core import outcomes as oc
from actors.core import slotting
from actors.core.secret import Secret
from actors.runtime.mailbox import Unavailable
from actors.runtime.deps import Deps

Call = Callable[[Secret], Awaitable[oc.Result]]  # a Sikka call given the practice's request key


def listed(items: list) -> Response:
    return json_response(200, Items(items, len(items)))


class SikkaReads:
    def __init__(self, deps: Deps, access: PracticeAccess):
        self.deps = deps
        self.access = access

    async def _read(self, office_id: str, call: Call) -> Any:
        """What Sikka answered ``call`` through the practice's actor, or the admin API's error."""
        await self.access.run_here_or_nowhere(office_id)
        actor = self.access.actor(office_id)
        if actor is None:
            raise ApiError(503, "practice_unavailable", f"practice {office_id} has no running actor")
        try:
            result = await actor.read(call)
        except Unavailable as exc:
            raise ApiError(503, exc.code, exc.detail) from None
        if not isinstance(result.outcome, oc.Ok):
            raise upstream_error(result.outcome)
        return result.outcome.value

    async def _read_one(self, office_id: str, field: str, value: str, call) -> Response:
        """One item by a path id (checked against the characters Sikka forbids), or 404."""
        path_id(value, field)
        item = await self._read(office_id, lambda key: call(key, value))
        if item is None:
            raise ApiError(404, "not_found", f"no item with {field} {value!r}", field)
        return json_response(200, item)

    async def appointments(self, request: Request, office_id: str, query: AppointmentsQuery) -> Response:
        start = query.startdate or self.deps.clock().date()
        end = query.enddate or start + min(timedelta(days=7), date.max - start)
        if end < start:
            raise ApiError(400, "bad_parameter", "enddate is before startdate", "enddate")
        limit = query.limit
        client = self.deps.client
        return listed(await self._read(office_id, lambda key: client.appointments(key, start, end, limit=limit)))

    async def appointment(self, request: Request, office_id: str, appointment_sr_no: str) -> Response:
        return await self._read_one(office_id, "appointment_sr_no", appointment_sr_no, self.deps.client.appointment)

    async def available_slots(self, request: Request, office_id: str, query: SlotsQuery) -> Response:
        day, provider = query.date, query.provider_id
        filters = {"provider_id": provider} if provider else {}
        client = self.deps.client
        items = await self._read(office_id, lambda key: client.available_slots(key, day, day, **filters))
        if items:
            return json_response(200, Slots(items, "sikka"))
        schedule = await self._read(office_id, lambda key: client.practice_schedule(key, fields="get_all"))
        booked = await self._read(
            office_id, lambda key: client.appointments(key, day, day, limit=500, fields="operatory")
        )
        providers = [provider] if provider else [
            p["provider_id"] for p in await self._read(office_id, lambda key: client.providers(key, status="active"))
        ]
        slots = slotting.open_slots(day, providers, schedule, booked)
        return json_response(200, Slots(slots, "computed"))

    async def patients(self, request: Request, office_id: str, query: PatientsQuery) -> Response:
        text, limit = query.query.strip(), query.limit
        client = self.deps.client
        return listed(await self._read(office_id, lambda key: client.search_patients(key, text, limit=limit)))

    async def patient(self, request: Request, office_id: str, patient_id: str) -> Response:
        return await self._read_one(office_id, "patient_id", patient_id, self.deps.client.patient)

    async def providers(self, request: Request, office_id: str) -> Response:
        return listed(await self._read(office_id, lambda key: self.deps.client.providers(key)))

    async def operatories(self, request: Request, office_id: str) -> Response:
        client = self.deps.client
        practices = await self._read(office_id, lambda key: client.practices(key))
        cust_ids = sorted({p.get("cust_id", "") for p in practices if p.get("cust_id")}) or ["1"]
        items = []
        for cust_id in cust_ids:
            items += await self._read(office_id, lambda key, c=cust_id: client.operatories(key, c, is_hidden="F"))
        return listed(items)

    async def appointment_statuses(self, request: Request, office_id: str) -> Response:
        client = self.deps.client
        return listed(
            await self._read(office_id, lambda key: client.practice_variables(key, service_name="Appointment Status"))
        )
