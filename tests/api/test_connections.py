"""Hostile connections are shed by the one connection loop (``actors.api.http``): a request that
does not arrive in time and an idle kept-alive connection are closed, a listener holds at most
its cap of connections (new ones are closed at once) and keeps serving, and on TCP the bearer
token is checked on the request head, before any of the body is read.

Real sockets; the timeouts shortened where they are parameters (their defaults are checked).
"""

from __future__ import annotations

import socket
from functools import partial

import trio

from actors.api import http
from actors.api.http import Response, serve_connection, serve_listener
from tests.support.processes import free_port
from tests.support.supervisor import check_error

GET = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


async def answer(request: http.Request) -> Response:
    return Response(200, b'{"ok":true}')


async def listening(nursery, tmp_path, *, max_connections=1000, **options) -> str:
    path = str(tmp_path / "t.sock")
    listener = await http.bind_unix_listener(path)
    connection = partial(serve_connection, handler=answer, **options)
    await nursery.start(partial(serve_listener, listener, connection, max_connections=max_connections))
    return path


async def closed_within(stream: trio.SocketStream, seconds: float) -> bytes:
    """Everything received until the server closes ``stream`` (fails if it does not in time)."""
    received = b""
    with trio.fail_after(seconds):
        try:
            while chunk := await stream.receive_some(65536):
                received += chunk
        except trio.BrokenResourceError:  # reset: closed with our request unread
            pass
    return received


def test_the_default_timeouts():
    assert http.REQUEST_TIMEOUT_S == 10.0 and http.IDLE_TIMEOUT_S == 60.0


async def test_a_request_that_does_not_arrive_in_time_is_closed(nursery, tmp_path):
    path = await listening(nursery, tmp_path, request_s=0.5, idle_s=5)
    silent = await trio.open_unix_socket(path)
    half = await trio.open_unix_socket(path)
    await half.send_all(b"GET /x HTTP/1.1\r\nHost: t\r\n")  # the head never ends
    body_missing = await trio.open_unix_socket(path)
    await body_missing.send_all(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    started = trio.current_time()
    for stream in (silent, half, body_missing):
        assert await closed_within(stream, 3) == b""  # closed without an answer
    assert trio.current_time() - started < 2
    fine = await trio.open_unix_socket(path)
    await fine.send_all(GET)
    assert (await fine.receive_some(65536)).startswith(b"HTTP/1.1 200 ")


async def test_a_dawdling_client_cannot_stretch_the_request_by_trickling(nursery, tmp_path):
    path = await listening(nursery, tmp_path, request_s=1.0, idle_s=5)
    stream = await trio.open_unix_socket(path)
    started = trio.current_time()
    with trio.move_on_after(4):
        try:
            for byte in b"GET /x HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * 100:
                await stream.send_all(bytes([byte]))
                await trio.sleep(0.1)
        except trio.BrokenResourceError:
            pass
    assert await closed_within(stream, 1) == b""
    assert trio.current_time() - started < 2.5


async def test_an_idle_kept_alive_connection_is_closed(nursery, tmp_path):
    path = await listening(nursery, tmp_path, request_s=5, idle_s=0.5)
    stream = await trio.open_unix_socket(path)
    await stream.send_all(GET)
    first = await stream.receive_some(65536)
    assert first.startswith(b"HTTP/1.1 200 ")
    started = trio.current_time()
    assert await closed_within(stream, 3) == b""
    assert 0.4 < trio.current_time() - started < 2


async def test_beyond_the_cap_new_connections_are_closed_at_once_and_the_listener_recovers(nursery, tmp_path):
    path = await listening(nursery, tmp_path, max_connections=5, request_s=30, idle_s=30)
    held = [await trio.open_unix_socket(path) for _ in range(5)]
    await trio.sleep(0.2)  # all five accepted
    for _ in range(20):
        extra = await trio.open_unix_socket(path)
        try:
            await extra.send_all(GET)
        except trio.BrokenResourceError:
            pass  # already closed
        assert await closed_within(extra, 1) == b""  # closed at once, unanswered
    await held[0].send_all(GET)  # the held ones are still served
    assert (await held[0].receive_some(65536)).startswith(b"HTTP/1.1 200 ")
    for stream in held[1:]:
        await stream.aclose()
    await trio.sleep(0.2)
    fresh = await trio.open_unix_socket(path)
    await fresh.send_all(GET)
    assert (await fresh.receive_some(65536)).startswith(b"HTTP/1.1 200 ")


async def test_the_bearer_token_is_checked_before_the_body_is_read(start):
    port = free_port()
    sup = await start(env={"SIKKA_HTTP_LISTEN": f"127.0.0.1:{port}", "SIKKA_API_TOKEN": "tok-head",
                           "SIKKA_WEBHOOK_CALLBACK_KEY": "hook-head"})
    before = sup.counts()
    submit, hook = b"/practices/D1000/writebacks", b"/webhooks/sikka"
    refused = [(submit, b""), (submit, b"Authorization: Bearer nope\r\n"), (hook, b""), (hook, b"callback-key: nope\r\n")]
    for path, auth in refused:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        # a declared body that never comes: the refusal does not wait for it
        await stream.send_all(b"POST " + path + b" HTTP/1.1\r\nHost: t\r\n" + auth +
                              b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
        with trio.fail_after(2):
            got = await closed_within(stream, 2)
        assert got.startswith(b"HTTP/1.1 401 ") and b'"unauthorized"' in got, got
    # with the token the body is waited for (and refused as too large once it overflows)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"POST /practices/D1000/writebacks HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok-head\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 4\r\n\r\n")
    with trio.move_on_after(1) as waited:
        await stream.receive_some(65536)
    assert waited.cancelled_caught  # still reading the body
    await stream.send_all(b"null")
    check = await stream.receive_some(65536)
    assert check.startswith(b"HTTP/1.1 400 "), check
    await stream.aclose()
    assert sup.counts() == before


async def test_the_unix_socket_keeps_its_capacity_while_tcp_is_full(start):
    port = free_port()
    sup = await start(env={"SIKKA_HTTP_LISTEN": f"127.0.0.1:{port}", "SIKKA_API_TOKEN": "tok-cap",
                           "SIKKA_MAX_CONNECTIONS": "20"})
    flood = []
    for _ in range(60):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")  # half a head, held
        flood.append(s)
    try:
        await trio.sleep(0.3)
        with trio.fail_after(2):
            assert (await sup.client.get("/health")).status_code == 200
        check_error(await sup.client.get("/practices/D9999"), 404, "unknown_practice")
    finally:
        for s in flood:
            s.close()
