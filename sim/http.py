"""The simulator over the network: an HTTP/1.1 server and the webhook sender.

Design: ``serve`` runs the shared h11 connection loop of ``actors/api/http.py``
(``serve_connection``: keep-alive, 400 for malformed HTTP, 413 for oversized bodies, gzip for
clients that accept it) with a handler that awaits ``simulator.app`` (the model plus the latency
fault). When the model marks a response ``cut`` (the ``drop_after_accept_rate`` fault, after the
writeback was created) the handler answers ``None`` and the loop closes the TCP stream without
writing a byte, which is what a client sees when a real server disconnects. ``serve`` also runs
``send_webhooks`` when the config names a webhook URL. The in-process shell is ``sim/transport.py``.
"""

from __future__ import annotations

from functools import partial

import httpx
import msgspec
import trio

from actors.api.http import Request, Response, serve_connection
from sim.responses import CONTENT_TYPE
from sim.simulator import Simulator

GZIP_MIN_BYTES = 256  # smaller bodies go as they are, as Sikka's small answers do


async def serve(simulator: Simulator, host: str = "127.0.0.1", port: int = 0, *,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``simulator`` over HTTP/1.1 until cancelled; ``task_status.started(port)`` once listening."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    real_port = listeners[0].socket.getsockname()[1]
    connection = partial(serve_connection, handler=partial(_answer, simulator), gzip_min_bytes=GZIP_MIN_BYTES)
    async with trio.open_nursery() as nursery:
        if simulator.config.webhook_url:
            nursery.start_soon(send_webhooks, simulator)
        await nursery.start(trio.serve_listeners, connection, listeners)
        task_status.started(real_port)


async def _answer(simulator: Simulator, request: Request) -> Response | None:
    resp = await simulator.app(request.method, request.target, request.headers, request.body)
    if resp.cut:
        return None  # hang up without an answer
    return Response(resp.status, resp.body, CONTENT_TYPE, tuple(resp.headers))


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
