"""Ports of the TypeScript integration's client and field-mapping cases (peer-implementation.md
4.1-4.3), corrected where they encode bugs (each correction is named in its test)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from actors.core.operations import PayloadError
from actors.core.secret import Secret
from actors.core.outcomes import (
    InvalidKey,
    Ok,
    Rejected,
    ServerError,
    TransportFailure,
    Unauthorized,
    Unknown,
    WritebackAck,
    WritebackStatus,
)
from tests.support.sikka import APP_ID, APP_KEY, KEY, REQUEST_KEY, envelope

ACK = {"http_code": "201", "error_code": "API2016", "long_message": "Id:275495", "more_information": "https://api.sikkasoft.com/v4/writeback_status?id=275495"}


def sent(route) -> dict:
    return json.loads(route.calls.last.request.content)


def grant(request_key: str = "new-request-key", refresh_key: str | None = "new-refresh-key", expires_in: str = "86400 second(s)") -> httpx.Response:
    body = {"request_key": request_key, "expires_in": expires_in, "issued_to": "office-1", "status": "active"}
    if refresh_key is not None:
        body["refresh_key"] = refresh_key
    return httpx.Response(200, json=body)


# --- reads (4.1 getAppointments, getAppointment, searchPatients, getPatient, providers, slots) -----


async def test_get_appointments_params(client, sikka):
    route = sikka.get("/appointments").mock(return_value=httpx.Response(200, json=envelope([])))

    await client.appointments(KEY, date(2025, 3, 1), date(2025, 3, 31), limit=20, practice_id="1")

    params = route.calls.last.request.url.params
    assert dict(params) == {"startdate": "2025-03-01", "enddate": "2025-03-31", "practice_id": "1", "offset": "0", "limit": "20"}
    assert "status" not in params


async def test_appointment_items_are_sikkas_strings_as_given(client, sikka):
    item = {"appointment_sr_no": "apt-1", "type": "Checkup", "date": "2025-03-15T00:00:00", "time": "10:00", "length": "30", "status": "scheduled", "note": "n"}
    sikka.get("/appointments").mock(return_value=httpx.Response(200, json=envelope([item])))

    result = await client.appointments(KEY, date(2025, 3, 15), date(2025, 3, 15))

    assert result.value == [item]  # no mapping: wall-clock date/time and string length stay Sikka's


async def test_get_appointments_500(client, sikka):
    sikka.get("/appointments").mock(return_value=httpx.Response(500, json={"error_code": "API2001", "long_message": "Internal Error."}))

    result = await client.appointments(KEY, date(2025, 3, 1), date(2025, 3, 2))

    assert result.outcome == ServerError(500, "API2001", "Internal Error.")


async def test_get_appointment_uses_the_documented_query_not_a_path(client, sikka):
    # ⚠ the peer called GET /appointments/apt-1, which Sikka does not document (bug 12)
    route = sikka.get("/appointments").mock(return_value=httpx.Response(200, json=envelope([{"appointment_sr_no": "apt-1"}])))

    result = await client.appointment(KEY, "apt-1")

    assert result.value == {"appointment_sr_no": "apt-1"}
    assert route.calls.last.request.url.params["appointment_sr_no"] == "apt-1"
    assert route.calls.last.request.url.params["limit"] == "1"


async def test_get_patient_and_not_found(client, sikka):
    patient = {"patient_id": "pat-1", "firstname": "Jane", "birthdate": "1984-12-10T00:00:00"}
    route = sikka.get("/patients").mock(
        side_effect=[httpx.Response(200, json=envelope([patient])), httpx.Response(204)]
    )

    found = await client.patient(KEY, "pat-1")
    missing = await client.patient(KEY, "nobody")

    assert found.value == patient and found.value["birthdate"] == "1984-12-10T00:00:00"
    assert missing.outcome == Ok(None)
    assert [c.request.url.params["patient_id"] for c in route.calls] == ["pat-1", "nobody"]


async def test_name_search_uses_sikkas_search_in_one_call(client, sikka):
    # ⚠ the peer split "Jane Doe" into firstname/lastname; Sikka's `search` covers names, email, city…
    route = sikka.get("/patients").mock(return_value=httpx.Response(200, json=envelope([])))

    await client.search_patients(KEY, "Jane Doe", limit=10)

    assert route.call_count == 1
    params = route.calls.last.request.url.params
    assert (params["search"], params["limit"], params["offset"]) == ("Jane Doe", "10", "0")


@pytest.mark.parametrize(
    ("query", "digits"),
    [("555-1234", "5551234"), ("+1 (555) 123-4567", "5551234567"), ("+15551234567", "5551234567"), ("5858578357", "5858578357")],
)
async def test_phone_search_sends_digits_without_inventing_a_country_code(client, sikka, query, digits):
    # ⚠ the peer turned "555-1234" into "+5551234"
    route = sikka.get("/patients").mock(return_value=httpx.Response(200, json=envelope([{"patient_id": "p"}])))

    await client.search_patients(KEY, query)

    assert route.calls.last.request.url.params["cell"] == digits


@pytest.mark.parametrize(
    ("hit", "calls"), [("cell", 1), ("homephone", 2), ("workphone", 3), (None, 3)], ids=["cell", "home", "work", "none"]
)
async def test_phone_search_over_cell_then_home_then_work(client, sikka, hit, calls):
    match = {"patient_id": "pat-9", "homephone": "5858578357"}

    def serve(request: httpx.Request) -> httpx.Response:
        field = next(f for f in ("cell", "homephone", "workphone") if f in request.url.params)
        assert request.url.params[field] == "5858578357"
        return httpx.Response(200, json=envelope([match] if field == hit else []))

    route = sikka.get("/patients").mock(side_effect=serve)

    result = await client.search_patients(KEY, "(585) 857-8357")

    assert result.value == ([match] if hit else [])
    assert route.call_count == calls
    fields = [next(f for f in ("cell", "homephone", "workphone") if f in c.request.url.params) for c in route.calls]
    assert fields == ["cell", "homephone", "workphone"][:calls]


async def test_phone_search_stops_on_a_failure(client, sikka):
    route = sikka.get("/patients").mock(return_value=httpx.Response(400, json={"error_code": "API1025"}))

    result = await client.search_patients(KEY, "5858578357")

    assert result.outcome.code == "API1025"
    assert route.call_count == 1


async def test_providers_and_one_provider(client, sikka):
    provider = {"provider_id": "HYG2", "firstname": "brian", "lastname": "albert", "status": "inactive"}
    route = sikka.get("/providers").mock(return_value=httpx.Response(200, json=envelope([provider])))

    result = await client.providers(KEY, provider_id="HYG2", limit=1)

    assert result.value == [provider]  # status stays Sikka's text; mapping is the caller's
    assert route.calls.last.request.url.params["provider_id"] == "HYG2"


async def test_check_availability_params(client, sikka):
    slot = {"date": "2025-03-17", "time": "09:00", "provider_id": "DOC1"}
    route = sikka.get("/appointments_available_slots").mock(return_value=httpx.Response(200, json=envelope([slot])))

    result = await client.available_slots(KEY, date(2025, 3, 17), date(2025, 3, 17), provider_id="DOC1", practice_id="1")

    assert result.value == [slot]
    params = route.calls.last.request.url.params
    assert (params["startdate"], params["enddate"], params["provider_id"], params["practice_id"]) == ("2025-03-17", "2025-03-17", "DOC1", "1")


async def test_no_slots_is_an_empty_list(client, sikka):
    sikka.get("/appointments_available_slots").mock(return_value=httpx.Response(204))

    assert (await client.available_slots(KEY, date(2025, 3, 17), date(2025, 3, 17))).outcome == Ok([])


async def test_appointment_statuses_from_practice_variables(client, sikka):
    route = sikka.get("/practice_variables").mock(return_value=httpx.Response(200, json=envelope([{"value": "broken"}])))

    await client.practice_variables(KEY, service_name="Appointment Status")

    assert route.calls.last.request.url.params["service_name"] == "Appointment Status"


async def test_operatories_send_cust_id(client, sikka):
    route = sikka.get("/operatories").mock(return_value=httpx.Response(200, json=envelope([{"operatory": "Tina"}])))

    result = await client.operatories(KEY, "1", is_hidden="F")

    assert result.value == [{"operatory": "Tina"}]
    assert (route.calls.last.request.url.params["cust_id"], route.calls.last.request.url.params["is_hidden"]) == ("1", "F")


@pytest.mark.parametrize(("exc", "kind"), [(httpx.ConnectError, "connect"), (httpx.ConnectTimeout, "connect"), (httpx.ReadTimeout, "timeout")])
async def test_connection_refused_and_timeout(client, sikka, exc, kind):
    # ECONNREFUSED → CONNECTION_REFUSED, ETIMEDOUT → TIMEOUT in the peer
    sikka.get("/appointments").mock(side_effect=exc)

    result = await client.appointments(KEY, date(2025, 3, 1), date(2025, 3, 2))

    assert result.outcome.kind == kind and isinstance(result.outcome, TransportFailure)


# --- writes (4.1 createPatient, bookAppointment, reschedule, cancel, updatePatient, notes) --------------


async def test_create_patient_body(client, sikka):
    route = sikka.post("/patient").mock(return_value=httpx.Response(201, json=ACK))
    payload = {
        "firstname": "Jane",
        "lastname": "Doe",
        "birthdate": "1990-01-01",
        "cell": "5551234567",
        "email": "jane@example.com",
        "practice_id": 1,
        "provider_id": "DOC2",
        "address_line1": "1 Main St",
        "city": "Newington",
        "state": "CT",
        "zipcode": "06111",
    }

    result = await client.submit(KEY, "create_patient", payload)

    assert result.value == WritebackAck(sikka_writeback_id="275495", code="API2016")
    assert sent(route) == {**payload, "practice_id": "1", "check_spu": "true"}


async def test_writeback_id_never_made_up_from_a_message(client, sikka):
    # ⚠ the peer's regex read ids out of messages like "Invalid provider id" (bug 14)
    sikka.post("/patient").mock(
        return_value=httpx.Response(201, json={"error_code": "API2016", "long_message": "Invalid provider id 12", "more_information": ""})
    )

    result = await client.submit(KEY, "create_patient", {"firstname": "J", "lastname": "D", "provider_id": "X", "practice_id": "1"})

    assert result.outcome == Unknown(reason="unparseable", status=201)


async def test_book_appointment_body(client, sikka):
    route = sikka.post("/appointment").mock(return_value=httpx.Response(201, json=ACK))
    payload = {
        "patient_id": "pat-1",
        "provider_id": "DOC1",
        "date": "2025-03-15",
        "time": "10:00",
        "length": 30,
        "note": "Bring x-rays",
        "description": "Checkup",
        "operatory": "Tina",
        "practice_id": "1",
    }

    result = await client.submit(KEY, "book_appointment", payload)

    assert result.ok
    body = sent(route)
    assert body == {**payload, "length": "30", "check_spu": "true"}
    assert "type" not in body  # not sent when no type applies


async def test_reschedule_body(client, sikka):
    route = sikka.put("/appointments/apt-1").mock(return_value=httpx.Response(200, json={**ACK, "error_code": "API0007"}))

    result = await client.submit(
        KEY,
        "reschedule_appointment",
        {"appointment_sr_no": "apt-1", "date": "2025-03-16", "time": "14:00", "length": 45, "practice_id": "1", "provider_id": "DOC1"},
    )

    assert result.ok
    assert sent(route) == {"date": "2025-03-16", "time": "14:00", "length": "45", "practice_id": "1", "provider_id": "DOC1", "check_spu": "true"}


async def test_reschedule_refuses_an_iso_datetime_instead_of_converting_in_utc(client, sikka):
    # ⚠ the peer cut "…T14:00:00Z" in UTC (bug 34); the caller must give practice-local date and time
    route = sikka.put("/appointments/apt-1")

    with pytest.raises(PayloadError) as caught:
        await client.submit(KEY, "reschedule_appointment", {"appointment_sr_no": "apt-1", "practice_id": "1", "time": "2025-03-16T14:00:00Z"})

    assert caught.value.field == "time"
    assert route.call_count == 0


@pytest.mark.parametrize("value", ["broken", "Cancelled", "No Show"])
async def test_cancel_appointment_patch(client, sikka, value):
    route = sikka.patch("/appointments/apt-1").mock(return_value=httpx.Response(200, json={**ACK, "error_code": "API0007"}))

    result = await client.submit(
        KEY,
        "update_appointment_status",
        {"appointment_sr_no": "apt-1", "practice_id": "1", "value": value, "cancellation_note": "Patient called"},
    )

    assert result.ok
    assert sent(route) == {"op": "replace", "path": "/appointment_status", "value": value, "cancellation_note": "Patient called", "practice_id": "1", "check_spu": "true"}


async def test_update_patient_patch_always_has_practice_id(client, sikka):
    route = sikka.patch("/patient/pat-1").mock(return_value=httpx.Response(200, json={**ACK, "error_code": "API0011"}))

    await client.submit(
        KEY,
        "update_patient",
        {"patient_id": "pat-1", "practice_id": "1", "email": "new@example.com", "firstname": "Jane", "address_line1": "2 Elm", "city": "X", "state": "CT", "zipcode": "06111"},
    )

    body = sent(route)
    assert body["practice_id"] == "1" and body["email"] == "new@example.com"
    assert "patient_id" not in body  # it is in the path


async def test_update_patient_refuses_arbitrary_metadata(client, sikka):
    # ⚠ the peer spread caller metadata into the body (bug 13)
    route = sikka.patch("/patient/pat-1")

    with pytest.raises(PayloadError) as caught:
        await client.submit(KEY, "update_patient", {"patient_id": "pat-1", "practice_id": "1", "email": "e@x.io", "is_admin": "true"})

    assert (caught.value.field, caught.value.code) == ("is_admin", "unknown_field")
    assert route.call_count == 0


async def test_add_note_uses_sikkas_fields(client, sikka):
    # ⚠ the peer sent content/category, which Sikka does not know (bug 13)
    route = sikka.post("/medical_notes").mock(return_value=httpx.Response(201, json=ACK))
    with pytest.raises(PayloadError) as caught:
        await client.submit(KEY, "add_medical_note", {"patient_id": "pat-1", "content": "note", "category": "General"})
    assert caught.value.code == "unknown_field" and route.call_count == 0

    note = {"date": "2025-03-15", "patient_id": "pat-1", "type": "General", "text": "note", "provider_id": "DOC1", "practice_id": "1"}
    result = await client.submit(KEY, "add_medical_note", note)

    assert result.ok and sent(route) == note


# --- writeback status (4.1 poll, 4.2 checkWritebackStatus) ----------------------------------------------


def status_body(**item: str) -> list:
    return [envelope([{"id": "wb-1", "office_id": "D1", "is_completed": "False", "has_error": "False", **item}], limit=500)]


async def test_completed_writeback_gives_the_created_id_not_the_writeback_id(client, sikka):
    # ⚠ the peer returned the writeback id as the new patient's id (bug 9)
    route = sikka.get("/writeback_status").mock(
        return_value=httpx.Response(200, json=status_body(is_completed="True", has_error="False", created_id="8812", completed_time="2025-03-15 10:00:05"))
    )

    result = await client.writeback_status(KEY, "wb-1")

    assert result.value.is_completed and not result.value.has_error
    assert result.value.created_id == "8812" != result.value.id
    request = route.calls.last.request
    # ⚠ the peer's poller sent the app key as Request-Key (bug 3)
    assert request.headers["Request-Key"] == REQUEST_KEY and "App-Key" not in request.headers
    assert request.url.params["id"] == "wb-1"


@pytest.mark.parametrize(("completed", "error"), [("true", "TRUE"), ("TRUE", "true"), (" True ", "True")])
async def test_failed_writeback_booleans_any_case(client, sikka, completed, error):
    sikka.get("/writeback_status").mock(
        return_value=httpx.Response(200, json=status_body(is_completed=completed, has_error=error, result="Duplicate patient"))
    )

    result = await client.writeback_status(KEY, "wb-1")

    assert result.value.has_error and result.value.is_completed and result.value.result == "Duplicate patient"


async def test_pending_writeback(client, sikka):
    sikka.get("/writeback_status").mock(return_value=httpx.Response(200, json=status_body()))

    result = await client.writeback_status(KEY, "wb-1")

    assert result.value == WritebackStatus(id="wb-1", is_completed=False, has_error=False)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(200, json=[envelope([])]), Ok(None)),
        (httpx.Response(200, json=[]), Ok(None)),
        (httpx.Response(200, json={}), ServerError(200, message="unparseable body")),  # ⚠ the peer read {} as "not found"
        (httpx.Response(401, json={"error_code": "API2007"}), Unauthorized("API2007")),  # ⚠ the peer called this success (bug 8)
        (httpx.Response(403, json={}), Rejected(403)),  # ⚠ likewise
    ],
)
async def test_status_poll_edge_answers(client, sikka, response, expected):
    sikka.get("/writeback_status").mock(return_value=response)

    assert (await client.writeback_status(KEY, "wb-1")).outcome == expected


async def test_status_poll_network_error(client, sikka):
    sikka.get("/writeback_status").mock(side_effect=httpx.ReadError)

    assert (await client.writeback_status(KEY, "wb-1")).outcome == TransportFailure("reset", "ReadError")


# --- tokens (4.1 token management, 4.3 sikka-token.service) ---------------------------------------------


async def test_first_connection_is_three_separate_calls(client, sikka):
    sikka.get("/authorized_practices").mock(
        return_value=httpx.Response(200, json=envelope([{"office_id": "office-1", "secret_key": "secret-1"}]))
    )
    grant_route = sikka.post("/request_key").mock(return_value=grant())
    sikka.get("/appointments").mock(return_value=httpx.Response(200, json=envelope([])))

    [practice] = (await client.authorized_practices()).value
    token = (await client.issue_request_key(practice.office_id, practice.secret_key)).value
    await client.appointments(token.request_key, date(2025, 3, 1), date(2025, 3, 2))

    assert [c.request.url.path for c in sikka.calls] == ["/v4/authorized_practices", "/v4/request_key", "/v4/appointments"]
    assert sent(grant_route) == {"grant_type": "request_key", "office_id": "office-1", "secret_key": "secret-1", "app_id": APP_ID, "app_key": APP_KEY}
    assert sikka.calls.last.request.headers["Request-Key"] == "new-request-key"


async def test_refresh_body_and_newest_refresh_key(client, sikka):
    route = sikka.post("/request_key").mock(side_effect=[grant(refresh_key="rotated"), grant(refresh_key=None)])

    rotated = await client.refresh_request_key(Secret("old-refresh"))
    kept = await client.refresh_request_key(Secret("rotated"))

    assert sent(route) == {"grant_type": "refresh_key", "refresh_key": "rotated", "app_id": APP_ID, "app_key": APP_KEY}
    assert rotated.value.refresh_key == Secret("rotated")
    assert kept.value.refresh_key == Secret("rotated")  # none came back: the one sent is still the newest


@pytest.mark.parametrize(
    "refusal",
    [
        httpx.Response(401, json={"error_code": "API2003", "long_message": "ID or key is incorrect."}),
        httpx.Response(400, json={"error_code": "API1004", "long_message": "Refresh key is invalid"}),
        httpx.Response(400, json={"error_code": "API1026", "long_message": "One of the parameter is missing or invalid."}),
    ],
)
async def test_rejected_refresh_then_a_request_key_grant(client, sikka, refusal):
    route = sikka.post("/request_key").mock(side_effect=[refusal, grant()])

    refreshed = await client.refresh_request_key(Secret("stale-refresh"))
    assert not refreshed.ok
    issued = await client.issue_request_key("office-1", Secret("secret-1"))

    assert issued.value.request_key == Secret("new-request-key")
    assert issued.value.refresh_key == Secret("new-refresh-key")
    bodies = [json.loads(c.request.content) for c in route.calls]
    assert [b["grant_type"] for b in bodies] == ["refresh_key", "request_key"]
    assert (bodies[1]["office_id"], bodies[1]["secret_key"]) == ("office-1", "secret-1")


@pytest.mark.parametrize(("expires_in", "seconds"), [("86400 second(s)", 86400), ("43200", 43200)])
async def test_expiry_from_expires_in(client, sikka, expires_in, seconds):
    sikka.post("/request_key").mock(return_value=grant(expires_in=expires_in))

    before = datetime.now(UTC)
    result = await client.refresh_request_key(Secret("r"))

    assert abs(result.value.expires_at - (before + timedelta(seconds=seconds))) < timedelta(seconds=5)


@pytest.mark.parametrize("body", [
    {"request_key": "k", "expires_in": "99999999999999999 second(s)"},
    {"request_key": "k", "end_time": "9999-12-31T23:59:59-05:00"},
])
async def test_an_absurd_expiry_is_a_server_error_not_a_crash(client, sikka, body):
    """Regression: the expiry overflowed ``datetime`` (OverflowError) and crashed the actor holding
    the grant, its keys in the traceback's frames."""
    sikka.post("/request_key").mock(return_value=httpx.Response(200, json=body))

    assert (await client.refresh_request_key(Secret("r"))).outcome == ServerError(200, message="unparseable body")


@pytest.mark.parametrize("body", [{"refresh_key": "r", "expires_in": "86400 second(s)"}, {"request_key": "k"}])
async def test_grant_without_key_or_expiry_is_a_server_error(client, sikka, body):
    # 4.3: a response missing request_key is an error (here: a value, not an exception)
    sikka.post("/request_key").mock(return_value=httpx.Response(200, json=body))

    assert (await client.refresh_request_key(Secret("r"))).outcome == ServerError(200, message="unparseable body")


async def test_invalid_key_on_a_read_is_a_value_for_the_actor_to_refresh_on(client, sikka):
    # 5.3 #18: the peer never refreshed after a refused key; here the refusal is explicit
    sikka.get("/appointments").mock(return_value=httpx.Response(400, json={"error_code": "API1004", "long_message": "Requestkey is missing/invalid"}))

    result = await client.appointments(KEY, date(2025, 3, 1), date(2025, 3, 2))

    assert result.outcome == InvalidKey("API1004", "Requestkey is missing/invalid")

