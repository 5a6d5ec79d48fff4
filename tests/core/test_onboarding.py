"""Onboarding: exact office matching, grouping of practice ids, and every row of the table as the
core decides it."""

from __future__ import annotations

from datetime import UTC, datetime

from actors.core import events as ev
from actors.core.messages import PracticeListed, PracticeUnlisted
from actors.core.decide import decide
from actors.core.onboarding import action, steps
from actors.core.outcomes import AuthorizedPractice
from actors.core.state import empty, fold

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def item(office, practice_id="1", name="Smile Dental", secret="s3cret", tz="Eastern Standard Time"):
    return AuthorizedPractice(office_id=office, secret_key=secret, practice_name=name, practice_id=practice_id, time_zone=tz)


def registered(office, **kw):
    details = dict(practice_name="Smile Dental", practice_ids=("1",), time_zone="Eastern Standard Time") | kw
    return ev.PracticeRegistered(at=NOW, office_id=office, **details)


def run(known_events, listed):
    known = {office: fold(empty(office), events) for office, events in known_events.items()}
    out = {}
    for s in steps(known, listed):
        events = decide(known.get(s.office_id) or empty(s.office_id), s.command, NOW)
        out[s.office_id] = (action(events), events, s)
    return out


def test_new_offices_are_registered_with_all_their_practice_ids():
    out = run({}, [item("D2", "2"), item("D1"), item("D2", "1")])
    assert [(k, v[0]) for k, v in out.items()] == [("D1", "registered"), ("D2", "registered")]
    assert out["D2"][1] == [registered("D2", practice_ids=("1", "2"))]
    assert out["D2"][2].secret_key == "s3cret"


def test_matching_is_by_exact_office_id_never_the_first_item():
    out = run({"D10": [registered("D10")]}, [item("D1", name="Other"), item("D10")])
    assert out["D10"][0] == "unchanged" and out["D10"][1] == []
    assert out["D1"][0] == "registered"


def test_changed_details_are_updated():
    out = run({"D1": [registered("D1")]}, [item("D1", name="Smile & Ortho", tz="Central Standard Time")])
    assert out["D1"][0] == "updated"
    assert out["D1"][1] == [
        ev.PracticeUpdated(at=NOW, practice_name="Smile & Ortho", practice_ids=("1",), time_zone="Central Standard Time")
    ]


def test_missing_practice_is_deauthorized_once():
    first = run({"D1": [registered("D1")]}, [])
    assert first["D1"][0] == "deauthorized" and isinstance(first["D1"][2].command, PracticeUnlisted)
    assert first["D1"][2].secret_key is None
    again = run({"D1": [registered("D1"), *first["D1"][1]]}, [])
    assert again["D1"][0] == "unchanged"


def test_reauthorized_practice_comes_back():
    history = [registered("D1"), ev.PracticeDeauthorized(at=NOW, reason="gone")]
    out = run({"D1": history}, [item("D1")])
    assert out["D1"][0] == "updated" and out["D1"][1] == [ev.PracticeReauthorized(at=NOW)]
    assert fold(empty("D1"), history + out["D1"][1]).state == "active"


def test_offboarded_practice_is_left_alone():
    history = [registered("D1"), ev.PracticeOffboarded(at=NOW)]
    assert run({"D1": history}, [])["D1"][0] == "unchanged"
    assert run({"D1": history}, [item("D1", name="New name")])["D1"][0] == "unchanged"
    assert isinstance(steps({}, [item("D9")])[0].command, PracticeListed)
