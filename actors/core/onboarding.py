"""Onboarding: what an ``authorized_practices`` listing means for the practices we know. Pure.

Sikka lists one item per (office, practice_id); an office with several practice ids appears
several times with the same ``office_id`` and ``secret_key``. Items are grouped by ``office_id``
and matched exactly against known practices (never "the first item"). Each office then gets the
core's command, ``PracticeListed`` or ``PracticeUnlisted``, and the core decides the events
(``actors.core.decide``: registration, update, re-authorization, de-authorization,
reinstatement). ``steps(..., named=OFFICE_ID)`` is the flow for one office an operator named
(``onboard --office``): only its step, and its ``PracticeListed`` is ``named``, which brings an
offboarded practice back. The action reported by ``POST /onboard`` is read off those events:

| events decided                          | action          |
|-----------------------------------------|-----------------|
| PracticeRegistered / PracticeReinstated | ``registered``  |
| PracticeDeauthorized                    | ``deauthorized``|
| PracticeUpdated / PracticeReauthorized  | ``updated``     |
| none, for an offboarded practice        | ``offboarded``  |
| none                                    | ``unchanged``   |

The secret key of every listed office travels with its step so that the shell stores it
(encrypted); it never enters an event. An offboarded practice's step carries none unless it is
named (its credentials were destroyed and stay so).
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


def steps(
    known: Mapping[str, Practice], listed: Iterable[AuthorizedPractice], named: str | None = None
) -> list[OnboardStep]:
    """One step per office that is known or listed, in office-id order; with ``named``, that
    office's step only, and only if Sikka lists it (none otherwise)."""
    offices = group_by_office(listed)
    if named is not None:
        offices = {named: offices[named]} if named in offices else {}
        known = {}
    out: list[OnboardStep] = []
    for office_id in sorted(set(known) | set(offices)):
        office = offices.get(office_id)
        if office is None:
            reason = "the practice no longer lists the application in authorized_practices"
            out.append(OnboardStep(office_id, known[office_id].practice_name, PracticeUnlisted(reason=reason)))
            continue
        listed_command = PracticeListed(
            practice_name=office.practice_name, practice_ids=office.practice_ids, time_zone=office.time_zone,
            named=office_id == named,
        )
        left_offboarded = office_id in known and known[office_id].offboarded and office_id != named
        secret = None if left_offboarded else office.secret_key
        out.append(OnboardStep(office_id, office.practice_name, listed_command, secret))
    return out


def action(events: Iterable[ev.Event], before: Practice | None = None) -> str:
    """What happened to the practice (``before``: as it was, if known)."""
    kinds = {type(e) for e in events}
    if kinds & {ev.PracticeRegistered, ev.PracticeReinstated}:
        return "registered"
    if ev.PracticeDeauthorized in kinds:
        return "deauthorized"
    if kinds:
        return "updated"
    return "offboarded" if before is not None and before.offboarded else "unchanged"
