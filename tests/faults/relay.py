"""A TCP relay the fault suite puts between a process and its server (the supervisor and
PostgreSQL, the supervisor and the simulator), to break the connection the way networks do.

``Relay(connect)`` listens on a free local port (``port``) and, for every connection accepted,
opens one to the target (``connect()``: a trio stream) and forwards bytes both ways. It runs its
own trio loop in a thread, so the synchronous tests drive it between their requests:

- ``cut()``: closes every connection now (both sides see the connection end);
- ``freeze()`` / ``thaw()``: a black hole: nothing is forwarded and no new connection reaches
  the target until thawed (the sockets stay open; the kernel buffers what is sent);
- ``delay(seconds)``: every chunk waits that long before it is forwarded;
- ``refuse(True)``: new connections are closed at once (the server's port is down);
- ``hold_next(marker, seconds)``: the next request whose bytes contain ``marker`` is a request a
  proxy held: the client's connection is cut at once (it never gets an answer), and the request
  reaches the target only ``seconds`` later (its answer discarded).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable

import trio

CHUNK = 65536
REQUEST_TAIL_S = 0.3  # after a held request's marker, the rest of it (its body) is read for this long


class Relay:
    def __init__(self, connect: Callable[[], Awaitable[trio.abc.Stream]]):
        self.connect = connect
        self.connections = 0  # accepted so far
        self.cuts = 0
        self._scopes: set[trio.CancelScope] = set()
        self._thawed = trio.Event()
        self._delay = 0.0
        self._refusing = False
        self._hold: tuple[bytes, float] | None = None
        self.held = 0
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main, ready), daemon=True)
        self._thread.start()
        ready.wait(10)

    # --- control (from the test's thread) -------------------------------------------------------

    def cut(self) -> None:
        self._call(self._cut)

    def freeze(self) -> None:
        self._call(lambda: setattr(self, "_thawed", trio.Event()))

    def thaw(self) -> None:
        self._call(lambda: self._thawed.set())

    def delay(self, seconds: float) -> None:
        self._call(lambda: setattr(self, "_delay", seconds))

    def refuse(self, refusing: bool) -> None:
        self._call(lambda: setattr(self, "_refusing", refusing))

    def hold_next(self, marker: bytes, seconds: float) -> None:
        self._call(lambda: setattr(self, "_hold", (marker, seconds)))

    def close(self) -> None:
        self._call(lambda: self._stop.set())
        self._thread.join(10)

    def _call(self, fn: Callable[[], None]) -> None:
        trio.from_thread.run_sync(fn, trio_token=self._token)

    def _cut(self) -> None:
        self.cuts += 1
        for scope in list(self._scopes):
            scope.cancel()

    # --- the relay (its own trio loop) ----------------------------------------------------------

    async def _main(self, ready: threading.Event) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        self._thawed.set()
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        ready.set()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._relay, listeners)
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    async def _relay(self, client: trio.SocketStream) -> None:
        self.connections += 1
        if self._refusing:
            await client.aclose()
            return
        server = None
        held: list[tuple[bytes, float]] = []  # set by the upstream pump: a request to deliver late
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await self._thawed.wait()
                server = await self.connect()
                async with trio.open_nursery() as pumps:
                    pumps.start_soon(self._pump, client, server, pumps, held)
                    pumps.start_soon(self._pump, server, client, pumps, None)
            except* (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                self._scopes.discard(scope)
        if held and server is not None:  # here: serve_listeners closes the client when this returns
            await self._deliver_late(client, server, *held[0])
            return
        for stream in (client, server):
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await stream.aclose()

    async def _pump(
        self, source: trio.abc.Stream, sink: trio.abc.Stream, pumps: trio.Nursery, held: list | None
    ) -> None:
        while True:
            data = await source.receive_some(CHUNK)
            if not data:
                pumps.cancel_scope.cancel()
                return
            if held is not None and self._hold is not None and self._hold[0] in data:
                held.append((data, self._hold[1]))
                self._hold = None
                pumps.cancel_scope.cancel()
                return
            await self._thawed.wait()
            if self._delay:
                await trio.sleep(self._delay)
            await sink.send_all(data)

    async def _deliver_late(self, client: trio.abc.Stream, server: trio.abc.Stream, data: bytes, seconds: float) -> None:
        """A request a proxy held: read the rest of it, cut the client, deliver it ``seconds``
        later on a connection of its own (the server ends idle ones; its answer is discarded)."""
        self.held += 1
        try:
            with trio.move_on_after(REQUEST_TAIL_S):
                while more := await client.receive_some(CHUNK):
                    data += more
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        with trio.CancelScope(shield=True):
            await client.aclose()
            await server.aclose()
        await trio.sleep(seconds)
        try:
            async with await self.connect() as late:
                await late.send_all(data)
                with trio.move_on_after(10):
                    await late.receive_some(CHUNK)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
