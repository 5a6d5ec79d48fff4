"""Onboarding: what an ``authorized_practices`` listing means for the practices we know. Pure.

Sikka lists one item per (office, practice_id); an office with several practice ids appears
several times with the same ``office_id`` and ``secret_key``. Items are grouped by ``office_id``
and matched exactly against known practices (never "the first item"):

| known practice                       | listed | action         | events                          |
|--------------------------------------|--------|----------------|---------------------------------|
| none                                 | yes    | ``registered`` | PracticeRegistered              |
| authorized, same details             | yes    | ``unchanged``  | —                               |
| authorized, details changed          | yes    | ``updated``    | PracticeUpdated                 |
| de-authorized                        | yes    | ``updated``    | PracticeReauthorized (+Updated) |
| authorized                           | no     | ``deauthorized``| PracticeDeauthorized           |
| de-authorized or offboarded          | no     | ``unchanged``  | —                               |

The secret key of every listed office is returned with the plan so that the shell stores it
(encrypted) when it is new or changed; it never enters an event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

from actors import events as ev
from actors.outcomes import AuthorizedPractice
from actors.state import Practice


class OnboardStep(msgspec.Struct, frozen=True):
    office_id: str
    practice_name: str
    action: str  # "registered" | "updated" | "unchanged" | "deauthorized"
    events: tuple[ev.Event, ...] = ()
    secret_key: str | None = None  # the listed secret (to store encrypted), None when not listed


class _Office(msgspec.Struct):
    office_id: str
    secret_key: str
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


def plan(known: Mapping[str, Practice], listed: Iterable[AuthorizedPractice], now: datetime) -> list[OnboardStep]:
    """One step per office that is known or listed, in office-id order."""
    offices = group_by_office(listed)
    steps: list[OnboardStep] = []
    for office_id in sorted(set(known) | set(offices)):
        practice = known.get(office_id)
        office = offices.get(office_id)
        if office is None:
            assert practice is not None
            if practice.authorized and not practice.offboarded and practice.registered:
                deauthorized = ev.PracticeDeauthorized(
                    at=now, reason="the practice no longer lists the application in authorized_practices"
                )
                steps.append(OnboardStep(office_id, practice.practice_name, "deauthorized", (deauthorized,)))
            else:
                steps.append(OnboardStep(office_id, practice.practice_name, "unchanged"))
            continue
        details = dict(practice_name=office.practice_name, practice_ids=office.practice_ids, time_zone=office.time_zone)
        if practice is None or not practice.registered:
            registered = ev.PracticeRegistered(at=now, office_id=office_id, **details)
            steps.append(OnboardStep(office_id, office.practice_name, "registered", (registered,), office.secret_key))
            continue
        events: list[ev.Event] = []
        if not practice.authorized and not practice.offboarded:
            events.append(ev.PracticeReauthorized(at=now))
        same = (practice.practice_name, practice.practice_ids, practice.time_zone) == (
            office.practice_name,
            office.practice_ids,
            office.time_zone,
        )
        if not same and not practice.offboarded:
            events.append(ev.PracticeUpdated(at=now, **details))
        action = "updated" if events else "unchanged"
        steps.append(OnboardStep(office_id, office.practice_name, action, tuple(events), office.secret_key))
    return steps
