"""Onboarding: what an ``authorized_practices`` listing means for the practices we know. Pure.

Sikka lists one item per (office, practice_id); an office with several practice ids appears
several times with the same ``office_id`` and ``secret_key``. Items are grouped by ``office_id``
and matched exactly against known practices (never "the first item"). Each office then gets the
core's command, ``PracticeListed`` or ``PracticeUnlisted``, and the core decides the events
(``actors.core.decide``: registration, update, re-authorization, de-authorization). The action
reported by ``POST /onboard`` is read off those events:

| events decided                        | action         |
|---------------------------------------|----------------|
| PracticeRegistered                    | ``registered`` |
| PracticeDeauthorized                  | ``deauthorized``|
| PracticeUpdated / PracticeReauthorized| ``updated``    |
| none                                  | ``unchanged``  |

The secret key of every listed office travels with its step so that the shell stores it
(encrypted); it never enters an event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from actors.core import events as ev
from actors.core.messages import PracticeListed, PracticeUnlisted
from actors.core.outcomes import AuthorizedPractice
from actors.core.secret import Secret
from actors.core.state import Practice


class OnboardStep(msgspec.Struct, frozen=True):
    office_id: str
    practice_name: str
    command: PracticeListed | PracticeUnlisted
    secret_key: Secret | None = None  # the listed secret (to store encrypted), None when not listed


class _Office(msgspec.Struct):
    office_id: str
    secret_key: Secret
    practice_name: str
    practice_ids: tuple[str, ...]
    time_zone: str | None


def group_by_office(items: Iterable[AuthorizedPractice]) -> dict[str, _Office]:
    offices: dict[str, _Office] = {}
    for item in items:
        if not item.office_id:
            continue
        office = offices.get(item.office_id)
        if office is None:
            offices[item.office_id] = _Office(
                item.office_id,
                item.secret_key,
                item.practice_name,
                (item.practice_id,) if item.practice_id else (),
                item.time_zone or None,
            )
            continue
        if item.practice_id and item.practice_id not in office.practice_ids:
            office.practice_ids = tuple(sorted(office.practice_ids + (item.practice_id,)))
        office.practice_name = office.practice_name or item.practice_name
        office.time_zone = office.time_zone or item.time_zone or None
        office.secret_key = office.secret_key or item.secret_key
    return offices


def steps(known: Mapping[str, Practice], listed: Iterable[AuthorizedPractice]) -> list[OnboardStep]:
    """One step per office that is known or listed, in office-id order."""
    offices = group_by_office(listed)
    out: list[OnboardStep] = []
    for office_id in sorted(set(known) | set(offices)):
        office = offices.get(office_id)
        if office is None:
            reason = "the practice no longer lists the application in authorized_practices"
            out.append(OnboardStep(office_id, known[office_id].practice_name, PracticeUnlisted(reason=reason)))
            continue
        listed_command = PracticeListed(
            practice_name=office.practice_name, practice_ids=office.practice_ids, time_zone=office.time_zone
        )
        out.append(OnboardStep(office_id, office.practice_name, listed_command, office.secret_key))
    return out


def action(events: Iterable[ev.Event]) -> str:
    kinds = {type(e) for e in events}
    if ev.PracticeRegistered in kinds:
        return "registered"
    if ev.PracticeDeauthorized in kinds:
        return "deauthorized"
    return "updated" if kinds else "unchanged"
