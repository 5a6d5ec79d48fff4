"""Onboarding decisions: exact office matching, grouping of practice ids, every row of the table."""

from __future__ import annotations

from datetime import UTC, datetime

from actors import events as ev
from actors.onboarding import plan
from actors.outcomes import AuthorizedPractice
from actors.state import empty, fold

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def item(office, practice_id="1", name="Smile Dental", secret="s3cret", tz="Eastern Standard Time"):
    return AuthorizedPractice(office_id=office, secret_key=secret, practice_name=name, practice_id=practice_id, time_zone=tz)


def known(*events_by_office):
    return {office: fold(empty(office), events) for office, events in events_by_office}


def registered(office, **kw):
    details = dict(practice_name="Smile Dental", practice_ids=("1",), time_zone="Eastern Standard Time") | kw
    return ev.PracticeRegistered(at=NOW, office_id=office, **details)


def test_new_offices_are_registered_with_all_their_practice_ids():
    steps = plan({}, [item("D2", "2"), item("D1"), item("D2", "1")], NOW)
    assert [(s.office_id, s.action) for s in steps] == [("D1", "registered"), ("D2", "registered")]
    (event,) = steps[1].events
    assert event == registered("D2", practice_ids=("1", "2"))
    assert steps[1].secret_key == "s3cret"


def test_matching_is_by_exact_office_id_never_the_first_item():
    steps = plan(known(("D10", [registered("D10")])), [item("D1", name="Other"), item("D10")], NOW)
    by_office = {s.office_id: s for s in steps}
    assert by_office["D10"].action == "unchanged" and by_office["D10"].events == ()
    assert by_office["D1"].action == "registered"


def test_changed_details_are_updated():
    steps = plan(known(("D1", [registered("D1")])), [item("D1", name="Smile Dental & Ortho", tz="Central Standard Time")], NOW)
    assert steps[0].action == "updated"
    assert steps[0].events == (
        ev.PracticeUpdated(at=NOW, practice_name="Smile Dental & Ortho", practice_ids=("1",), time_zone="Central Standard Time"),
    )


def test_missing_practice_is_deauthorized_once():
    first = plan(known(("D1", [registered("D1")])), [], NOW)
    assert first[0].action == "deauthorized" and isinstance(first[0].events[0], ev.PracticeDeauthorized)
    assert first[0].secret_key is None
    again = plan(known(("D1", [registered("D1"), *first[0].events])), [], NOW)
    assert again[0].action == "unchanged" and again[0].events == ()


def test_reauthorized_practice_comes_back():
    history = [registered("D1"), ev.PracticeDeauthorized(at=NOW, reason="gone")]
    steps = plan(known(("D1", history)), [item("D1")], NOW)
    assert steps[0].action == "updated" and steps[0].events == (ev.PracticeReauthorized(at=NOW),)
    assert fold(empty("D1"), history + list(steps[0].events)).state == "active"


def test_offboarded_practice_is_left_alone():
    history = [registered("D1"), ev.PracticeOffboarded(at=NOW)]
    assert plan(known(("D1", history)), [], NOW)[0].action == "unchanged"
    assert plan(known(("D1", history)), [item("D1", name="New name")], NOW)[0].events == ()
