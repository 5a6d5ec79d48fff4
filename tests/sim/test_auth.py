"""Request keys: both grants and their errors, key info, the two DELETEs, expiry, revocation."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import trio

from tests.support.sim import APP, T0


def _err(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code and body["http_code"] == str(status)
    assert set(body) == {"http_code", "http_code_desc", "error_code", "short_message", "long_message",
                         "more_information"}
    return body


async def test_request_key_grant(api, autojump_clock):
    a = api()
    r = await a.grant("D1001")
    assert r.status_code == 200
    body = r.json()
    assert all(isinstance(v, str) for v in body.values())
    assert body["issued_to"] == "D1001" and body["status"] == "active" and body["domain"] == "Dental"
    assert body["start_time"] == "2026-01-01T00:00:00" and body["end_time"] == "2026-01-02T00:00:00"
    assert body["expires_in"] == "86400 second(s)" and len(body["request_key"]) == 32 and body["refresh_key"]
    assert parsedate_to_datetime(r.headers["request-key-expires"]).timestamp() == T0 + 86400
    assert r.headers["Request-Key-Expires"].endswith(" GMT")


async def test_grant_errors(api, autojump_clock):
    a = api()
    _err(await a.grant(secret_key="wrong"), 401, "API2003")
    r = await a.client.post("/request_key", json={"grant_type": "request_key", "office_id": "D9999",
                                                  "secret_key": "x", "app_id": "sim-app-id", "app_key": "sim-app-key"})
    _err(r, 401, "API2003")
    _err(await a.grant(app_key="nope"), 401, "API2003")
    for field in ("office_id", "secret_key", "app_id", "grant_type"):
        body = _err(await a.grant(**{field: None}), 400, "API1026")
        assert field in body["long_message"]
    assert "grant_type" in _err(await a.grant(grant_type="password"), 400, "API1026")["long_message"]
    _err(await a.client.post("/request_key", content=b"not json"), 400, "API1026")
    refresh = {"grant_type": "refresh_key", "app_id": "sim-app-id", "app_key": "sim-app-key"}
    assert "refresh_key" in _err(await a.client.post("/request_key", json=refresh), 400, "API1026")["long_message"]
    _err(await a.client.post("/request_key", json={**refresh, "refresh_key": "unknown"}), 401, "API2003")


async def test_refresh_grant_and_several_valid_keys(api, autojump_clock):
    a = api()
    first = (await a.grant()).json()
    await trio.sleep(10)
    r = await a.client.post("/request_key", json={"grant_type": "refresh_key", "refresh_key": first["refresh_key"],
                                                  "app_id": "sim-app-id", "app_key": "sim-app-key"})
    second = r.json()
    assert r.status_code == 200 and second["issued_to"] == "D1000"
    assert second["request_key"] != first["request_key"] and second["refresh_key"] == first["refresh_key"]
    third = (await a.grant()).json()
    for body in (first, second, third):  # every issued key stays valid until it expires
        assert (await a.get("/practices", headers={"Request-Key": body["request_key"]})).status_code == 200
    # grants count in the office's window: 3 grants + 3 reads
    assert (await a.get("/practices", headers={"Request-Key": third["request_key"]})).headers[
        "x-rate-limit-remaining"] == str(250 - 7)


async def test_request_key_info(api, autojump_clock):
    a = api()
    key = await a.key()
    await a.get("/practices", headers=key)
    await trio.sleep(100)
    r = await a.get("/request_key_info", headers={"request-key": key["Request-Key"]})  # lower-case header name
    body = r.json()
    assert r.status_code == 200 and "refresh_key" not in body
    assert body["request_key"] == key["Request-Key"] and body["issued_to"] == "D1000"
    assert body["expires_in"] == "86300 second(s)" and body["request_count"] == "3"
    assert "request-key-expires" in r.headers
    r = await a.get("/request_key_info", request_key=key["Request-Key"])  # query form also accepted
    assert r.status_code == 200


async def test_delete_request_key(api, autojump_clock):
    a = api()
    key, other = await a.key(), await a.key()
    r = await a.client.delete("/request_key", headers=key)
    assert _err(r, 200, "API0002")["long_message"] == "Request Session terminated successfully."
    _err(await a.get("/practices", headers=key), 400, "API1004")
    assert (await a.get("/practices", headers=other)).status_code == 200


async def test_delete_refresh_key(api, autojump_clock):
    a = api()
    refresh = (await a.grant()).json()["refresh_key"]
    _err(await a.client.delete("/refresh_key", headers={"Refresh-Key": refresh}), 400, "API1001")
    _err(await a.client.delete("/refresh_key", headers={**APP, "App-Key": "bad", "Refresh-Key": refresh}), 401, "API2003")
    _err(await a.client.delete("/refresh_key", headers={**APP, "Refresh-Key": refresh}), 200, "API0002")
    r = await a.client.post("/request_key", json={"grant_type": "refresh_key", "refresh_key": refresh,
                                                  "app_id": "sim-app-id", "app_key": "sim-app-key"})
    _err(r, 401, "API2003")
    assert (await a.grant()).json()["refresh_key"] != refresh  # a new grant issues a new refresh key


async def test_missing_and_unknown_keys(api, autojump_clock):
    a = api()
    assert _err(await a.get("/patients"), 400, "API1004")["long_message"] == "Requestkey is missing."
    body = _err(await a.get("/patients", headers={"Request-Key": "f" * 32}), 400, "API1004")
    assert body["long_message"] == "Requestkey is missing/invalid"
    assert (await a.control("GET", "stats"))["requests"] == 2


async def test_key_expires_after_ttl(api, autojump_clock):
    a = api(token_ttl=100)
    key = await a.key()
    await trio.sleep(99)
    ok = await a.get("/providers", headers=key)
    assert ok.status_code == 200
    assert parsedate_to_datetime(ok.headers["Request-Key-Expires"]).timestamp() == T0 + 100
    await trio.sleep(1)
    r = await a.get("/providers", headers=key)
    _err(r, 400, "API1025")
    assert "Request-Key-Expires" in r.headers
    s = await a.stats()
    assert (s["expired_key_calls"], s["forced_expired_calls"]) == (1, 0)
    assert (await a.get("/providers", headers=await a.key())).status_code == 200


async def test_expire_tokens_fault_counts_as_forced(api, autojump_clock):
    a = api()
    k1, k2 = await a.key(), await a.key("D1001")
    await a.control("POST", "faults", {"expire_tokens": True})
    assert (await a.control("GET", "faults")) == {}  # one shot: not kept in the fault set
    _err(await a.get("/patients", headers=k1), 400, "API1025")
    _err(await a.get("/patients", headers=k2), 400, "API1025")
    s = await a.stats()
    assert (s["expired_key_calls"], s["forced_expired_calls"]) == (0, 1)
    assert (await a.get("/patients", headers=await a.key())).status_code == 200  # keys issued later work


async def test_revoke(api, autojump_clock):
    a = api()
    key = await a.key("D1001")
    await a.control("POST", "faults", {"revoke": ["D1001"]})
    _err(await a.grant("D1001"), 401, "API2007")
    _err(await a.get("/patients", headers=key), 401, "API2007")
    r = await a.get("/authorized_practices", headers=APP, show="all")
    assert [p["office_id"] for p in r.json()["items"]] == ["D1000", "D1002"]
    await a.control("POST", "faults", {})
    assert (await a.get("/patients", headers=key)).status_code == 200


async def test_authorized_practices(api, autojump_clock):
    a = api(practices=4)
    r = await a.get("/authorized_practices", headers=APP)
    assert [p["office_id"] for p in r.json()["items"]] == ["D1000"]
    r = await a.get("/authorized_practices", headers=APP, show="all")
    items = r.json()["items"]
    assert [p["office_id"] for p in items] == ["D1000", "D1001", "D1002", "D1003"]
    for p in items:
        assert p["secret_key"] == a.secret(p["office_id"]) and p["practice_id"] == "1" and p["practice_name"]
        assert p["practice_management_system_refresh_date_time_zone"].endswith("Standard Time")
    r = await a.get("/authorized_practices", headers=APP, show="all", limit="2", offset="1")
    assert [p["office_id"] for p in r.json()["items"]] == ["D1002", "D1003"]
    _err(await a.get("/authorized_practices", headers={**APP, "App-Id": "x"}), 401, "API2003")
    _err(await a.get("/authorized_practices", headers={"App-Id": "sim-app-id"}), 400, "API1002")
    r = await a.get("/authorized_practices", headers=await a.key("D1002"))  # Request-Key: its own office
    assert [p["office_id"] for p in r.json()["items"]] == ["D1002"]


async def test_secret_keys_deterministic_from_seed(api, autojump_clock):
    a, b, c = api(seed=5), api(seed=5), api(seed=6)
    assert a.secret("D1000") == b.secret("D1000") != c.secret("D1000")
    assert a.secret("D1000") != a.secret("D1001")
