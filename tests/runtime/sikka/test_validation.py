"""Writeback payload validation (``actors.core.operations.prepare``, ``normalize``): pure."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.core.operations import (
    FORBIDDEN_PATH_CHARS,
    OPERATIONS,
    PayloadError,
    SikkaRequest,
    normalize,
    prepare,
)
from tests.support.sikka import BOOKING

VALID = {
    "book_appointment": dict(BOOKING),
    "reschedule_appointment": {"appointment_sr_no": "70670", "practice_id": "1", "time": "14:00"},
    "update_appointment_status": {"appointment_sr_no": "70670", "practice_id": "1", "value": "Cancelled"},
    "create_patient": {"firstname": "Jane", "lastname": "Doe", "provider_id": "DOC1", "practice_id": "1"},
    "update_patient": {"patient_id": "5383", "practice_id": "1", "email": "jane@example.com"},
    "add_medical_note": {
        "date": "2025-03-17",
        "patient_id": "5383",
        "type": "General",
        "text": "Prefers mornings",
        "provider_id": "DOC1",
        "practice_id": "1",
    },
}

SPU = {"check_spu": "true"}  # added by the supervisor: Sikka answers 412 rather than hold it pending
EXPECTED = {
    "book_appointment": SikkaRequest("POST", "/appointment", {**VALID["book_appointment"], **SPU}),
    "reschedule_appointment": SikkaRequest("PUT", "/appointments/70670", {"practice_id": "1", "time": "14:00", **SPU}),
    "update_appointment_status": SikkaRequest(
        "PATCH",
        "/appointments/70670",
        {"practice_id": "1", "value": "Cancelled", "op": "replace", "path": "/appointment_status", **SPU},
    ),
    "create_patient": SikkaRequest("POST", "/patient", {**VALID["create_patient"], **SPU}),
    "update_patient": SikkaRequest("PATCH", "/patient/5383", {"practice_id": "1", "email": "jane@example.com", **SPU}),
    "add_medical_note": SikkaRequest("POST", "/medical_notes", VALID["add_medical_note"]),  # check_spu undocumented
}


def refused(operation: str, payload: dict, field: str | None, code: str) -> None:
    with pytest.raises(PayloadError) as caught:
        prepare(operation, payload).body
    assert (caught.value.field, caught.value.code) == (field, code)
    assert caught.value.detail and isinstance(caught.value, ValueError)


def test_every_operation_has_a_valid_example():
    assert set(VALID) == set(OPERATIONS)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_valid_payload_becomes_the_exact_request(operation):
    assert prepare(operation, VALID[operation]) == EXPECTED[operation]
    assert prepare(operation, VALID[operation]).body == EXPECTED[operation].body


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_normalized_payload_prepares_again_into_the_same_request(operation):
    """Regression: the admin API stored the Sikka body (path field moved into the path, ``op`` and
    ``path`` added), so every reschedule, status update and patient update failed when sent
    (``missing_field``/``unknown_field``). What is stored must prepare again."""
    numeric = {k: int(v) if v.isdigit() else v for k, v in VALID[operation].items()}
    stored = normalize(operation, numeric)
    assert stored == VALID[operation]
    assert prepare(operation, stored) == EXPECTED[operation]


@pytest.mark.parametrize(
    ("operation", "field"), [(op, f) for op, spec in sorted(OPERATIONS.items()) for f in spec.required]
)
def test_each_required_field(operation, field):
    payload = {k: v for k, v in VALID[operation].items() if k != field}
    refused(operation, payload, field, "missing_field")
    refused(operation, {**VALID[operation], field: "  "}, field, "missing_field")


@pytest.mark.parametrize("operation", ["reschedule_appointment", "update_patient"])
def test_at_least_one_of(operation):
    spec = OPERATIONS[operation]
    payload = {k: v for k, v in VALID[operation].items() if k not in spec.one_of}
    refused(operation, payload, None, "missing_field")
    refused(operation, {**payload, spec.one_of[0]: ""}, None, "missing_field")


@pytest.mark.parametrize(
    ("operation", "field"),
    [
        ("book_appointment", "check_spu"),
        ("book_appointment", "duration"),
        ("update_appointment_status", "op"),  # set by the supervisor, not the caller
        ("update_appointment_status", "path"),
        ("update_patient", "metadata"),
        ("add_medical_note", "content"),
        ("create_patient", "phone"),
    ],
)
def test_unknown_fields(operation, field):
    refused(operation, {**VALID[operation], field: "x"}, field, "unknown_field")


def test_unknown_operation_and_non_object_payload():
    refused("process_payment", {}, "operation", "unknown_operation")
    refused("book_appointment", ["not", "a", "dict"], "payload", "invalid_field")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False, None, [], ["a"], {}, {"a": "b"}, math.nan, math.inf, b"30"])
def test_non_string_types_are_invalid(value):
    refused("book_appointment", {**VALID["book_appointment"], "description": value}, "description", "invalid_field")


@pytest.mark.parametrize(
    ("value", "text"), [(30, "30"), (30.0, "30"), (45, "45"), (1.5, "1.5"), (1e-7, "0.0000001"), (-39.3, "-39.3")]
)
def test_numbers_become_decimal_strings(value, text):
    body = prepare("create_patient", {**VALID["create_patient"], "zipcode": value, "practice_id": 1}).body
    assert body["zipcode"] == text and body["practice_id"] == "1"
    assert all(isinstance(v, str) for v in body.values())


@pytest.mark.parametrize("value", ["2025-02-30", "2025-2-3", "20250203", "2025-02-03T00:00:00", "03/17/2025", "", "2025-13-01"])
@pytest.mark.parametrize(
    ("operation", "field"),
    [
        ("book_appointment", "date"),
        ("reschedule_appointment", "date"),
        ("add_medical_note", "date"),
        ("create_patient", "birthdate"),
        ("update_patient", "birthdate"),
    ],
)
def test_bad_dates(operation, field, value):
    refused(operation, {**VALID[operation], field: value}, field, "missing_field" if not value and field in OPERATIONS[operation].required else "invalid_field")


def test_real_dates_pass():
    assert prepare("create_patient", {**VALID["create_patient"], "birthdate": "2024-02-29"}).body["birthdate"] == "2024-02-29"


@pytest.mark.parametrize("value", ["24:00", "9:30", "09:60", "09:30:00", "0930", "", "noon", "-1:00"])
def test_bad_times(value):
    refused("book_appointment", {**VALID["book_appointment"], "time": value}, "time", "missing_field" if not value else "invalid_field")
    refused("reschedule_appointment", {**VALID["reschedule_appointment"], "date": "2025-03-18", "time": value}, "time", "invalid_field")


@pytest.mark.parametrize("value", ["00:00", "23:59", "12:30"])
def test_good_times(value):
    assert prepare("book_appointment", {**VALID["book_appointment"], "time": value}).body["time"] == value


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5", 1.5, 0, -30, "030", " 30"])
def test_bad_lengths(value):
    refused("book_appointment", {**VALID["book_appointment"], "length": value}, "length", "invalid_field")
    refused("reschedule_appointment", {**VALID["reschedule_appointment"], "length": value}, "length", "invalid_field")


@pytest.mark.parametrize("char", sorted(FORBIDDEN_PATH_CHARS))
@pytest.mark.parametrize(
    ("operation", "field"),
    [("reschedule_appointment", "appointment_sr_no"), ("update_appointment_status", "appointment_sr_no"), ("update_patient", "patient_id")],
)
def test_each_forbidden_path_character(operation, field, char):
    refused(operation, {**VALID[operation], field: f"70{char}670"}, field, "invalid_field")


@pytest.mark.parametrize("value", ["", " ", "70 670", "..", ".", "7\t0", "é1", "a\n"])
def test_other_unsafe_path_ids(value):
    code = "missing_field" if not value.strip() else "invalid_field"
    refused("update_patient", {**VALID["update_patient"], "patient_id": value}, "patient_id", code)


def test_path_ids_may_be_numbers_and_opaque_strings():
    assert prepare("update_patient", {**VALID["update_patient"], "patient_id": 5383}).path == "/patient/5383"
    assert prepare("reschedule_appointment", {**VALID["reschedule_appointment"], "appointment_sr_no": "apt-1"}).path == "/appointments/apt-1"


@given(
    st.dictionaries(
        st.sampled_from(OPERATIONS["create_patient"].optional),
        st.one_of(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20), st.integers(-10**6, 10**6)),
        max_size=5,
    )
)
def test_optional_fields_pass_through_as_strings(extra):
    extra.pop("birthdate", None)  # has a format of its own
    try:
        body = prepare("create_patient", {**VALID["create_patient"], **extra}).body
    except PayloadError:
        raise AssertionError(f"refused {extra!r}") from None
    assert all(isinstance(v, str) for v in body.values())
    assert {k: body[k] for k in extra} == {k: str(v) for k, v in extra.items()}
