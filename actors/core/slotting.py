"""Open appointment slots computed from a practice's schedule and its bookings. Pure.

Sikka's ``appointments_available_slots`` exists only for a few PMSes (Orthotrac, Dolphin, Planet
DDS); elsewhere the admin API computes slots the way the MCP feature describes: working
intervals from ``practice_schedule`` (``<weekday>_start_N``/``<weekday>_end_N``, N = 1..3, and
``<weekday>_holiday``; a provider's own schedule wins over the practice's), cut into slots of
``slot_minutes``, minus the provider's booked appointments that day.

Assumptions (stated, since Sikka documents none): schedule times are ``HH:mm`` or ``h:mm tt``;
appointment ``date`` is ``yyyy-MM-dd[T…]``, ``time`` ``HH:mm`` and ``length`` minutes, all
practice-local wall time; an appointment with an unparseable time blocks nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::\d{2})?\s*([AaPp][Mm])?\s*$")


def parse_time(text: str) -> time | None:
    m = _TIME.match(text or "")
    if not m:
        return None
    hour, minute, half = int(m[1]), int(m[2]), (m[3] or "").lower()
    if half == "pm" and hour < 12:
        hour += 12
    if half == "am" and hour == 12:
        hour = 0
    return time(hour, minute) if hour < 24 and minute < 60 else None


def working_intervals(schedule: Mapping[str, str], day: date) -> list[tuple[time, time]]:
    name = DAYS[day.weekday()]
    if str(schedule.get(f"{name}_holiday", "")).lower() in ("true", "t", "1", "yes"):
        return []
    out = []
    for n in (1, 2, 3):
        start, end = parse_time(schedule.get(f"{name}_start_{n}", "")), parse_time(schedule.get(f"{name}_end_{n}", ""))
        if start and end and start < end:
            out.append((start, end))
    return out


def _schedule_for(provider_id: str, schedules: Iterable[Mapping[str, str]]) -> Mapping[str, str] | None:
    practice = None
    for item in schedules:
        kind = str(item.get("resource_type", "")).lower()
        if kind == "provider" and item.get("resource_id") == provider_id:
            return item
        if kind == "practice" and practice is None:
            practice = item
    return practice


def _booked(appointments: Iterable[Mapping[str, str]], provider_id: str, day: date) -> list[tuple[datetime, datetime]]:
    out = []
    for a in appointments:
        if a.get("provider_id") != provider_id or not str(a.get("date", "")).startswith(day.isoformat()):
            continue
        start = parse_time(a.get("time", ""))
        length = str(a.get("length", "")).strip()
        if start is None or not length.isdigit():
            continue
        begin = datetime.combine(day, start)
        out.append((begin, begin + timedelta(minutes=int(length))))
    return out


def open_slots(
    day: date,
    providers: Iterable[str],
    schedules: Iterable[Mapping[str, str]],
    appointments: Iterable[Mapping[str, str]],
    slot_minutes: int = 30,
) -> list[dict[str, str]]:
    """Free ``slot_minutes`` slots on ``day`` per provider, as Sikka-style string items."""
    schedules, appointments = list(schedules), list(appointments)
    step = timedelta(minutes=slot_minutes)
    slots = []
    for provider_id in providers:
        schedule = _schedule_for(provider_id, schedules)
        if schedule is None:
            continue
        busy = _booked(appointments, provider_id, day)
        for start, end in working_intervals(schedule, day):
            t, stop = datetime.combine(day, start), datetime.combine(day, end)
            while t + step <= stop:
                if not any(b < t + step and t < e for b, e in busy):
                    slots.append(
                        {"provider_id": provider_id, "date": day.isoformat(), "time": t.strftime("%H:%M"),
                         "length": str(slot_minutes)}
                    )
                t += step
    return slots
