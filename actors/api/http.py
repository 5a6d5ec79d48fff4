"""A small HTTP/1.1 server on trio streams, built on h11: the one connection loop behind the admin
API (``supervisor.py``) and the simulator's server (``sim/http.py``).

``serve_connection(stream, handler)`` reads requests one after another on a kept-alive
connection, hands each complete ``Request`` to ``handler`` and writes its ``Response`` (with the
standard reason phrase). Bodies over ``max_body`` bytes are answered 413 without being read
further; malformed HTTP gets 400; both close the connection. A handler may answer ``None``: the
connection is then closed without a byte of answer (the simulator's ``cut``). With
``gzip_min_bytes`` set, bodies of at least that size go gzip-compressed to clients that accept
gzip. For Unix-socket connections the peer's uid comes from ``SO_PEERCRED`` (for audit lines);
``bind_unix_listener`` makes the admin socket.

The handler must not raise for bad input (it answers 4xx); an exception from it is a bug, and
the connection answers 500 and closes, without the traceback reaching the client.
"""

from __future__ import annotations

import grp
import gzip
import http
import os
import socket
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


async def serve_connection(stream: trio.abc.Stream, handler: Handler, *, max_body: int = MAX_BODY,
                           gzip_min_bytes: int | None = None) -> None:
    """Serve ``stream`` until the client closes it (see the module docstring)."""
    conn = h11.Connection(h11.SERVER)
    peer = peer_of(stream)
    try:
        while True:
            try:
                got = await _read_request(stream, conn, max_body)
            except _TooLarge:
                error = {"error": "too_large", "detail": f"the body is over {max_body} bytes", "field": None}
                await _send(stream, conn, json_response(413, error), close=True)
                return
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    error = {"error": "bad_parameter", "detail": f"malformed HTTP request: {exc}", "field": None}
                    await _send(stream, conn, json_response(exc.error_status_hint, error), close=True)
                return
            if got is None:
                return
            h11_request, body = got
            request = _request(h11_request, body, peer)
            try:
                response = await handler(request)
            except Exception as exc:  # a handler bug: answer 500 and close; the log gets the traceback
                log.error("http.handler_failed", path=request.path, method=request.method, exc_info=exc)
                tracking.capture(exc)
                error = {"error": "internal_error", "detail": "the server failed to answer", "field": None}
                await _send(stream, conn, json_response(500, error), close=True)
                return
            if response is None:
                return  # no answer at all: the finally clause closes the stream
            if gzip_min_bytes is not None and len(response.body) >= gzip_min_bytes and _accepts_gzip(h11_request):
                response = _gzipped(response)
            await _send(stream, conn, response)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        return
    finally:
        await stream.aclose()


async def _read_request(
    stream: trio.abc.Stream, conn: h11.Connection, max_body: int
) -> tuple[h11.Request, bytes] | None:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(_RECV)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
            length = dict(event.headers).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > max_body:
                raise _TooLarge
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_body:
                raise _TooLarge
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None
        else:  # h11.PAUSED
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


async def bind_unix_listener(path, *, mode: int = 0o600, group: str | None = None) -> trio.SocketListener:
    """A listener on a Unix socket at ``path``: a stale file from a killed run is replaced (after
    checking nobody answers on it); the file gets ``mode`` and, with ``group``, that group."""
    path = os.fspath(path)
    if os.path.exists(path):
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
    finally:
        os.umask(old_umask)
    if group is not None:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    os.chmod(path, mode)
    sock.listen(128)
    return trio.SocketListener(sock)
