"""Bearer-token authentication of the admin API on TCP (``SIKKA_HTTP_LISTEN``).

The Unix socket is guarded by its file mode and group; the TCP listener is not, so its handler
is ``bearer_guard(SIKKA_API_TOKEN, admin.handle)``: every request but the Sikka webhook (which
proves itself with its callback-key) needs ``Authorization: Bearer <token>``, compared in
constant time (``Secret.matches``); any other request is answered 401 before it reaches
the admin API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from actors.api.http import Request, Response, json_response
from actors.core.secret import Secret

WEBHOOK_PATH = "/webhooks/sikka"

Handler = Callable[[Request], Awaitable[Response]]


def bearer_guard(token: Secret, handle: Handler) -> Handler:
    """The TCP listener's handler: every request but the webhook (which has its callback-key)
    needs ``Authorization: Bearer <SIKKA_API_TOKEN>``, compared in constant time."""
    expected = Secret(f"Bearer {token.reveal()}")

    async def guarded(request: Request) -> Response:
        given = request.headers.get("authorization", "")
        if request.path != WEBHOOK_PATH and not expected.matches(given):
            error = {"error": "unauthorized", "detail": "a valid bearer token is required", "field": None}
            return json_response(401, error)
        return await handle(request)

    return guarded
