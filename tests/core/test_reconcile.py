"""Decoding Sikka's answers (writeback_status items, GET /writebacks items) and matching."""

from __future__ import annotations

from datetime import timedelta

import pytest

from actors.core import outcomes as oc
from actors.core import reconcile as rc

from tests.support.core import PAYLOADS, T0, at, list_item

S = oc.WritebackStatus


@pytest.mark.parametrize(
    "item,kind",
    [
        (S(id="1", is_completed=False, has_error=False), "pending"),
        (S(id="1", is_completed=True, has_error=False, created_id="77", result="New Patient inserted successfully"), "completed"),
        (S(id="1", is_completed=True, has_error=True, result="Invalid provider"), "failed"),
        (S(id="1", is_completed=False, has_error=True, result="SPU rejected"), "failed"),
        (S(id="1", is_completed=False, has_error=False, status="Deleted"), "deleted"),
        (S(id="1", is_completed=True, has_error=False, result="Writeback request deleted"), "deleted"),
    ],
)
def test_decode_writeback_status(item, kind):
    r = rc.decode_status(item)
    assert r.kind == kind and r.detailed
    if kind == "completed":
        assert r.created_id == "77"
    if kind == "failed":
        assert r.message == item.result
    assert not rc.needs_status_read("book_appointment", r)


@pytest.mark.parametrize(
    "result,kind",
    [
        ("pending", "pending"),
        ("Pending", "pending"),
        ("", "pending"),
        ("completed", "completed"),
        ("Completed", "completed"),
        ("failed", "failed"),
        ("Error: provider not found", "failed"),
        ("deleted", "deleted"),
        ("something new", "unclear"),
    ],
)
def test_decode_list_item(result, kind):
    assert rc.decode_list_item(list_item(result=result)).kind == kind


def test_list_answers_need_a_status_read_only_for_created_id_or_missing_error_text():
    completed = rc.decode_list_item(list_item(result="completed"))
    assert rc.needs_status_read("book_appointment", completed)
    assert rc.needs_status_read("create_patient", completed)
    for op in ("update_appointment_status", "reschedule_appointment", "update_patient", "add_medical_note"):
        assert not rc.needs_status_read(op, completed)
    assert rc.needs_status_read("update_patient", rc.decode_list_item(list_item(result="failed")))
    assert not rc.needs_status_read("update_patient", rc.decode_list_item(list_item(result="failed", description="x")))
    assert rc.decode_list_item(list_item(result="Error: bad")).message == "Error: bad"
    assert rc.needs_status_read("update_patient", rc.decode_list_item(list_item(result="weird")))
    assert not rc.needs_status_read("update_patient", rc.decode_list_item(list_item(result="deleted")))


def test_expected_fields_are_every_body_field_plus_the_path_id():
    f = rc.expected_fields("update_appointment_status", PAYLOADS["update_appointment_status"])
    assert f == {"practice_id": "1-1", "value": "Confirmed", "op": "replace", "path": "/appointment_status", "id": "374"}
    f = rc.expected_fields("book_appointment", {**PAYLOADS["book_appointment"], "length": 30})
    assert f["length"] == "30" and "id" not in f
    assert rc.expected_fields("book_appointment", {"patient_id": "1"}) is None


def _found(items, *, claimed=()):
    """The ids of the candidates for one unknown booking among ``items`` (the proof window,
    "absent" only after attempt + timeout + lease + grace, is the core's: test_state_table)."""
    found = rc.candidates(
        operation="book_appointment",
        office_id="D1111",
        payload=PAYLOADS["book_appointment"],
        attempted_at=at(0),
        items=items,
        claimed=set(claimed),
    )
    return sorted(item.id for item in found)


def test_candidate_rules():
    assert _found([list_item("1")]) == ["1"]
    assert _found([list_item("1"), list_item("2")]) == ["1", "2"]  # ambiguous on its own
    assert _found([list_item("1"), list_item("2")], claimed={"2"}) == ["1"]
    assert _found([]) == []
    # office compared case-insensitively, the api singular/plural, the method exactly
    assert _found([list_item("1", office="d1111")]) == ["1"]
    other_day = list_item("1", when=T0 + timedelta(days=3))
    assert _found([other_day]) == []
    # a command_time a day off (Sikka writing local time) still matches
    assert _found([list_item("1", when=T0 - timedelta(hours=20))]) == ["1"]
    # extra fields in Sikka's body (request_key, apiname) do not matter; a missing one does
    item = list_item("1")
    partial = oc.WritebackListItem(**{**{f: getattr(item, f) for f in item.__struct_fields__}, "request_body": {"time": "09:30"}})
    assert _found([partial]) == []


def test_assign_jointly():
    A = rc.AMBIGUOUS
    assert rc.assign({"a": frozenset({"1"})}) == {"a": "1"}
    assert rc.assign({"a": frozenset()}) == {"a": None}
    assert rc.assign({"a": frozenset({"1", "2"})}) == {"a": A}
    assert rc.assign({"a": frozenset({"1"}), "b": frozenset({"1"})}) == {"a": A, "b": A}
    assert rc.assign({"a": frozenset({"10", "9"}), "b": frozenset({"9", "10"})}) == {"a": "9", "b": "10"}
    assert rc.assign({"a": frozenset({"1", "2"}), "b": frozenset({"2"})}) == {"a": A, "b": A}
    assert rc.assign({"a": frozenset({"1"}), "b": frozenset({"2"}), "c": frozenset()}) == {"a": "1", "b": "2", "c": None}


def test_assign_pairs_identical_requests_in_send_order():
    from datetime import datetime

    A = rc.AMBIGUOUS
    both = frozenset({"1000", "1001"})
    t0, t1 = at(1), at(300)
    early, late = datetime(2026, 3, 2, 15, 0, 1), datetime(2026, 3, 2, 15, 5, 1)
    # send order, not the order of claims: the late watch w1 (no seq) was sent before w2
    got = rc.assign({"w2": both, "w1": both}, sent={"w2": (t1, 2), "w1": (t0, None)}, written={"1000": early, "1001": late})
    assert got == {"w2": "1001", "w1": "1000"}
    # items in command_time order, then id
    got = rc.assign({"a": both, "b": both}, sent={"a": (t0, 1), "b": (t1, 2)}, written={"1000": late, "1001": early})
    assert got == {"a": "1001", "b": "1000"}
    got = rc.assign({"a": both, "b": both}, sent={"a": (t0, 1), "b": (t1, 2)}, written={"1000": early, "1001": early})
    assert got == {"a": "1000", "b": "1001"}
    # an item without a time: id order for the group
    got = rc.assign({"a": both, "b": both}, sent={"a": (t0, 1), "b": (t1, 2)}, written={"1000": None, "1001": early})
    assert got == {"a": "1000", "b": "1001"}
    # same attempt start: request order decides when both know it; otherwise no faithful pairing
    assert rc.assign({"b": both, "a": both}, sent={"a": (t0, 1), "b": (t0, 2)}) == {"b": "1001", "a": "1000"}
    assert rc.assign({"a": both, "b": both}, sent={"a": (t0, None), "b": (t0, 2)}) == {"a": A, "b": A}
    assert rc.assign({"a": both, "b": both}, sent={"a": (t0, None), "b": (t0, None)}) == {"a": A, "b": A}
