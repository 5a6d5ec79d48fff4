"""At most ``in_flight`` requests inside httpx at once; the others wait in the client, within the
HTTP client's pool timeout (then a ``TransportFailure`` that never left). Regression: with
thousands of practices' calls queued in httpx's own pool, matching them to connections took the
event loop for seconds at a time."""

from __future__ import annotations

import httpx
import trio

from actors.core.outcomes import TransportFailure
from actors.runtime.sikka import SikkaClient
from tests.support.sikka import APP_ID, APP_KEY, BASE, NODE


class SlowSikka(httpx.AsyncBaseTransport):
    """Answers ``{"data": []}`` after ``delay`` seconds; counts the requests inside at once."""

    def __init__(self, delay: float):
        self.delay = delay
        self.inside = self.most_inside = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await trio.sleep(self.delay)
        finally:
            self.inside -= 1
        return httpx.Response(200, json={"items": []})


async def test_calls_beyond_the_limit_wait_outside_httpx(autojump_clock):
    sikka = SlowSikka(delay=1.0)
    async with httpx.AsyncClient(transport=sikka, timeout=30) as http:
        client = SikkaClient(http, BASE, APP_ID, APP_KEY, NODE, in_flight=3)
        results = []

        async def call():
            results.append(await client.request_key_info("key"))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(call)
    assert sikka.most_inside == 3 and len(results) == 10
    assert trio.current_time() == 4.0  # ceil(10 / 3) rounds of 1 s


async def test_a_call_that_finds_no_free_slot_within_the_pool_timeout_was_never_sent(autojump_clock):
    sikka = SlowSikka(delay=60.0)
    async with httpx.AsyncClient(transport=sikka, timeout=5) as http:
        client = SikkaClient(http, BASE, APP_ID, APP_KEY, NODE, in_flight=1)
        results = {}

        async def call(name):
            results[name] = await client.request_key_info("key")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "first")
            await trio.sleep(0.1)
            nursery.start_soon(call, "second")
    assert results["second"].outcome == TransportFailure(kind="connect", message="PoolTimeout")
    assert results["first"].outcome != results["second"].outcome
