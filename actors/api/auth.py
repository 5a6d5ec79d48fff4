"""Authentication on the request head: the admin API's bearer token on TCP, and Sikka's webhook
key wherever the webhook is called.

The Unix socket is guarded by its file mode and group; the TCP listener is not, so its
connections are served with ``authorize=check_head(SIKKA_API_TOKEN, SIKKA_WEBHOOK_CALLBACK_KEY)``:
the connection loop (``actors.api.http``) calls it on each request's head, before a byte of the
body is read. Every request needs ``Authorization: Bearer <token>`` (the scheme's name in any
case, RFC 9110) but the Sikka webhook, which proves itself with its ``callback-key`` instead
(``webhook_refusal``: 404 while no key is configured, 401 for a wrong one; the webhook handler
applies the same rule on the socket). Both are compared in constant time (``Secret.matches``).
A refused request is answered 401 with ``WWW-Authenticate: Bearer`` and its connection closed:
an unauthenticated client never gets the server to read a body or reach a handler.

The web console (``/ui/``) has a rule of its own, passed as ``console``
(``actors.api.console.session.Gate.check``): a browser cannot send the bearer token, so a console
request may instead carry a valid session cookie, and one without either is sent to the login
form (303) rather than answered 401. The cookie opens only ``/ui/``: every other path still
needs the token.
"""

from __future__ import annotations

from collections.abc import Mapping

from actors.api.console.session import is_console_path
from actors.api.errors import ApiError
from actors.api.http import Authorize, Request, Response
from actors.core.secret import Secret

WEBHOOK_PATH = "/webhooks/sikka"

UNAUTHORIZED = ApiError(
    401, "unauthorized", "a valid bearer token is required", headers=(("WWW-Authenticate", "Bearer"),)
).response()


def webhook_refusal(callback_key: Secret | None, headers: Mapping[str, str]) -> ApiError | None:
    """Why a webhook call is refused (``None``: it carries the configured ``callback-key``)."""
    if not callback_key:
        return ApiError(404, "not_found", "the webhook is not configured")
    if not callback_key.matches(headers.get("callback-key", "")):
        return ApiError(401, "unauthorized", "wrong or missing callback-key")
    return None


def bearer_matches(token: Secret, headers: Mapping[str, str]) -> bool:
    """``Authorization: Bearer <token>``, the scheme's name in any case (RFC 9110)."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token.matches(credentials.strip())


def check_head(token: Secret, callback_key: Secret | None, console: Authorize | None = None) -> Authorize:
    """The TCP listener's check of a request head (see the module docstring)."""

    def check(head: Request) -> Response | None:
        if head.path == WEBHOOK_PATH:
            refusal = webhook_refusal(callback_key, head.headers)
            return refusal.response() if refusal else None
        if bearer_matches(token, head.headers):
            return None
        return console(head) if console is not None and is_console_path(head.path) else UNAUTHORIZED

    return check
