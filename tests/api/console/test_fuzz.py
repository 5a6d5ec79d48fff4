"""Bad input to the console is never a 500 and changes nothing: hypothesis drives every console
route (``Console.routes``, each action by name) with arbitrary bytes in path ids, query values,
headers and bodies, as raw requests over the admin socket and over TCP (with the bearer token,
a wrong one, or none), with the admin API fuzz's strategies (``tests/api/test_fuzz.py``). Every
answer is below 500; a page or an error is HTML; no form without its CSRF token acts."""

from __future__ import annotations

import pytest
import trio
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st

from actors.api.console.pages import ACTIONS
from tests.api.test_fuzz import HEADER_VALUES, TOKEN, exchange, fuzzed_supervisor, parsed, raw_request, route_requests
from tests.support.supervisor import submission

ROUTES = [
    ("GET", "/ui/"), ("GET", "/ui/alerts"), ("GET", "/ui/practices/{office_id}"),
    *[(method, f"/ui/practices/{{office_id}}/{action}") for action in [*ACTIONS, "offboard"] for method in ("GET", "POST")],
    ("GET", "/ui/writebacks/{writeback_id}"), ("GET", "/ui/login"), ("POST", "/ui/login"), ("POST", "/ui/logout"),
    ("GET", "/ui/static/console.css"), ("GET", "/ui/static/{office_id}"), ("PUT", "/ui/practices/{office_id}"),
]


def check_page(raw: bytes, what) -> int:
    assert raw, f"no answer: {what}"
    status, headers, body = parsed(raw)
    assert status < 500, (what, raw[:600])
    refused_by_h11 = status == 400 and b"malformed HTTP request" in body  # the connection loop's, before routing
    if status != 303 and not refused_by_h11 and not what[1].startswith(b"/ui/static/console.css"):
        assert headers.get("content-type") == "text/html; charset=utf-8", (what, raw[:600])
    return status


async def fuzz_the_console(sup, tcp_port: int, examples: int) -> None:
    r = await sup.submit("D1001", submission(sup.sim, "D1001"))
    writeback = (await sup.writeback(r.json()["writeback_id"], wait=30)).json()
    real = {"office_id": b"D1001", "writeback_id": writeback["writeback_id"].encode()}
    stored = sup.counts()
    seen: dict[str, set[int]] = {"unix": set(), "tcp": set()}
    good = f"Bearer {TOKEN}".encode()
    transports = {"unix": (str(sup.socket), st.none() | HEADER_VALUES),
                  "tcp": (("127.0.0.1", tcp_port), st.sampled_from([good, good, None, b"Bearer wrong"]))}
    for name, (address, authorization) in transports.items():

        @hsettings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(route_requests(ROUTES, authorization, real))
        def examples_of(drawn):
            _, request = drawn
            data = raw_request(*request).replace(b"Host: fuzz", b"Host: localhost", 1)  # the socket's rule
            seen[name].add(check_page(exchange(address, data), request))

        await trio.to_thread.run_sync(examples_of)

    # a forged form on each transport, whatever the draws held (a 403 among them was luck): refused
    for name, (address, _) in transports.items():
        headers = [(b"Authorization", good)] if name == "tcp" else []
        forged = raw_request(b"POST", b"/ui/practices/D1001/pause", headers, b"csrf=forged")
        answer = await trio.to_thread.run_sync(exchange, address, forged.replace(b"Host: fuzz", b"Host: localhost"))
        assert check_page(answer, (b"POST", b"/ui/practices/D1001/pause")) == 403, (name, answer[:600])
    assert sup.counts() == stored
    practices = (await sup.client.get("/practices")).json()["practices"]
    assert all(p["state"] == "active" for p in practices), practices  # no forged action went through
    assert 200 in seen["unix"] and 200 in seen["tcp"], seen  # the draws reached pages on both transports
    assert 303 in seen["tcp"], seen  # no token: to the login form


async def test_arbitrary_bytes_on_every_console_route(start, nursery):
    sup, port = await fuzzed_supervisor(start, nursery)
    with trio.fail_after(240):
        await fuzz_the_console(sup, port, examples=60)


@pytest.mark.slow
async def test_arbitrary_bytes_on_every_console_route_many_examples(start, nursery):
    sup, port = await fuzzed_supervisor(start, nursery)
    with trio.fail_after(2400):
        await fuzz_the_console(sup, port, examples=2000)
