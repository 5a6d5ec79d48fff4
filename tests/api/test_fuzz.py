"""Bad input is never a 500: hypothesis drives every admin route (as ``/openapi.json`` lists
them) with arbitrary bytes in path ids, query values, headers and bodies, over the Unix socket
and over TCP (``SIKKA_HTTP_LISTEN`` with ``SIKKA_API_TOKEN``). Every answer is a 2xx (a route
that takes no id and ignores what it does not know) or a 4xx with exactly the error body
``{"error", "detail", "field"}``, and nothing is stored. The requests are written as raw bytes
on a socket of their own, so nothing a client library would refuse or normalize is spared.

A few examples per transport in the default suite; thousands in the ``CI=true`` stage (``slow``).
"""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

import pytest
import trio
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st

from sim import SimConfig, Simulator
from sim import serve as sim_serve
from tests.support.processes import free_port
from tests.support.supervisor import OFFICES, check_error, submission

TOKEN = "fuzz-token-7c1d9e"
SKIPPED = {("POST", "/onboard")}  # takes no input: it runs the authorization flow, not bad input
RESPONSE_TIMEOUT_S = 15.0


def raw_request(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    head = [method + b" " + target + b" HTTP/1.1", b"Host: fuzz", b"Connection: close"]
    head += [name + b": " + value for name, value in headers]
    head.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def exchange(address, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection to ``address`` (a socket path or (host, port)) and
    read until the server closes it."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(RESPONSE_TIMEOUT_S)
        s.connect(address)
        s.sendall(data)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    return received


def parsed(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


# --- strategies ------------------------------------------------------------------------------

TARGET_BYTES = st.binary(max_size=24).map(lambda b: quote(b, safe="").encode())  # any bytes, encoded
RAW_SEGMENT = st.binary(min_size=1, max_size=16).filter(lambda b: b"/" not in b and b"?" not in b)
PATH_IDS = st.one_of(
    TARGET_BYTES,
    st.from_regex(rb"\A[!-~]{1,24}\Z").filter(lambda b: b"/" not in b and b"?" not in b and b"#" not in b),
    RAW_SEGMENT,  # control characters, spaces, non-ASCII: h11 refuses the request line
    st.sampled_from([b"D9999", b"..", b"%2e%2e", b"D1000%00", b"0" * 70, b"00000000-0000-0000-0000-00000000000Z"]),
).filter(bool)
QUERY_NAMES = st.sampled_from(
    [b"wait", b"limit", b"state", b"before", b"since", b"startdate", b"enddate", b"date", b"provider_id", b"query"]
) | st.binary(max_size=8).map(lambda b: quote(b, safe="").encode())
QUERY_VALUES = TARGET_BYTES | st.sampled_from(
    [b"%00", b"%C0%80", b"%FF", b"\xb2", b"%C2%B2", b"nan", b"-1", b"1e309", b"9" * 30, b"0001-01-01T00:00:00%2B23:59"]
)
HEADER_NAMES = st.sampled_from(
    [b"authorization", b"callback-key", b"content-type", b"accept-encoding", b"expect", b"x-forwarded-for"]
) | st.from_regex(rb"\A[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}\Z").filter(
    lambda n: n.lower() not in (b"content-length", b"transfer-encoding", b"connection", b"host")
)
HEADER_VALUES = st.binary(max_size=40).filter(lambda v: b"\r" not in v and b"\n" not in v)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"{}", b"null", b'{"operation":"book_appointment","payload":{"patient_id":"\\u0000"}}']),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=4).map(
        lambda d: json.dumps(d).encode()
    ),
)


def route_requests(routes: list[tuple[str, str]], authorization: st.SearchStrategy, real: dict[str, bytes]):
    """(whether an id in the path is made up, (method, target, headers, body)) for any route,
    with arbitrary query, headers and body. Ids are made up, or, for reads (``GET``, and a
    submission's practice), ``real`` ones: then the request reaches the code behind the lookup."""

    @st.composite
    def build(draw):
        method, path = draw(st.sampled_from(routes))
        target = path.encode()
        reads = method == "GET" or path.endswith("/writebacks")
        made_up = False
        for name in ("office_id", "writeback_id", "appointment_sr_no", "patient_id"):
            while b"{" + name.encode() + b"}" in target:
                use_real = name in real and reads and draw(st.booleans())
                made_up |= not use_real
                target = target.replace(b"{" + name.encode() + b"}", real[name] if use_real else draw(PATH_IDS), 1)
        query = draw(st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=4))
        if query:
            target += b"?" + b"&".join(name + b"=" + value for name, value in query)
        headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=3))
        auth = draw(authorization)
        if auth is not None:
            headers.insert(0, (b"Authorization", auth))
        return made_up, (method.encode(), target, headers, draw(BODIES))

    return build()


UPSTREAM = (502, 503, 504)  # a Sikka read Sikka answered with an error (the request was fine to send)


def check_answer(raw: bytes, what) -> int:
    assert raw, f"no answer: {what}"
    status, headers, body = parsed(raw)
    assert status < 500 or status in UPSTREAM, (what, raw[:600])
    if status >= 400:
        assert headers.get("content-type") == "application/json", (what, raw[:600])
        error = json.loads(body)
        assert set(error) == {"error", "detail", "field"}, (what, error)
        assert isinstance(error["error"], str) and isinstance(error["detail"], str) and error["detail"], error
    return status


async def fuzz_every_route(sup, tcp_port: int, examples: int) -> None:
    doc = (await sup.client.get("/openapi.json")).json()
    routes = sorted((m.upper(), p) for p, ops in doc["paths"].items() for m in ops if (m.upper(), p) not in SKIPPED)
    assert len(routes) >= 25
    r = await sup.submit("D1001", submission(sup.sim, "D1001"))
    writeback = (await sup.writeback(r.json()["writeback_id"], wait=30)).json()
    assert writeback["state"] == "completed", writeback  # final: a ?wait= on it answers at once
    real = {"office_id": b"D1001", "writeback_id": writeback["writeback_id"].encode(), "patient_id": b"1",
            "appointment_sr_no": b"1"}
    stored = sup.counts()
    statuses: dict[str, list[int]] = {"unix": [], "tcp": []}
    good_token = f"Bearer {TOKEN}".encode()
    tokens = st.sampled_from([good_token] * 4 + [None, b"Bearer wrong", b"bearer " + TOKEN.encode(), good_token + b" "])
    transports = {"unix": (str(sup.socket), st.none() | HEADER_VALUES), "tcp": (("127.0.0.1", tcp_port), tokens)}

    for name, (address, authorization) in transports.items():

        @hsettings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(route_requests(routes, authorization, real))
        def examples_of(drawn):
            made_up_id, request = drawn
            status = check_answer(exchange(address, raw_request(*request)), request)
            assert not made_up_id or 400 <= status < 500, (status, request)  # no id of ours
            statuses[name].append(status)

        await trio.to_thread.run_sync(examples_of)

    assert sup.counts() == stored  # nothing was stored
    for name, seen in statuses.items():
        assert seen and any(400 <= s < 500 for s in seen), (name, seen)
    assert 401 in statuses["tcp"]  # the wrong and missing tokens
    assert (await sup.client.get("/health")).status_code == 200
    practices = {p["office_id"]: p for p in (await sup.client.get("/practices")).json()["practices"]}
    assert all(p["state"] == "active" for p in practices.values()), practices
    assert sum(practices["D1000"]["writebacks"].values()) == 0 and practices["D1001"]["writebacks"]["completed"] == 1


async def fuzzed_supervisor(start, nursery):
    """A supervisor on TCP too, with rate limits (ours and the simulator's) far above what the
    examples use: a Sikka read never waits for the budget."""
    sim = Simulator(SimConfig(practices=len(OFFICES), writeback_delay=(1, 2), rate_limit=10**6))
    sim_port = await nursery.start(sim_serve, sim, "127.0.0.1", 0)
    port = free_port()
    env = {"SIKKA_HTTP_LISTEN": f"127.0.0.1:{port}", "SIKKA_API_TOKEN": TOKEN, "SIKKA_RATE_LIMIT": "1000000"}
    return await start(env=env, sim=sim, sim_port=sim_port), port


async def test_arbitrary_bytes_on_every_route_never_get_a_500_or_store_anything(start, nursery):
    sup, port = await fuzzed_supervisor(start, nursery)
    with trio.fail_after(240):
        await fuzz_every_route(sup, port, examples=60)


@pytest.mark.slow
async def test_arbitrary_bytes_on_every_route_many_examples(start, nursery):
    sup, port = await fuzzed_supervisor(start, nursery)
    with trio.fail_after(2400):
        await fuzz_every_route(sup, port, examples=3000)


NASTY = [b"%00", b"a%00b", b"%C0%80", b"%FF", b"\xb2", b"%C2%B2", b"%EF%BC%91", b"nan", b"inf", b"-1", b"1e309",
         b"9" * 30, b"", b"%20", b"0001-01-01T00:00:00%2B23:59", b"9999-12-31T23:59:59-23:59", b"2026-02-30",
         b"%0A", b"%7F", b"..%2F..", b"00000000-0000-0000-0000-00000000000Z"]
QUERY = {  # the parameters each read takes (any other is ignored: checked with "x")
    "/practices/{office_id}/writebacks": [b"state", b"limit", b"before"],
    "/practices/{office_id}/stats": [b"since"],
    "/writebacks/{writeback_id}": [b"wait"],
    "/practices/{office_id}/appointments": [b"startdate", b"enddate", b"limit"],
    "/practices/{office_id}/available-slots": [b"date", b"provider_id"],
    "/practices/{office_id}/patients": [b"query", b"limit"],
}


async def test_every_read_with_each_of_its_parameters_and_every_nasty_value(start, nursery):
    """Exhaustive where hypothesis would need luck: every ``GET`` route with ids that exist, each
    query parameter it takes (and one it does not), each value that once broke something or
    might (a NUL reached PostgreSQL in ``before``; ``limit=²`` passed ``isdigit``)."""
    sup, _ = await fuzzed_supervisor(start, nursery)
    doc = (await sup.client.get("/openapi.json")).json()
    reads = sorted(p for p, ops in doc["paths"].items() if "get" in ops)
    assert set(QUERY) <= set(reads)
    r = await sup.submit("D1001", submission(sup.sim, "D1001"))
    wid = (await sup.writeback(r.json()["writeback_id"], wait=30)).json()["writeback_id"]
    real = {"{office_id}": "D1001", "{writeback_id}": wid, "{patient_id}": "1", "{appointment_sr_no}": "1"}
    stored = sup.counts()

    def run_all() -> int:
        answered = 0
        for template in reads:
            path = template
            for name, value in real.items():
                path = path.replace(name, value)
            for parameter in [*QUERY.get(template, []), b"x"]:
                for value in NASTY:
                    target = path.encode() + b"?" + parameter + b"=" + value
                    check_answer(exchange(str(sup.socket), raw_request(b"GET", target, [], b"")), target)
                    answered += 1
        return answered

    with trio.fail_after(300):
        assert await trio.to_thread.run_sync(run_all) == (len(reads) + sum(map(len, QUERY.values()))) * len(NASTY)
    assert sup.counts() == stored


# --- the cases found, as regressions ------------------------------------------------------------


async def test_query_values_that_once_were_500s(sup):
    """A NUL in ``before`` reached PostgreSQL (500); ``limit=²`` passed ``str.isdigit`` and failed
    ``int()`` (500)."""
    for params, field in (
        ({"before": "\x00"}, "before"),
        ({"before": "not-a-writeback-id"}, "before"),
        ({"limit": "²"}, "limit"),
        ({"state": "queued\x00"}, "state"),
    ):
        check_error(await sup.client.get("/practices/D1000/writebacks", params=params), 400, "bad_parameter", field)
    stats = await sup.client.get("/practices/D1000/stats", params={"since": "x\x00"})
    check_error(stats, 400, "bad_parameter", "since")
    check_error(await sup.client.get("/practices/D1000/patients", params={"query": "a\x00b"}), 400, "bad_parameter",
                "query")


async def test_a_deeply_nested_body_is_400(sup):
    """Regression: 100,000 nested objects in the payload ran msgspec out of recursion (a 500)."""
    before = sup.counts()
    body = b'{"operation":"book_appointment","payload":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}"
    check_error(await sup.submit("D1000", body), 400, "bad_json")
    assert sup.counts() == before


async def test_a_malformed_writeback_id_is_404_without_the_database(sup):
    for wid in ("x", "00000000-0000-0000-0000-00000000000Z", "%00", "ABCDEF00-0000-0000-0000-000000000000"):
        check_error(await sup.client.get(f"/writebacks/{wid}"), 404, "unknown_writeback")
        check_error(await sup.client.post(f"/writebacks/{wid}/cancel"), 404, "unknown_writeback")
