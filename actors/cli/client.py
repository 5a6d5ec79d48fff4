"""The admin-socket client of the operator commands, and what their exit statuses mean.

Exit status: 0 success; 1 the operation failed; 2 bad usage, bad input or bad settings (one line
on stderr naming what is wrong, ``UsageError``); 3 the admin socket is unreachable
(``SocketUnreachable``); 4 ``--wait`` ran out.

- ``Admin.request``: one HTTP request on the admin socket (``settings.admin_socket``); a socket
  that does not answer raises ``SocketUnreachable``;
- ``finish``: the one place that turns an admin API answer into output and an exit status
  (2xx → 0; 400, and 404 for an office or writeback id that is not one of ours → 2, naming the
  API's ``detail`` and ``field``; any other error → 1). With ``--json`` the answer's body goes to
  stdout exactly as the API sent it; messages go to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SOCKET, EXIT_WAIT = 0, 1, 2, 3, 4
BAD_INPUT = {"unknown_practice", "unknown_writeback"}  # 404s that mean the id given is not one of ours
CLIENT_TIMEOUT_S = 120.0  # above the longest ?wait= and the slowest operator action


class UsageError(Exception):
    """Bad usage, input or settings: printed as one line, exit status 2."""


class SocketUnreachable(Exception):
    """Nothing answers on the admin socket; ``str()`` is the one line to print (exit status 3).
    ``refused``: no connection was made at all (no socket file, or nobody listening on it)."""

    def __init__(self, text: str, *, refused: bool):
        super().__init__(text)
        self.refused = refused


class Admin:
    def __init__(self, socket_path: Path, timeout: float = CLIENT_TIMEOUT_S):
        self.socket_path = socket_path
        self.http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://localhost", timeout=timeout
        )

    def request(self, method: str, path: str, *, params: Any = None, body: Any = None) -> httpx.Response:
        try:
            return self.http.request(method, path, params=params, json=body)
        except httpx.ConnectError as exc:
            raise SocketUnreachable(
                f"the admin socket {self.socket_path} is unreachable ({exc}); is the supervisor running?", refused=True
            ) from None
        except httpx.TransportError as exc:
            raise SocketUnreachable(
                f"the admin socket {self.socket_path} is unreachable: {type(exc).__name__} on {method} {path}",
                refused=False,
            ) from None

    def close(self) -> None:
        self.http.close()


def err(text: str) -> None:
    print(f"sikka-supervisor: {text}", file=sys.stderr)


def emit_body(r: httpx.Response) -> None:
    """The API's body exactly as sent (a newline added when it lacks one)."""
    text = r.text
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def emit_json(value) -> None:
    """A command's own result (no API answer behind it) as one JSON object on stdout."""
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def finish(r: httpx.Response, as_json: bool, render: Callable[[dict], None]) -> int:
    """Output for an admin API answer, and the exit status it means."""
    if as_json:
        emit_body(r)
    if r.is_success:
        if not as_json:
            render(r.json())
        return EXIT_OK
    try:
        error = r.json()
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    detail = error.get("detail") or r.text.strip() or r.reason_phrase
    field = error.get("field")
    code = error.get("error") or str(r.status_code)
    where = f" (field: {field})" if field else ""
    err(f"{code}: {detail}{where}")
    return EXIT_USAGE if r.status_code == 400 or code in BAD_INPUT else EXIT_FAILED
