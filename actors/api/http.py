"""A small HTTP/1.1 server on trio streams, built on h11: the one connection loop behind the admin
API (``supervisor.py``) and the simulator's server (``sim/http.py``).

``serve_listener(listener, connection, max_connections=N)`` accepts connections and serves each
with ``serve_connection``; beyond N at a time a new connection is closed at once (each listener
counts its own, so the Unix socket keeps its capacity whatever happens on TCP), and running out
of file descriptors pauses accepting instead of failing.

``serve_connection(stream, handler)`` reads requests one after another on a kept-alive
connection, hands each complete ``Request`` to ``handler`` and writes its ``Response`` (with the
standard reason phrase)::

    wait for a request ── first: REQUEST_TIMEOUT_S from the connection; later: IDLE_TIMEOUT_S
      └─ its first byte ── the head and body within REQUEST_TIMEOUT_S, else closed
           └─ the head ── authorize(head)? refused: that answer, closed, the body never read
                │         Content-Length over max_body: 413, closed
                └─ the body (over max_body as it arrives: 413) ── handler ── the response

Malformed HTTP gets 400 and closes. A handler may answer ``None``: the connection is then
closed without a byte of answer (the simulator's ``cut``). With ``gzip_min_bytes`` set, bodies
of at least that size go gzip-compressed to clients that accept gzip. For Unix-socket
connections the peer's uid comes from ``SO_PEERCRED`` (for audit lines); ``bind_unix_listener``
makes the admin socket.

The handler must not raise for bad input (it answers 4xx); an exception from it is a bug, and
the connection answers 500 and closes, without the traceback reaching the client.
"""

from __future__ import annotations

import errno
import grp
import gzip
import http
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import h11
import msgspec
import structlog
import trio

from actors.monitoring import tracking

log = structlog.get_logger("http")

MAX_BODY = 1024 * 1024
REQUEST_TIMEOUT_S = 10.0  # a request (head and body) arrives within this; the first one, of the connection
IDLE_TIMEOUT_S = 60.0  # a kept-alive connection waits this long for the next request
ACCEPT_PAUSE_S = 0.1  # out of file descriptors: wait this long before accepting again
WARN_EVERY_S = 60.0  # a listener's "connections shed" warning at most this often
_RECV = 65536


class Request(msgspec.Struct, frozen=True):
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    peer: str  # "uid=N" on a Unix socket, "tcp" on TCP
    target: str = ""  # the request target as sent: path and query string, not decoded


class Response(msgspec.Struct, frozen=True):
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()  # more headers, written after Content-Type


Handler = Callable[[Request], Awaitable[Response | None]]  # None: close without answering
Authorize = Callable[[Request], Response | None]  # the head (body not read yet): None to go on, else the refusal


def json_response(status: int, value) -> Response:
    return Response(status, msgspec.json.encode(value))


def peer_of(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    if sock is None or sock.family != socket.AF_UNIX:
        return "tcp"
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return "unix"
    _pid, uid, _gid = struct.unpack("3i", creds)
    return f"uid={uid}"


class _TooLarge(Exception):
    pass


class _TimedOut(Exception):
    pass


class _Deadline:
    """When the request being read must have arrived: the first request within ``request_s`` of
    the connection; a later one may wait ``idle_s`` for its first byte, then has ``request_s``."""

    def __init__(self, request_s: float, idle_s: float):
        self.request_s, self.idle_s = request_s, idle_s
        self.at = trio.current_time() + request_s
        self.waiting = False  # between requests: no byte of the next one yet

    def next_request(self) -> None:
        self.at, self.waiting = trio.current_time() + self.idle_s, True

    def begun(self) -> None:
        if self.waiting:
            self.at, self.waiting = trio.current_time() + self.request_s, False


async def serve_connection(
    stream: trio.abc.Stream,
    handler: Handler,
    *,
    authorize: Authorize | None = None,
    max_body: int = MAX_BODY,
    gzip_min_bytes: int | None = None,
    request_s: float = REQUEST_TIMEOUT_S,
    idle_s: float = IDLE_TIMEOUT_S,
) -> None:
    """Serve ``stream`` until the client closes it, or idles or dawdles past the timeouts (see the
    module docstring)."""
    conn = h11.Connection(h11.SERVER)
    peer = peer_of(stream)
    deadline = _Deadline(request_s, idle_s)
    try:
        while True:
            try:
                got = await _read_request(stream, conn, deadline, max_body, peer, authorize)
            except _TooLarge:
                error = {"error": "too_large", "detail": f"the body is over {max_body} bytes", "field": None}
                await _send(stream, conn, json_response(413, error), close=True)
                return
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    error = {"error": "bad_parameter", "detail": f"malformed HTTP request: {exc}", "field": None}
                    await _send(stream, conn, json_response(exc.error_status_hint, error), close=True)
                return
            except _TimedOut:
                return
            if got is None:
                return
            h11_request, request = got
            if isinstance(request, Response):  # refused on its head: the body was never read
                await _send(stream, conn, request, close=True)
                return
            response = await _answer(handler, request)
            if response is None:
                return  # no answer at all: the finally clause closes the stream
            if gzip_min_bytes is not None and len(response.body) >= gzip_min_bytes and _accepts_gzip(h11_request):
                response = _gzipped(response)
            with trio.move_on_after(request_s) as sending:
                await _send(stream, conn, response, close=response.status == 500)
            if sending.cancelled_caught or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
            deadline.next_request()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        return
    finally:
        await stream.aclose()


async def _answer(handler: Handler, request: Request) -> Response | None:
    """The handler's answer; a handler bug is a 500 (the traceback goes to the log, not the client)."""
    try:
        return await handler(request)
    except Exception as exc:
        log.error("http.handler_failed", path=request.path, method=request.method, exc_info=exc)
        tracking.capture(exc)
        return json_response(500, {"error": "internal_error", "detail": "the server failed to answer", "field": None})


async def _read_request(
    stream: trio.abc.Stream, conn: h11.Connection, deadline: _Deadline, max_body: int, peer: str,
    authorize: Authorize | None,
) -> tuple[h11.Request, Request | Response] | None:
    """The next request, or the answer refusing it on its head (``authorize``, or a declared body
    over ``max_body``); ``None`` when the client closed."""
    h11_request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            with trio.move_on_at(deadline.at):
                data = await stream.receive_some(_RECV)
                deadline.begun()
                conn.receive_data(data)
                continue
            raise _TimedOut
        deadline.begun()
        if isinstance(event, h11.Request):
            h11_request = event
            length = dict(event.headers).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > max_body:
                raise _TooLarge
            refusal = authorize(_request(event, b"", peer)) if authorize is not None else None
            if refusal is not None:
                return event, refusal
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_body:
                raise _TooLarge
        elif isinstance(event, h11.EndOfMessage):
            assert h11_request is not None
            return h11_request, _request(h11_request, bytes(body), peer)
        else:  # h11.ConnectionClosed, h11.PAUSED
            return None


def _request(h11_request: h11.Request, body: bytes, peer: str) -> Request:
    raw_target = h11_request.target.decode("latin-1")
    target = urlsplit(raw_target)
    return Request(
        method=h11_request.method.decode(),
        path=target.path,
        query=parse_qs(target.query, keep_blank_values=True),
        headers={k.decode().lower(): v.decode("latin-1") for k, v in h11_request.headers},
        body=body,
        peer=peer,
        target=raw_target,
    )


def _accepts_gzip(h11_request: h11.Request) -> bool:
    accept = b",".join(v for k, v in h11_request.headers if k == b"accept-encoding")  # h11 lower-cases names
    return b"gzip" in accept.lower()


def _gzipped(response: Response) -> Response:
    body = gzip.compress(response.body, compresslevel=5)
    return msgspec.structs.replace(response, body=body, headers=(*response.headers, ("Content-Encoding", "gzip")))


async def _send(stream: trio.abc.Stream, conn: h11.Connection, response: Response, close: bool = False) -> None:
    headers = [("Content-Type", response.content_type), *response.headers,
               ("Content-Length", str(len(response.body)))]
    if close:
        headers.append(("Connection", "close"))
    data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
    data += conn.send(h11.Data(data=response.body)) if response.body else b""
    data += conn.send(h11.EndOfMessage())
    await stream.send_all(data)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:  # not a registered status code
        return b""


async def serve_listener(
    listener: trio.SocketListener,
    connection: Callable[[trio.SocketStream], Awaitable[None]],
    *,
    max_connections: int,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on ``listener`` and serve each with ``connection`` (``serve_connection``
    with its handler), at most ``max_connections`` at a time: beyond that a new connection is
    closed at once. Out of file descriptors, accepting pauses a moment (the connections being
    served are not disturbed). Warnings about either come at most once a minute."""
    where = _listener_name(listener)
    active = 0
    warned: dict[str, float] = {}

    def warn(event: str, **fields) -> None:
        now = trio.current_time()
        if now - warned.get(event, -WARN_EVERY_S) >= WARN_EVERY_S:
            warned[event] = now
            log.warning(event, listener=where, **fields)

    async def serve(stream: trio.SocketStream) -> None:
        nonlocal active
        try:
            await connection(stream)
        finally:
            active -= 1

    async with trio.open_nursery() as nursery:
        task_status.started()
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                warn("http.accept_paused", error=errno.errorcode.get(exc.errno, str(exc.errno)), active=active)
                await trio.sleep(ACCEPT_PAUSE_S)
                continue
            if active >= max_connections:
                warn("http.connections_shed", max_connections=max_connections)
                await stream.aclose()
                continue
            active += 1
            nursery.start_soon(serve, stream)


def _listener_name(listener: trio.SocketListener) -> str:
    name = listener.socket.getsockname()
    return name if isinstance(name, str) else f"{name[0]}:{name[1]}"


async def bind_unix_listener(path, *, mode: int = 0o600, group: str | None = None) -> trio.SocketListener:
    """A listener on a Unix socket at ``path``: a stale socket from a killed run is replaced (after
    checking nobody answers on it; anything else at the path is an error, never removed); the
    file gets ``mode`` and, with ``group``, that group."""
    path = os.fspath(path)
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(f"{path} exists and is not a socket")
        probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody listens: a stale socket
        else:
            raise OSError(f"another process is serving the admin socket {path}")
        finally:
            probe.close()
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(path)
        if group is not None:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        os.chmod(path, mode)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    return trio.SocketListener(sock)
