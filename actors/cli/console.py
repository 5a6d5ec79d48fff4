"""``sikka-supervisor console [--port 0]``: the web console on a loopback port, for an operator
who forwards it over SSH (``ssh -L PORT:127.0.0.1:PORT host``), behind a one-time login link.

A process of its own, not the supervisor's: it listens on ``127.0.0.1:PORT`` (``0``: a free
port), checks that a supervisor answers on the admin socket (else exit 3, as every socket
command), prints ``http://127.0.0.1:PORT/ui/login?token=…`` on stdout and forwards every console
request to the admin socket, where the supervisor serves ``/ui/`` to whoever the socket's file
mode lets in. Nothing in the supervisor changes for it and it can reach nothing the operator
running it could not already reach with ``curl --unix-socket``; it never exposes the JSON API
(only ``/ui/``), and stopping it (Ctrl-C) ends every session it gave out.

Jupyter-style login: the token of the printed URL is good once (``OneTimeToken``); opening the
URL exchanges it for a session cookie of this process (``actors.api.console.session``:
HttpOnly, SameSite=Strict, signed with this process's random key, 8 hours) and every other
request must carry that cookie (the connection loop's head check, before any body is read).
Another browser needs a new run of the command. The audit lines of actions taken through it
name this process's uid (the socket peer).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from urllib.parse import quote

import httpx
import trio

from actors.api.console import render
from actors.api.console.pages import frame
from actors.api.console.session import LOGIN_PATH, PREFIX, Gate, OneTimeToken, Sessions, is_console_path
from actors.api.http import Request, Response, json_response, serve_connection, serve_listener
from actors.cli.client import CLIENT_TIMEOUT_S, EXIT_OK, Admin

MAX_CONNECTIONS = 64
FORWARDED = ("accept", "content-type", "x-console-live")  # request headers the console reads
NOT_FORWARDED_BACK = frozenset({"content-type", "content-length", "content-encoding", "transfer-encoding",
                                "connection", "keep-alive", "date", "server"})
NOT_FOUND = json_response(404, {"error": "not_found", "detail": "only the console (/ui/) is served here",
                                "field": None})


class ConsoleProxy:
    """The loopback listener's handler: the one-time login, then the admin socket's console."""

    def __init__(self, http: httpx.AsyncClient, sessions: Sessions, token: OneTimeToken):
        self.http = http
        self.sessions = sessions
        self.token = token
        self._gate = Gate(sessions)

    def authorize(self, head: Request) -> Response | None:
        """Only ``/ui/``, and there the console's rule: a session cookie of this process."""
        return self._gate.check(head) if is_console_path(head.path) else NOT_FOUND

    async def handle(self, request: Request) -> Response:
        if request.path == LOGIN_PATH:
            return self.login(request)
        return await self.forward(request)

    def login(self, request: Request) -> Response:
        given = (request.query.get("token") or [""])[-1]
        if request.method == "GET" and given and self.token.redeem(given):
            return render.redirect(PREFIX, (Sessions.set_cookie(self.sessions.mint(), secure=False),))
        if self.sessions.nonce(request.headers) is not None:
            return render.redirect(PREFIX)
        problem = "This login link was used already, or is not the one printed: run sikka-supervisor console again."
        return render.page(403, "login.html", title="Log in", problem=problem, form=False, next=PREFIX,
                           session_hours=0, **frame(None, live=False, now=datetime.now(UTC), node="console"))

    async def forward(self, request: Request) -> Response:
        headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
        try:
            answer = await self.http.request(request.method, request.target or request.path, content=request.body,
                                             headers=headers)
        except httpx.TransportError as exc:
            return render.page(502, "error.html", title="No supervisor", heading="No supervisor answers",
                               detail=f"The admin socket did not answer ({type(exc).__name__}); is the supervisor "
                               "running?", code=None, back=None,
                               **frame(None, live=False, now=datetime.now(UTC), node="console"))
        kept = tuple((k, v) for k, v in answer.headers.items() if k.lower() not in NOT_FORWARDED_BACK)
        return Response(answer.status_code, answer.content, answer.headers.get("content-type", "text/plain"), kept)


def login_url(port: int, token: OneTimeToken) -> str:
    return f"http://127.0.0.1:{port}{LOGIN_PATH}?token={quote(token.value)}"


async def serve_console(socket_path: Path, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve until SIGINT/SIGTERM (``task_status.started``: the login URL)."""
    transport = httpx.AsyncHTTPTransport(uds=str(socket_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=CLIENT_TIMEOUT_S) as http:
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        token = OneTimeToken()
        proxy = ConsoleProxy(http, Sessions(), token)
        connection = partial(serve_connection, handler=proxy.handle, authorize=proxy.authorize)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                for listener in listeners:
                    nursery.start_soon(partial(serve_listener, listener, connection, max_connections=MAX_CONNECTIONS))
                task_status.started(login_url(listeners[0].socket.getsockname()[1], token))
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()


def cmd_console(args: argparse.Namespace, socket_path: Path) -> int:
    admin = Admin(socket_path, timeout=10)
    try:
        admin.request("GET", "/health")  # nobody answers: SocketUnreachable, exit 3
    finally:
        admin.close()

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_console, socket_path, args.port)
            port = url.split(":")[2].split("/")[0]
            print(json.dumps({"url": url, "port": int(port)}) if args.json else url, flush=True)
            print(f"sikka-supervisor: the console of {socket_path} on 127.0.0.1:{port}; open the link above once "
                  f"(from another machine: ssh -L {port}:127.0.0.1:{port} <this host>); Ctrl-C stops it",
                  file=sys.stderr, flush=True)

    trio.run(run)
    return EXIT_OK
