"""The client against Sikka's own saved example responses (Postman collections, sikka-api.md §9),
inconsistencies included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest

from actors.core.outcomes import (
    AuthorizedPractice,
    InvalidKey,
    KeyInfo,
    Ok,
    RateHeaders,
    SpuOffline,
    TokenGrant,
    Unknown,
    WritebackAck,
    WritebackListItem,
    WritebackStatus,
)
from actors.core.listread import ListMemory, RoundReader
from actors.core.ratelimit import Budget
from actors.core.sikka_parse import parse_ack, rate_headers
from actors.runtime.calls import read_list_round
from actors.runtime.sikka import SikkaClient
from actors.core.secret import Secret
from tests.support.sikka import (
    APP_ID,
    APP_KEY,
    APP_SECRET,
    BASE,
    KEY,
    NODE,
    REQUEST_KEY,
    WB,
    as_httpx,
    body_json,
    doc_json,
    requests,
    status_of,
    v4,
    wb,
)

# (example name, path, the client call that covers it)
LIST_READS = [
    ("appointments", "/appointments", lambda c: c.appointments(KEY, date(2020, 9, 29), date(2020, 9, 30))),
    (
        "appointments_available_slots",
        "/appointments_available_slots",
        lambda c: c.available_slots(KEY, date(2020, 9, 29), date(2020, 9, 30)),
    ),
    ("patients", "/patients", lambda c: c.search_patients(KEY, "Smith")),
    ("providers", "/providers", lambda c: c.providers(KEY)),
    ("practices", "/practices", lambda c: c.practices(KEY)),
    ("operatories", "/operatories", lambda c: c.operatories(KEY, "1", is_hidden="F")),
    ("appointment_statuses", "/appointment_statuses", lambda c: c.appointment_statuses(KEY)),
    ("practice_variables", "/practice_variables", lambda c: c.practice_variables(KEY)),
    ("practice_schedule", "/practice_schedule", lambda c: c.practice_schedule(KEY)),
    ("data_sync_status", "/data_sync_status", lambda c: c.data_sync_status()),
]


@pytest.mark.parametrize("index", [0, 1], ids=["default", "get_all"])
@pytest.mark.parametrize(("name", "path", "call"), LIST_READS, ids=[r[0] for r in LIST_READS])
async def test_list_examples_parse_to_their_items(client, sikka, name, path, call, index):
    example = v4(name, index)
    route = sikka.get(path).mock(return_value=as_httpx(example))

    result = await call(client)

    assert result.outcome == Ok(body_json(example)["items"])
    assert route.call_count == 1  # a short page (or a placeholder total) ends the read


async def test_one_patient_and_one_appointment_come_from_the_examples(client, sikka):
    sikka.get("/patients").mock(return_value=as_httpx(v4("patients")))
    sikka.get("/appointments").mock(return_value=as_httpx(v4("appointments")))

    patient = await client.patient(KEY, "5383")
    appointment = await client.appointment(KEY, "70670")

    assert patient.value == body_json(v4("patients"))["items"][0]
    assert appointment.value["appointment_sr_no"] == "70670"
    assert appointment.value["date"] == "2020-09-29T00:00:00" and appointment.value["time"] == "10:30"


@pytest.mark.parametrize("index", [0, 1])
async def test_authorized_practices_placeholder_examples_parse(client, sikka, index):
    sikka.get("/authorized_practices").mock(return_value=as_httpx(v4("authorized_practices", index)))

    result = await client.authorized_practices()

    [practice] = result.value
    assert isinstance(practice, AuthorizedPractice)
    assert (practice.office_id, practice.secret_key) == ("office id", Secret("secret key"))
    assert practice.time_zone == "practice management system refresh date time zone"
    assert practice.data_insert_date == "data insert date"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("practices", RateHeaders(limit=20, remaining=60, reset_s=None)),  # remaining > limit, no reset
        ("operatories", RateHeaders(limit=250, remaining=249, reset_s=60)),
        ("optometry_product_details", RateHeaders(limit=120, remaining=118, reset_s=49)),
        ("pet_nutrition", RateHeaders(limit=250, remaining=249, reset_s=60)),  # lowercase names
        ("patient_contracts_details", RateHeaders(limit=250, remaining=248, reset_s=32)),
        ("appointments", RateHeaders()),  # no headers saved
    ],
)
def test_rate_headers_of_the_examples(name, expected):
    assert rate_headers(as_httpx(v4(name)).headers) == expected


@pytest.mark.parametrize(
    ("name", "expires"),
    [
        ("practices", datetime(2020, 9, 25, 22, 3, 22, tzinfo=UTC)),
        ("pet_nutrition", datetime(2026, 1, 30, 4, 42, 19, tzinfo=UTC)),  # request-key-expires
    ],
)
async def test_result_carries_rate_and_key_expiry_headers_as_sent(client, sikka, name, expires):
    example = v4(name)
    sikka.get("/practices").mock(return_value=as_httpx(example))

    result = await client.practices(KEY)

    assert result.ok
    assert result.rate == rate_headers(as_httpx(example).headers)
    assert result.key_expires_at == expires


async def test_request_key_info_example(client, sikka):
    route = sikka.get("/request_key_info").mock(return_value=as_httpx(v4("request_key_info")))

    result = await client.request_key_info(KEY)

    # placeholders in the body; the expiry comes from the Request-Key-Expires header
    assert result.value == KeyInfo(
        issued_to="issued to", status="status", expires_at=datetime(2022, 5, 11, 9, 12, 24, tzinfo=UTC)
    )
    assert route.calls.last.request.headers["Request-Key"] == REQUEST_KEY


# --- writebacks -----------------------------------------------------------------------------------

PAYLOADS = {
    "book_appointment": {
        "patient_id": "4100",
        "date": "2020-03-27",
        "description": "appointment description",
        "time": "13:30",
        "provider_id": "DT04",
        "length": "20",
        "operatory": "OP03",
        "practice_id": "1",
        "type": "TestType",
        "user": "304234244",
        "status": "123",
    },
    "reschedule_appointment": {"appointment_sr_no": "70670", "practice_id": "1", "date": "2025-10-31", "time": "10:40"},
    "update_appointment_status": {"appointment_sr_no": "70670", "practice_id": "1", "value": "confirmed"},
    "create_patient": {"firstname": "Test", "lastname": "Last", "practice_id": "1-1", "birthdate": "1999-12-20", "provider_id": "DOC"},
    "update_patient": {"patient_id": "5383", "practice_id": "1", "preferred_name": "Al"},
    "add_medical_note": {
        "date": "2025-03-15",
        "patient_id": "5383",
        "type": "General",
        "text": "Called to confirm",
        "provider_id": "DMD2",
        "practice_id": "1",
    },
}

# operation → (WB request name, method, route method, path, Sikka's id, its code)
ACKS = [
    ("book_appointment", "appointment", "POST", "/appointment", "275495", "API2016"),
    ("reschedule_appointment", "appointment", "PUT", "/appointments/70670", "159357", "API0007"),
    ("update_appointment_status", "appointment", "PATCH", "/appointments/70670", "252550", "API0007"),
    ("create_patient", "patient", "POST", "/patient", "275495", "API2016"),
    ("update_patient", "patient", "PATCH", "/patient/5383", "951357", "API0011"),
    ("add_medical_note", "medical_note", "POST", "/medical_notes", "275495", "API2016"),
]


@pytest.mark.parametrize(("operation", "name", "method", "path", "sikka_id", "code"), ACKS, ids=[a[0] for a in ACKS])
async def test_each_operation_parses_its_example_acknowledgement(client, sikka, operation, name, method, path, sikka_id, code):
    example = wb(name, method)
    route = sikka.route(method=method, path=path).mock(return_value=as_httpx(example))

    result = await client.submit(KEY, operation, PAYLOADS[operation])

    assert result.outcome == Ok(WritebackAck(sikka_writeback_id=sikka_id, code=code))
    assert result.status in (200, 201)
    assert route.calls.last.request.headers["Request-Key"] == REQUEST_KEY


def _acks() -> list[tuple[str, dict]]:
    return [
        (f"{item['request']['method']} {item['name']} / {response['name']}", response)
        for item in requests(WB)
        if item["request"]["method"] != "GET"
        for response in item.get("response") or []
        if 200 <= status_of(response) < 300 and "Id:" in response["body"]
    ]


@pytest.mark.parametrize(("label", "response"), _acks(), ids=[a[0] for a in _acks()])
def test_every_acknowledgement_in_the_writeback_collection(label, response):
    body = body_json(response)
    if "{" in body["long_message"]:  # claims: "Id:{reference id of this writeback request}"
        with pytest.raises(ValueError):
            parse_ack(response["body"].encode())
        return
    ack = parse_ack(response["body"].encode())
    assert ack.sikka_writeback_id == body["long_message"].removeprefix("Id:")
    assert ack.sikka_writeback_id in body["more_information"]
    assert ack.code == body["error_code"]


async def test_placeholder_acknowledgement_is_unknown_not_a_made_up_id(client, sikka):
    sikka.patch("/appointments/70670").mock(return_value=as_httpx(wb("claims", "PATCH")))

    result = await client.submit(KEY, "update_appointment_status", PAYLOADS["update_appointment_status"])

    assert result.outcome == Unknown(reason="unparseable", status=200)


@pytest.mark.parametrize(("name", "index"), [("appointment", 1), ("transaction", 1), ("perio_chart", 4)])
async def test_failed_examples_are_invalid_key(client, sikka, name, index):
    sikka.post("/appointment").mock(return_value=as_httpx(wb(name, "POST", index)))

    result = await client.submit(KEY, "book_appointment", PAYLOADS["book_appointment"])

    assert result.status == 400
    assert result.outcome == InvalidKey(code="API1004", message="Requestkey is missing/invalid")


async def test_spu_offline_body_uses_log_message(client, sikka):
    body = doc_json('"log_message"')
    sikka.post("/patient").mock(return_value=httpx.Response(412, json=body))

    result = await client.submit(KEY, "create_patient", PAYLOADS["create_patient"])

    assert result.outcome == SpuOffline(code="API2017", message="Sikka platform utility is offline")


async def test_writeback_status_example_is_a_top_level_array(client, sikka):
    route = sikka.get("/writeback_status").mock(return_value=as_httpx(wb("writeback_status", "GET")))

    result = await client.writeback_status(KEY, "490481")

    assert result.value == WritebackStatus(
        id="490481",
        is_completed=True,
        has_error=False,
        result="New Patient inserted successfully",
        status="Success",
        created_id="<if a new ID is successfully created, it will be returned in this response field.>",
        completed_time="2020-12-04 13:54:16",
        request_time="2020-12-04 13:51:34",
    )
    assert route.calls.last.request.url.params["id"] == "490481"


async def test_writebacks_example_total_10_with_one_item_is_one_page(http, sikka):
    """The Postman example says ``total_count`` 10 with one item at limit 50: a short page, so the
    round ends there (a reader trusting ``total_count`` would ask for more)."""
    client = SikkaClient(http, BASE, APP_ID, APP_SECRET, NODE)
    route = sikka.get("/writebacks").mock(return_value=as_httpx(wb("writebacks", "GET")))
    reader = RoundReader(((date(2023, 3, 27), date(2023, 3, 28)),), ListMemory(), wanted=frozenset(),
                         known=frozenset(), offices=frozenset({"D1111"}), complete=True, limit=50)
    deps = SimpleNamespace(client=client, app_budget=Budget(200), clock=lambda: datetime.now(UTC))

    await read_list_round(deps, reader)

    assert route.call_count == 1 and reader.complete and reader.pages == 1
    assert reader.items == [
        WritebackListItem(
            id="12223567",
            office_id="D1111",
            method="PATCH",
            api_name="appointment",
            result="pending",
            command_time="2023-03-27T12:09:59",
            completed_time="",
            request_body={
                "op": "replace",
                "path": "/appointment_status",
                "value": "Ready to go back",
                "practice_id": "1-1",
                "apiname": "PATCH appointments",
                "id": "374",
            },  # the masked request_key is dropped
            description="",
        )
    ]


async def test_delete_writeback_example(client, sikka):
    route = sikka.delete("/writebacks").mock(return_value=as_httpx(wb("writebacks", "DELETE")))

    result = await client.delete_writeback("12223567")

    assert (result.outcome, result.status) == (Ok(None), 200)
    assert route.calls.last.request.url.params["id"] == "12223567"
    assert route.calls.last.request.headers["App-Key"] == APP_KEY


# --- tokens (samples quoted in the docs' text) ------------------------------------------------------


async def test_request_key_answer_from_the_docs(client, sikka):
    sample = doc_json("85603 second(s)")
    route = sikka.post("/request_key").mock(return_value=httpx.Response(200, json=sample))

    result = await client.issue_request_key("D20006", Secret("secret-1"))

    # end_time (no zone: UTC) wins over expires_in, which is 797 s short of 24 h
    assert result.value == TokenGrant(
        request_key=Secret(sample["request_key"]), refresh_key=Secret(sample["refresh_key"]),
        expires_at=datetime(2020, 9, 24, 4, 0, 28, tzinfo=UTC),
    )
    assert route.calls.last.request.headers["Content-Type"] == "application/json"


async def test_request_key_expiry_prefers_the_header_then_expires_in(client, sikka):
    sample = doc_json("85603 second(s)")
    header = {"request-key-expires": "Thu, 24 Sep 2020 04:00:00 GMT"}
    without_end = {k: v for k, v in sample.items() if k != "end_time"}
    sikka.post("/request_key").mock(
        side_effect=[httpx.Response(200, json=sample, headers=header), httpx.Response(200, json=without_end)]
    )

    from_header = await client.issue_request_key("D20006", Secret("secret-1"))
    before = datetime.now(UTC)
    from_expires_in = await client.issue_request_key("D20006", Secret("secret-1"))

    assert from_header.value.expires_at == datetime(2020, 9, 24, 4, 0, tzinfo=UTC)
    delta = from_expires_in.value.expires_at - before
    assert timedelta(seconds=85602) <= delta <= timedelta(seconds=85605)


@pytest.mark.parametrize(("call", "method", "path"), [("revoke_request_key", "DELETE", "/request_key"), ("revoke_refresh_key", "DELETE", "/refresh_key")])
async def test_revocations_accept_the_session_terminated_ack(client, sikka, call, method, path):
    route = sikka.route(method=method, path=path).mock(return_value=httpx.Response(200, json=doc_json("API0002")))

    result = await getattr(client, call)(Secret("the-key"))

    assert result.outcome == Ok(None)
    headers = route.calls.last.request.headers
    if path == "/refresh_key":
        assert (headers["Refresh-Key"], headers["App-Id"], headers["App-Key"]) == ("the-key", APP_ID, APP_KEY)
    else:
        assert headers["Request-Key"] == "the-key" and "App-Key" not in headers
