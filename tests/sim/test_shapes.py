"""The simulator's answers have the shapes of the saved Postman examples it implements.

Each example response of an endpoint the simulator serves is replayed against it; the answer must
have the same top-level type, the same envelope keys, the same item keys and string scalars.
"""

from __future__ import annotations

import json

import pytest
import trio

from tests.support.sikka import V4, WB, requests
from tests.support.sim import APP, Api, writeback_id

async def _key(api: Api) -> dict:
    return await api.key("D1000")


async def _pending(api: Api) -> tuple[dict, str]:
    key = await _key(api)
    return key, writeback_id(await api.book(key))


# (collection item name, method) -> async function(api) returning the simulator's httpx.Response
async def _read(api, path, app=False, **params):
    return await api.get(path, headers=APP if app else await _key(api), **params)


async def _wb_status(api):
    key, wid = await _pending(api)
    return await api.get("/writeback_status", headers=key, id=wid)


async def _writebacks(api):
    await _pending(api)
    return await api.get("/writebacks", headers=APP, startdate="2026-01-01", enddate="2026-01-02")


async def _delete_writeback(api):
    _, wid = await _pending(api)
    return await api.client.delete("/writebacks", headers=APP, params={"id": wid})


async def _patch_appt(api):
    return await api.client.patch("/appointments/50001", headers=await _key(api), json={
        "op": "replace", "path": "/appointment_status", "value": "Confirmed", "practice_id": "1"})


async def _put_appt(api):
    return await api.client.put("/appointments/50001", headers=await _key(api), json={
        "practice_id": "1", "date": "2026-03-01", "time": "09:30"})


async def _post_patient(api):
    return await api.client.post("/patient", headers=await _key(api), json={
        "firstname": "Ann", "lastname": "Lee", "provider_id": "DDS1", "practice_id": "1"})


async def _patch_patient(api):
    return await api.client.patch("/patient/10002", headers=await _key(api), json={"practice_id": "1", "firstname": "Jo"})


async def _medical_note(api):
    return await api.client.post("/medical_notes", headers=await _key(api), json={
        "date": "2026-01-01", "patient_id": "10001", "type": "General", "text": "Note", "provider_id": "DDS1",
        "practice_id": "1"})


async def _book_example(api, example_name):
    if "failed" in example_name:
        return await api.book({"Request-Key": "0" * 32})
    return await api.book(await _key(api))


READS = ["request_key_info", "appointments", "appointments_available_slots", "patients", "providers",
         "practices", "practice_variables", "appointment_statuses", "practice_schedule", "operatories"]
REQUESTS = {
    **{("v4", name, "GET"): (lambda n: lambda api, ex: _read(api, f"/{n}", **_fields(ex)))(name) for name in READS},
    ("v4", "authorized_practices", "GET"): lambda api, ex: _read(api, "/authorized_practices", app=True, **_fields(ex)),
    ("v4", "data_sync_status", "GET"): lambda api, ex: _read(api, "/data_sync_status", app=True, **_fields(ex)),
    ("wb", "appointment", "POST"): lambda api, ex: _book_example(api, ex),
    ("wb", "appointment", "PATCH"): lambda api, ex: _patch_appt(api),
    ("wb", "appointment", "PUT"): lambda api, ex: _put_appt(api),
    ("wb", "patient", "POST"): lambda api, ex: _post_patient(api),
    ("wb", "patient", "PATCH"): lambda api, ex: _patch_patient(api),
    ("wb", "medical_note", "POST"): lambda api, ex: _medical_note(api),
    ("wb", "writeback_status", "GET"): lambda api, ex: _wb_status(api),
    ("wb", "writebacks", "GET"): lambda api, ex: _writebacks(api),
    ("wb", "writebacks", "DELETE"): lambda api, ex: _delete_writeback(api),
}


def _fields(example_name: str) -> dict:
    return {"fields": "get_all"} if "get_all" in example_name else {}


def _examples():
    out = []
    for tag, collection in (("v4", V4), ("wb", WB)):
        for it in requests(collection):
            if (tag, it["name"], it["request"]["method"]) in REQUESTS:
                for r in it.get("response", []):
                    out.append(pytest.param(tag, it["name"], it["request"]["method"], r,
                                            id=f"{tag}:{it['request']['method']} {it['name']} / {r['name']}"))
    return out


EXAMPLES = _examples()


def test_every_implemented_endpoint_has_examples():
    seen = {(p.values[0], p.values[1], p.values[2]) for p in EXAMPLES}
    assert seen == set(REQUESTS)
    assert len(EXAMPLES) >= 30


def _assert_same_shape(ours, theirs, where="body"):
    assert type(ours) is type(theirs), where
    if isinstance(theirs, list):
        assert len(ours) >= 1 and len(theirs) >= 1, where
        _assert_same_shape(ours[0], theirs[0], f"{where}[0]")
    elif isinstance(theirs, dict):
        if "items" in theirs:  # envelope: same keys, items compared by the first item's keys
            assert set(ours) == set(theirs), where
            _assert_same_shape(ours["pagination"], theirs["pagination"], f"{where}.pagination")
            assert ours["items"], f"{where}: no items to compare"
            for item in ours["items"]:
                _assert_same_shape(item, theirs["items"][0], f"{where}.items[]")
            for k in ("offset", "limit", "total_count", "execution_time"):
                assert isinstance(ours[k], str), k
        else:
            assert set(ours) == set(theirs), (where, set(ours) ^ set(theirs))
            for k, v in ours.items():
                assert isinstance(v, str), (where, k, v)
    else:
        assert isinstance(ours, str), where


@pytest.mark.parametrize("tag,name,method,example", EXAMPLES)
async def test_answer_has_the_example_shape(api, autojump_clock, tag, name, method, example):
    a = api()
    resp = await REQUESTS[(tag, name, method)](a, example["name"])
    saved = json.loads(example["body"])
    ours = resp.json()
    _assert_same_shape(ours, saved)
    if isinstance(saved, dict) and "error_code" in saved:
        assert ours["error_code"] == saved["error_code"]
        assert resp.status_code == int(saved["http_code"])
    if example.get("code"):
        assert resp.status_code == example["code"] or name == "writebacks" and method == "DELETE"
    await trio.sleep(0)
