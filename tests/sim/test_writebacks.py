"""Writebacks: acknowledgement, validation, lazy completion, status, listing, delete, SPU, refresh lag."""

from __future__ import annotations

import re
import urllib.parse

import httpx
import pytest
import trio

from sim import SimConfig, Simulator
from sim.http import send_webhooks
from tests.support.sim import APP, T0, writeback_id

VALID = {
    ("POST", "/appointment"): {"patient_id": "10001", "date": "2026-02-03", "time": "10:00", "length": "30",
                               "provider_id": "DDS1", "operatory": "OP1", "practice_id": "1"},
    ("PUT", "/appointments/50001"): {"practice_id": "1", "date": "2026-02-04"},
    ("PATCH", "/appointments/50001"): {"op": "replace", "path": "/appointment_status", "value": "Confirmed",
                                       "practice_id": "1"},
    ("POST", "/patient"): {"firstname": "Ann", "lastname": "Lee", "provider_id": "DDS1", "practice_id": "1"},
    ("PATCH", "/patient/10002"): {"practice_id": "1", "cell": "860-555-0101"},
    ("POST", "/medical_notes"): {"date": "2026-01-01", "patient_id": "10001", "type": "General", "text": "Hi",
                                 "provider_id": "DDS1", "practice_id": "1"},
}
ACKS = {"POST": (201, "API2016"), "PUT": (200, "API0007"), "PATCH": (200, "API0007")}


async def _send(a, key, method, path, body):
    return await a.client.request(method, path, json=body, headers=key)


async def test_acknowledgements(api, autojump_clock):
    a = api()
    key = await a.key()
    ids = []
    for (method, path), body in VALID.items():
        r = await _send(a, key, method, path, body)
        status, code = (200, "API0011") if path.startswith("/patient/") else ACKS[method]
        ack = r.json()
        assert (r.status_code, ack["error_code"], ack["http_code"]) == (status, code, str(status))
        wid = writeback_id(r)
        assert ack["more_information"] == f"http://sim.test/v4/writeback_status?id={wid}"
        ids.append(int(wid))
    assert ids == list(range(ids[0], ids[0] + 6))
    assert api(seed=2).sim._writebacks.next_id != a.sim._writebacks.next_id - 6  # the base is drawn from the seed
    assert (await a.stats())["writebacks_submitted"] == 6


CASES = [(m, p, f) for (m, p), body in VALID.items() for f in body if not (m == "PUT" and f == "date")]


@pytest.mark.parametrize("method,path,field", CASES)
async def test_missing_required_field_is_a_synchronous_400(api, autojump_clock, method, path, field):
    a = api()
    key = await a.key()
    body = {k: v for k, v in VALID[(method, path)].items() if k != field}
    if path.startswith("/patient/"):
        body = {"practice_id": "1"} if field == "cell" else {"cell": "1"}
    r = await _send(a, key, method, path, body)
    assert r.status_code == 400 and r.json()["error_code"] == "API1026"
    named = "firstname" if path.startswith("/patient/") and field == "cell" else field  # "one field to update"
    assert f"'{named}'" in r.json()["long_message"]
    assert (await a.stats())["writebacks_submitted"] == 0


@pytest.mark.parametrize("field,value", [("date", "03/02/2026"), ("date", "2026-02-30"), ("time", "9:00"),
                                         ("time", "24:00"), ("length", "abc"), ("length", 30), ("patient_id", 10001)])
async def test_malformed_field_is_a_synchronous_400(api, autojump_clock, field, value):
    a = api()
    r = await a.book(await a.key(), **{field: value})
    assert r.status_code == 400 and r.json()["error_code"] == "API1026" and field in r.json()["long_message"]


async def test_bad_path_id_and_body(api, autojump_clock):
    a = api()
    key = await a.key()
    r = await a.client.put("/appointments/5%3A1", json=VALID[("PUT", "/appointments/50001")], headers=key)
    assert r.status_code == 400 and "appointment_sr_no" in r.json()["long_message"]
    r = await a.client.post("/appointment", content=b"[1]", headers=key)
    assert r.status_code == 400 and r.json()["error_code"] == "API1026"
    r = await a.client.post("/appointment", json=VALID[("POST", "/appointment")])
    assert r.status_code == 400 and r.json()["error_code"] == "API1004"


async def _status(a, key, wid):
    r = await a.get("/writeback_status", headers=key, id=wid)
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body, list) and len(body) == 1 and body[0]["total_count"] == "1"
    return body[0]["items"][0]


async def test_completion_after_the_delay(api, autojump_clock):
    a = api(writeback_delay=(10, 10))
    key = await a.key()
    wid = writeback_id(await a.book(key, description="New visit"))
    item = await _status(a, key, wid)
    assert (item["is_completed"], item["has_error"], item["status"], item["created_id"]) == ("False", "False", "Pending", "")
    assert item["request_time"] == "2026-01-01 00:00:00" and item["completed_time"] == ""
    await trio.sleep(9.9)
    assert (await _status(a, key, wid))["is_completed"] == "False"
    await trio.sleep(0.1)
    item = await _status(a, key, wid)
    assert (item["is_completed"], item["has_error"], item["status"]) == ("True", "False", "Success")
    assert item["completed_time"] == "2026-01-01 00:00:10" and item["created_id"] == "50100"
    rows = {r["appointment_sr_no"]: r for r in (await a.control("GET", "practices/D1000/appointments"))["items"]}
    row = rows["50100"]
    assert row == {"appointment_sr_no": "50100", "patient_id": "10001", "provider_id": "DDS1", "operatory": "OP1",
                   "date": "2026-02-03", "time": "10:00", "length": "30", "status": "Scheduled",
                   "description": "New visit", "created_at": "2026-01-01T00:00:10.000Z", "source": "writeback",
                   "writeback_id": wid}
    assert rows["50000"]["source"] == "seed" and rows["50000"]["writeback_id"] is None
    r = await a.get("/appointments", headers=key, appointment_sr_no="50100")
    assert [i["appointment_sr_no"] for i in r.json()["items"]] == ["50100"]
    r = await a.get("/appointments/50100", headers=key, fields="operatory")
    assert r.json()["items"][0]["operatory"] == "OP1"
    assert (await a.stats())["writebacks_completed"] == 1


async def test_updates_apply_in_place(api, autojump_clock):
    a = api(writeback_delay=(1, 1))
    key = await a.key()
    await _send(a, key, "PUT", "/appointments/50003", {"practice_id": "1", "time": "15:30", "operatory": "OP2"})
    await _send(a, key, "PATCH", "/appointments/50003", VALID[("PATCH", "/appointments/50001")])
    await _send(a, key, "PATCH", "/patient/10002", {"practice_id": "1", "firstname": "Zed"})
    await trio.sleep(2)
    rows = [r for r in (await a.control("GET", "practices/D1000/appointments"))["items"] if r["appointment_sr_no"] == "50003"]
    assert len(rows) == 1 and (rows[0]["time"], rows[0]["operatory"], rows[0]["status"]) == ("15:30", "OP2", "Confirmed")
    patients = {p["patient_id"]: p for p in (await a.control("GET", "practices/D1000/patients"))["items"]}
    assert patients["10002"]["firstname"] == "Zed" and patients["10002"]["source"] == "seed"


async def test_failures(api, autojump_clock):
    a = api(writeback_delay=(5, 5), writeback_failure_rate=1.0)
    key = await a.key()
    wid = writeback_id(await a.book(key))
    await trio.sleep(5)
    item = await _status(a, key, wid)
    assert (item["is_completed"], item["has_error"], item["status"], item["created_id"]) == ("True", "True", "Failed", "")
    b = api(writeback_delay=(5, 5))
    key_b = await b.key()
    wid_b = writeback_id(await _send(b, key_b, "PATCH", "/appointments/99999", VALID[("PATCH", "/appointments/50001")]))
    await trio.sleep(5)
    assert "99999" in (await _status(b, key_b, wid_b))["result"]
    assert (await a.stats())["writebacks_failed"] == 1 and (await b.stats())["writebacks_failed"] == 1


async def test_writeback_status_errors(api, autojump_clock):
    a = api()
    k0, k1 = await a.key("D1000"), await a.key("D1001")
    wid = writeback_id(await a.book(k0))
    assert (await a.get("/writeback_status", headers=k1, id=wid)).status_code == 404
    assert (await a.get("/writeback_status", headers=k0, id="1")).json()["error_code"] == "API2009"
    assert (await a.get("/writeback_status", headers=k0)).json()["error_code"] == "API1026"


async def test_list_writebacks(api, autojump_clock):
    a = api(writeback_delay=(10, 10), practices=2)
    key, key1 = await a.key(), await a.key("D1001")
    ok = writeback_id(await a.book(key))
    bad = writeback_id(await _send(a, key, "PATCH", "/appointments/4", VALID[("PATCH", "/appointments/50001")]))
    gone = writeback_id(await a.book(key1))
    await a.client.delete("/writebacks", headers=APP, params={"id": gone})
    await trio.sleep(10)
    pending = writeback_id(await _send(a, key, "PATCH", "/patient/10003", {"practice_id": "1", "lastname": "O'Neil & Co"}))
    r = await a.get("/writebacks", headers=APP, startdate="2025-12-30", enddate="2026-01-01")
    items = {i["id"]: i for i in r.json()["items"]}
    assert {i: items[i]["result"] for i in items} == {ok: "completed", bad: "failed", gone: "deleted", pending: "pending"}
    assert items[ok]["api_name"] == "appointment" and items[bad]["api_name"] == "appointments"
    assert items[pending]["api_name"] == "patient" and items[gone]["office_id"] == "D1001"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", items[ok]["command_time"])
    assert items[ok]["completed_time"] == "2026-01-01T00:00:10" and items[ok]["duration_in_second"] == "10"
    body = urllib.parse.parse_qsl(items[bad]["api_request_body"])
    assert body[0][0] == "request_key" and "*" in body[0][1] and key["Request-Key"] not in items[bad]["api_request_body"]
    assert dict(body[1:]) == {**VALID[("PATCH", "/appointments/50001")], "id": "4"}
    assert dict(urllib.parse.parse_qsl(items[pending]["api_request_body"]))["lastname"] == "O'Neil & Co"
    r = await a.get("/writebacks", headers=APP, startdate="2026-01-01", enddate="2026-01-01", id=ok)
    assert [i["id"] for i in r.json()["items"]] == [ok]
    assert (await a.get("/writebacks", headers=APP, startdate="2026-01-02", enddate="2026-01-08")).json()["items"] == []
    r = await a.get("/writebacks", headers=APP, startdate="2026-01-01", enddate="2026-01-09")
    assert r.status_code == 400 and r.json()["error_code"] == "API1026"
    assert (await a.get("/writebacks", headers=APP, enddate="2026-01-01")).status_code == 400
    assert (await a.get("/writebacks", startdate="2026-01-01", enddate="2026-01-01")).status_code == 400


async def test_delete_pending_only(api, autojump_clock):
    a = api(writeback_delay=(10, 10))
    key = await a.key()
    first, second = writeback_id(await a.book(key)), writeback_id(await a.book(key))
    r = await a.client.delete("/writebacks", headers=APP, params={"id": first})
    assert r.status_code == 200 and r.json()["error_code"] == "API4006"
    assert r.json()["long_message"] == "Writeback request deleted successfully."
    again = await a.client.delete("/writebacks", headers=APP, params={"id": first})
    assert 400 <= again.status_code < 500 and set(again.json()) == set(r.json())
    await trio.sleep(10)
    assert 400 <= (await a.client.delete("/writebacks", headers=APP, params={"id": second})).status_code < 500
    assert (await a.client.delete("/writebacks", headers=APP, params={"id": "1"})).status_code == 404
    item = await _status(a, key, first)
    assert item["status"] == "Deleted" and item["created_id"] == ""
    rows = [r for r in (await a.control("GET", "practices/D1000/appointments"))["items"] if r["source"] == "writeback"]
    assert len(rows) == 1
    s = await a.stats()
    assert (s["writebacks_deleted"], s["writebacks_completed"]) == (1, 1)


async def test_check_spu_and_offline_practices(api, autojump_clock):
    a = api(writeback_delay=(5, 5))
    key = await a.key()
    await a.control("POST", "faults", {"spu_offline": ["D1000"]})
    r = await a.book(key, check_spu="true")
    assert r.status_code == 412 and r.json()["error_code"] == "API2017"
    wid = writeback_id(await a.book(key, check_spu="false"))
    await trio.sleep(60)
    assert (await _status(a, key, wid))["is_completed"] == "False"  # pending while offline
    assert (await a.get("/patients", headers=key)).status_code == 200  # reads come from the cloud copy
    await a.control("POST", "faults", {"spu_offline": []})
    item = await _status(a, key, wid)
    assert (item["status"], item["completed_time"]) == ("Success", "2026-01-01 00:01:00")
    assert (await a.book(key, check_spu="true")).status_code == 201


async def test_refresh_lag(api, autojump_clock):
    a = api(writeback_delay=(5, 5), refresh_lag=30)
    key = await a.key()
    await a.book(key)
    await _send(a, key, "POST", "/patient", {**VALID[("POST", "/patient")], "cell": "(415) 555-0199"})
    await trio.sleep(5)
    truth = (await a.control("GET", "practices/D1000/appointments"))["items"]
    assert any(r["appointment_sr_no"] == "50100" for r in truth)
    assert (await a.get("/appointments", headers=key, appointment_sr_no="50100")).json()["items"] == []
    assert (await a.get("/patients", headers=key, cell="4155550199")).json()["items"] == []
    await trio.sleep(30)
    assert len((await a.get("/appointments", headers=key, appointment_sr_no="50100")).json()["items"]) == 1
    found = (await a.get("/patients", headers=key, cell="415-555-0199")).json()["items"]
    assert [p["patient_id"] for p in found] == ["10050"]
    assert [p["patient_id"] for p in (await a.get("/patients", headers=key, search="5550199")).json()["items"]] == ["10050"]


async def test_no_refresh_lag_means_at_once(api, autojump_clock):
    a = api(writeback_delay=(5, 5))
    key = await a.key()
    await a.book(key)
    await trio.sleep(5)
    assert len((await a.get("/appointments", headers=key, appointment_sr_no="50100")).json()["items"]) == 1


async def test_drop_after_accept_in_transport(api, autojump_clock):
    a = api()
    key = await a.key()
    await a.control("POST", "faults", {"drop_after_accept_rate": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        await a.book(key)
    await a.control("POST", "faults", {})
    items = (await a.get("/writebacks", headers=APP, startdate="2026-01-01", enddate="2026-01-01")).json()["items"]
    assert len(items) == 1 and items[0]["result"] == "pending"  # created although no answer came
    timeline = (await a.control("GET", "practices/D1000/requests"))["items"]
    assert timeline[-1]["path"] == "/v4/appointment" and timeline[-1]["status"] == 0


async def test_webhook_on_completion(api, autojump_clock):
    a = api(writeback_delay=(5, 5), refresh_lag=3, webhook_url="http://hooks.test/sikka", callback_key="K1")
    got = []

    def receive(request: httpx.Request) -> httpx.Response:
        got.append((trio.current_time(), request))
        return httpx.Response(200)

    key = await a.key()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_webhooks, a.sim, httpx.AsyncClient(transport=httpx.MockTransport(receive)))
        await a.book(key)
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert len(got) == 1
    at, request = got[0]
    assert 8 <= at <= 8.3 and request.headers["callback-key"] == "K1" and request.url == "http://hooks.test/sikka"
    payload = request.read()
    assert b'"event":"appointments"' in payload and b'"office_id":"D1000"' in payload


async def test_same_seed_same_data_and_outcomes(autojump_clock):
    async def run(seed):
        sim = Simulator(SimConfig(seed=seed, writeback_failure_rate=0.5), clock=lambda: T0 + trio.current_time())
        client = httpx.AsyncClient(transport=sim.transport(), base_url="http://sim.test/v4")
        grant = await client.post("/request_key", json={
            "grant_type": "request_key", "office_id": "D1001", "secret_key": sim.practice("D1001").info.secret_key,
            "app_id": "sim-app-id", "app_key": "sim-app-key"})
        key = {"Request-Key": grant.json()["request_key"]}
        for i in range(12):
            await client.post("/appointment", json={**VALID[("POST", "/appointment")], "time": f"1{i % 6}:00"}, headers=key)
        await trio.sleep(41)
        truth = [sim.handle("GET", f"/_sim/practices/{o}/{t}", {}).body for o in ("D1000", "D1002") for t in ("appointments", "patients")]
        listing = (await client.get("/writebacks", params={"startdate": "2026-01-01", "enddate": "2026-01-02"},
                                    headers=APP)).json()["items"]
        return grant.json()["request_key"], truth, [(i["id"], i["result"], i["completed_time"]) for i in listing]

    start = trio.current_time()
    first = await run(7)
    await trio.sleep(start + 1000 - trio.current_time())
    second = await run(7)
    assert first[0] == second[0] and first[1] == second[1]
    assert [x[:2] for x in first[2]] == [x[:2] for x in second[2]]
    assert {x[1] for x in first[2]} == {"completed", "failed"}
    assert first[1] != (await run(8))[1]


async def test_seeded_data(api, autojump_clock):
    a = api(patients_per_practice=20, appointments_per_practice=300)
    key = await a.key()
    appts = (await a.control("GET", "practices/D1000/appointments"))["items"]
    assert len(appts) == 300 and all(r["date"] < "2026-01-01" for r in appts)
    patients = (await a.control("GET", "practices/D1000/patients"))["items"]
    assert len(patients) == 20 and all(re.fullmatch(r"\d{3}-\d{3}-\d{4}", p["cell"]) for p in patients)
    r = await a.get("/appointments", headers=key, limit="100", offset="2")
    env = r.json()
    assert (env["offset"], env["limit"], env["total_count"], len(env["items"])) == ("2", "100", "300", 100)
    assert env["pagination"]["next"] == "" and env["pagination"]["previous"].endswith("offset=1&limit=100")
    assert env["pagination"]["last"].endswith("offset=2&limit=100")
    assert env["items"][0]["appointment_sr_no"] == "50200" and r.headers["Data-Insert"] == "completed"
    assert (await a.get("/appointments", headers=key)).json()["limit"] == "50"
    assert (await a.get("/appointments", headers=key, limit="9000")).json()["limit"] == "5000"
    p = patients[3]
    found = (await a.get("/patients", headers=key, cell=p["cell"])).json()["items"]
    assert p["patient_id"] in [x["patient_id"] for x in found]
    found = (await a.get("/patients", headers=key, search=p["lastname"].upper())).json()["items"]
    assert p["patient_id"] in [x["patient_id"] for x in found]
    only = (await a.get("/patients", headers=key, lightweight="true", fields="patient_id,cell")).json()["items"][0]
    assert set(only) == {"patient_id", "cell"}
    slots = (await a.get("/appointments_available_slots", headers=key, startdate="2026-01-05", enddate="2026-01-05")).json()
    assert slots["items"] and all(s["date"] == "2026-01-05T00:00:00" for s in slots["items"])
    assert (await a.get("/practice_schedule", headers=key, fields="get_all")).json()["items"][0]["monday_start_1"] == "08:00"
    assert (await a.client.get("http://sim.test/_sim/practices/D7777/patients")).status_code == 404
