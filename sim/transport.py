"""The in-process shell: an httpx transport that hands each request to the simulator's web
application, with no sockets, so it works on trio's MockClock (``Simulator.transport()``).

Design: the request becomes ``(method, raw target, raw headers, body)`` for ``app``; the
``Response`` comes back with ``Content-Type`` added (every answer is JSON). A ``cut`` response
raises ``httpx.RemoteProtocolError``, which is what a client sees when a real server disconnects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from sim.responses import CONTENT_TYPE, Response

App = Callable[[str, str, list[tuple[bytes, bytes]], bytes], Awaitable[Response]]


class SimTransport(httpx.AsyncBaseTransport):
    """An httpx transport that calls the simulator's ``app`` directly (see the module docstring)."""

    def __init__(self, app: App):
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        resp = await self.app(request.method, request.url.raw_path.decode("ascii"), request.headers.raw, body)
        if resp.cut:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        headers = [("Content-Type", CONTENT_TYPE), *resp.headers]
        return httpx.Response(resp.status, headers=headers, content=resp.body, request=request)
