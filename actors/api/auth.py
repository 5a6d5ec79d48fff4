"""Bearer-token authentication of the admin API on TCP (``SIKKA_HTTP_LISTEN``).

The Unix socket is guarded by its file mode and group; the TCP listener is not, so its
connections are served with ``authorize=bearer(SIKKA_API_TOKEN)``: the connection loop
(``actors.api.http``) calls it on each request's head, before a byte of the body is read, and
every request but the Sikka webhook (which proves itself with its callback-key) needs
``Authorization: Bearer <token>``, compared in constant time (``Secret.matches``). Any other
request is answered 401 and its connection closed: an unauthenticated client never gets the
server to read a body or reach a handler.
"""

from __future__ import annotations

from actors.api.http import Authorize, Request, Response, json_response
from actors.core.secret import Secret

WEBHOOK_PATH = "/webhooks/sikka"

UNAUTHORIZED = json_response(
    401, {"error": "unauthorized", "detail": "a valid bearer token is required", "field": None}
)


def bearer(token: Secret) -> Authorize:
    """The TCP listener's check of a request head: every request but the webhook needs
    ``Authorization: Bearer <SIKKA_API_TOKEN>``."""
    expected = Secret(f"Bearer {token.reveal()}")

    def check(head: Request) -> Response | None:
        if head.path == WEBHOOK_PATH or expected.matches(head.headers.get("authorization", "")):
            return None
        return UNAUTHORIZED

    return check
