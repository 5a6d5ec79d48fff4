"""Helpers for the simulator tests: a simulator on trio's MockClock behind ``transport()`` (``Api``),
Sikka's app headers, and the writeback id of an acknowledgement."""

from __future__ import annotations

import httpx
import trio

from sim import SimConfig, Simulator

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: MockClock time 0
APP = {"App-Id": "sim-app-id", "App-Key": "sim-app-key"}
UA = {"User-Agent": "sikka-supervisor/0.1.0 node=node-a"}


class Api:
    """A simulator plus an httpx client on its transport, with a few shortcuts."""

    def __init__(self, **config):
        start = trio.current_time()  # MockClock time at creation is Unix time T0
        self.sim = Simulator(SimConfig(**config), clock=lambda: T0 + trio.current_time() - start)
        self.client = httpx.AsyncClient(transport=self.sim.transport(), base_url="http://sim.test/v4", headers=UA)

    def secret(self, office: str) -> str:
        return self.sim.practice(office).info.secret_key

    async def grant(self, office: str = "D1000", **override) -> httpx.Response:
        body = {"grant_type": "request_key", "office_id": office, "secret_key": self.secret(office),
                "app_id": "sim-app-id", "app_key": "sim-app-key", **override}
        return await self.client.post("/request_key", json={k: v for k, v in body.items() if v is not None})

    async def key(self, office: str = "D1000") -> dict[str, str]:
        r = await self.grant(office)
        assert r.status_code == 200, r.text
        return {"Request-Key": r.json()["request_key"]}

    async def get(self, path: str, headers=None, **params) -> httpx.Response:
        return await self.client.get(path, headers=headers, params=params)

    async def control(self, method: str, path: str, json=None) -> dict:
        r = await self.client.request(method, f"http://sim.test/_sim/{path}", json=json)
        assert r.status_code == 200, r.text
        return r.json()

    async def stats(self, office: str = "D1000") -> dict:
        return (await self.control("GET", "stats"))["practices"][office]

    async def book(self, key: dict, **override) -> httpx.Response:
        body = {"patient_id": "10001", "date": "2026-02-03", "time": "10:00", "length": "30",
                "provider_id": "DDS1", "operatory": "OP1", "practice_id": "1", "description": "Cleaning", **override}
        return await self.client.post("/appointment", json={k: v for k, v in body.items() if v is not None},
                                      headers=key)


def writeback_id(resp: httpx.Response) -> str:
    msg = resp.json()["long_message"]
    assert msg.startswith("Id:"), msg
    return msg[3:]
