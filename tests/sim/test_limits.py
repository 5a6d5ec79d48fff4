"""Fixed 60 s windows (practice and app), daily quota, rate/throttle/error/latency faults, stats."""

from __future__ import annotations

import trio

from tests.support.sim import APP


def _rl(r):
    return (r.status_code, r.headers["X-Rate-Limit-Limit"], r.headers["x-rate-limit-remaining"],
            r.headers["X-RATE-LIMIT-RESET"])


async def test_fixed_window_starts_at_first_request(api, autojump_clock):
    a = api(rate_limit=3)
    await trio.sleep(10)
    key = await a.key()  # the grant opens the window at t=10
    assert _rl(await a.get("/practices", headers=key)) == (200, "3", "1", "60")
    await trio.sleep(20)
    assert _rl(await a.get("/practices", headers=key)) == (200, "3", "0", "40")
    r = await a.get("/practices", headers=key)
    assert _rl(r) == (429, "3", "0", "40") and r.json()["http_code"] == "429"
    await trio.sleep(39.5)  # t=69.5: same window
    assert (await a.get("/practices", headers=key)).status_code == 429
    await trio.sleep(0.5)  # t=70: a new window starts with this request
    assert _rl(await a.get("/practices", headers=key)) == (200, "3", "2", "60")
    s = await a.stats()
    assert (s["status_429"], s["forced_429"], s["requests"], s["max_in_any_60s"]) == (2, 0, 6, 5)


async def test_app_window_is_separate(api, autojump_clock):
    a = api(app_rate_limit=2, rate_limit=100)
    key = await a.key()
    for expect in (200, 200, 429):
        assert (await a.get("/data_sync_status", headers=APP)).status_code == expect
    assert (await a.get("/writebacks", headers=APP, startdate="2026-01-01", enddate="2026-01-01")).status_code == 429
    assert (await a.get("/patients", headers=key)).status_code == 200
    app = (await a.control("GET", "stats"))["app"]
    assert app == {"requests": 4, "status_429": 2, "max_in_any_60s": 4}
    await trio.sleep(60)
    assert _rl(await a.get("/data_sync_status", headers=APP)) == (200, "2", "1", "60")


async def test_daily_quota(api, autojump_clock):
    a = api(daily_quota=3, token_ttl=10 * 86400)
    key = await a.key()  # 1
    await a.get("/patients", headers=key)  # 2
    await a.get("/patients", headers=key)  # 3
    r = await a.get("/patients", headers=key)
    assert r.status_code == 429 and r.json()["error_code"] == "API2012"
    assert r.json()["long_message"] == "Requests per practice per day exceeded"
    s = await a.stats()
    assert (s["status_429"], s["forced_429"]) == (0, 1)
    other = await a.key("D1001")  # quotas are per practice
    assert (await a.get("/patients", headers=other)).status_code == 200
    await trio.sleep(86400)  # the next UTC day
    assert (await a.get("/patients", headers=key)).status_code == 200


async def test_throttle_fault_is_one_shot(api, autojump_clock):
    a = api()
    key = await a.key()
    await a.control("POST", "faults", {"throttle": {"D1000": 17}})
    r = await a.get("/patients", headers=key)
    assert r.status_code == 429 and r.headers["X-Rate-Limit-Reset"] == "17" and "Request-Key-Expires" in r.headers
    assert (await a.get("/patients", headers=key)).status_code == 200
    s = await a.stats()
    assert (s["status_429"], s["forced_429"]) == (0, 1)


async def test_rate_limit_fault(api, autojump_clock):
    a = api()
    k0, k1 = await a.key("D1000"), await a.key("D1001")
    await a.control("POST", "faults", {"rate_limit": {"D1001": 2}})
    assert _rl(await a.get("/patients", headers=k1))[:3] == (200, "2", "0")  # the grant was the first
    assert (await a.get("/patients", headers=k1)).status_code == 429
    assert (await a.get("/patients", headers=k0)).headers["x-rate-limit-limit"] == "250"
    await a.control("POST", "faults", {"rate_limit": 5})
    assert (await a.get("/patients", headers=k0)).headers["x-rate-limit-limit"] == "5"
    assert (await a.control("GET", "faults")) == {"rate_limit": 5}
    await a.control("POST", "faults", {})
    assert (await a.get("/patients", headers=k0)).headers["x-rate-limit-limit"] == "250"


async def test_max_in_any_60s_is_sliding(api, autojump_clock):
    a = api(rate_limit=1000)
    key = await a.key()  # t=0
    for _ in range(2):
        await a.get("/patients", headers=key)  # 3 at t=0
    await trio.sleep(50)
    for _ in range(3):
        await a.get("/patients", headers=key)  # 3 at t=50 (6 in 60 s)
    await trio.sleep(20)
    for _ in range(4):
        await a.get("/patients", headers=key)  # 4 at t=70 (7 within (10, 70])
    assert (await a.stats())["max_in_any_60s"] == 7


async def test_error_rate_fault(api, autojump_clock):
    a = api()
    key = await a.key()
    await a.control("POST", "faults", {"error_rate": 1.0})
    codes = set()
    for _ in range(20):
        r = await a.get("/patients", headers=key)
        body = r.json()
        assert (r.status_code, body["error_code"]) in {(503, "API2002"), (500, "API2001")}
        codes.add(body["error_code"])
    assert codes == {"API2002", "API2001"}
    await a.control("POST", "faults", {"error_rate": 0})
    assert (await a.get("/patients", headers=key)).status_code == 200


async def test_latency_fault(api, autojump_clock):
    a = api()
    key = await a.key()
    await a.control("POST", "faults", {"latency_ms": 1500})
    t = trio.current_time()
    await a.get("/patients", headers=key)
    assert trio.current_time() - t == 1.5
    await a.control("POST", "faults", {"latency_ms": "200:300"})
    for _ in range(5):
        t = trio.current_time()
        await a.get("/patients", headers=key)
        assert 0.2 <= trio.current_time() - t <= 0.3
    await a.control("POST", "faults", {"latency_ms": None})
    assert "latency_ms" not in await a.control("GET", "faults")


async def test_bad_faults_are_rejected(api, autojump_clock):
    a = api()
    for bad in ({"error_rate": 2}, {"nope": 1}, {"spu_offline": "D1000"}, {"throttle": [1]}):
        r = await a.client.post("http://sim.test/_sim/faults", json=bad)
        assert r.status_code == 400


async def test_timeline_records_node_and_status(api, autojump_clock):
    a = api(rate_limit=2)
    key = await a.key()
    await trio.sleep(1.5)
    await a.get("/patients", headers={**key, "User-Agent": "sikka-supervisor/0.1.0 node=node-b"})
    await a.get("/patients", headers=key)
    items = (await a.control("GET", "practices/D1000/requests"))["items"]
    assert items == [
        {"at": "2026-01-01T00:00:00.000Z", "method": "POST", "path": "/v4/request_key", "node": "node-a", "status": 200},
        {"at": "2026-01-01T00:00:01.500Z", "method": "GET", "path": "/v4/patients", "node": "node-b", "status": 200},
        {"at": "2026-01-01T00:00:01.500Z", "method": "GET", "path": "/v4/patients", "node": "node-a", "status": 429},
    ]


async def test_stats_shape(api, autojump_clock):
    a = api(practices=2)
    stats = await a.control("GET", "stats")
    assert set(stats) == {"requests", "app", "practices"} and set(stats["practices"]) == {"D1000", "D1001"}
    assert set(stats["practices"]["D1000"]) == {
        "requests", "status_429", "forced_429", "max_in_any_60s", "expired_key_calls", "forced_expired_calls",
        "writebacks_submitted", "writebacks_completed", "writebacks_failed", "writebacks_deleted"}
