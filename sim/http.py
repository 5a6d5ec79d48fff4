"""Thin I/O shells around the ``Simulator`` model: an h11-on-trio server, an httpx transport, and
the webhook sender.

Design: both shells turn a request into ``(method, target, headers, body)``, await
``simulator.app`` (the model plus the latency fault) and write the ``Response`` back. When the
model marks a response ``cut`` (the ``drop_after_accept_rate`` fault, after the writeback was
created) the server closes the TCP stream without writing a byte and the transport raises
``httpx.RemoteProtocolError``, which is what a client sees when a real server disconnects.
``serve`` also runs ``send_webhooks`` when the config names a webhook URL.
"""

from __future__ import annotations

import gzip
import http
from functools import partial

import h11
import httpx
import msgspec
import trio

from sim.core import Simulator

MAX_RECV = 65536


async def serve(simulator: Simulator, host: str = "127.0.0.1", port: int = 0, *,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``simulator`` over HTTP/1.1 until cancelled; ``task_status.started(port)`` once listening."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    real_port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        if simulator.config.webhook_url:
            nursery.start_soon(send_webhooks, simulator)
        await nursery.start(trio.serve_listeners, partial(_connection, simulator), listeners)
        task_status.started(real_port)


async def _connection(simulator: Simulator, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            got = await _read_request(conn, stream)
            if got is None:
                return
            request, body = got
            resp = await simulator.app(request.method.decode(), request.target.decode("latin-1"),
                                       request.headers, body)
            if resp.cut:
                return  # no answer at all: the finally clause closes the socket
            payload, encoding = _encoded(resp.body, request.headers)
            headers = [*resp.headers, *encoding, ("Content-Length", str(len(payload)))]
            reason = http.HTTPStatus(resp.status).phrase.encode() if resp.status in http.HTTPStatus._value2member_map_ else b""
            await stream.send_all(conn.send(h11.Response(status_code=resp.status, headers=headers, reason=reason)))
            await stream.send_all(conn.send(h11.Data(data=payload)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = b'{"error":"bad request"}'
            try:
                await stream.send_all(conn.send(h11.Response(status_code=400, headers=[("Content-Length", str(len(body)))])))
                await stream.send_all(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
            except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


GZIP_MIN_BYTES = 256  # smaller bodies go as they are, as Sikka's small answers do


def _encoded(body: bytes, request_headers) -> tuple[bytes, list[tuple[str, str]]]:
    """The body gzip-compressed when the client accepts gzip (Sikka answers ``Content-Encoding:
    gzip``), else as it is."""
    accept = b",".join(v for k, v in request_headers if k.lower() == b"accept-encoding").lower()
    if b"gzip" in accept and len(body) >= GZIP_MIN_BYTES:
        return gzip.compress(body, compresslevel=5), [("Content-Encoding", "gzip")]
    return body, []


async def _read_request(conn: h11.Connection, stream) -> tuple[h11.Request, bytes] | None:
    request, body = None, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(MAX_RECV))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


class SimTransport(httpx.AsyncBaseTransport):
    """An httpx transport that calls the simulator directly (no sockets): works on MockClock."""

    def __init__(self, simulator: Simulator):
        self.simulator = simulator

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        resp = await self.simulator.app(request.method, request.url.raw_path.decode("ascii"), request.headers.raw, body)
        if resp.cut:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(resp.status, headers=resp.headers, content=resp.body, request=request)


async def send_webhooks(simulator: Simulator, client: httpx.AsyncClient | None = None, *,
                        poll: float = 0.25, retries: int = 5) -> None:
    """POST each due webhook to ``config.webhook_url`` with ``callback-key``; runs until cancelled.

    Like Sikka: a 2xx is success; otherwise retried up to ``retries`` times (1, 2, 4, … s apart).
    """
    cfg = simulator.config
    headers = {"callback-key": cfg.callback_key, "Content-Type": "application/json"}

    async def deliver(payload: dict) -> None:
        for attempt in range(retries + 1):
            try:
                r = await client.post(cfg.webhook_url, content=msgspec.json.encode(payload), headers=headers)
                if 200 <= r.status_code < 300:
                    return
            except httpx.HTTPError:
                pass
            await trio.sleep(2**attempt)

    own = client is None
    if own:
        client = httpx.AsyncClient(timeout=10)
    try:
        async with trio.open_nursery() as n:
            while True:
                for payload in simulator.due_webhooks():
                    n.start_soon(deliver, payload)
                nxt = simulator.next_webhook_at()
                wait = poll if nxt is None else min(poll, max(0.0, nxt - simulator.clock()))
                await trio.sleep(max(wait, 0.001))
    finally:
        if own:
            await client.aclose()
