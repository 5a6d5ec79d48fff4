"""The console's sessions on TCP: a signed, expiring cookie, CSRF tokens, one-time login links.

On ``SIKKA_HTTP_LISTEN`` a browser cannot send the bearer token, so the login form exchanges it
(``SIKKA_API_TOKEN``, compared in constant time) for a session cookie; ``sikka-supervisor
console`` exchanges the one-time token of the URL it prints instead (``OneTimeToken``). The
cookie is ``<expiry>.<nonce>.<HMAC-SHA256(key, expiry.nonce)>``: ``HttpOnly`` (no script reads
it), ``SameSite=Strict`` (no other site's page makes the browser send it), ``Path=/ui/``,
``Max-Age`` = ``SESSION_S`` and, behind TLS, ``Secure`` (``secure_request``).

The key is a per-process random key (32 bytes from ``secrets``), not one derived from the
secrets key: a session then proves only that this process handed it out, a restart (which is
also the only way the API token changes) ends every session, and nothing about the Fernet keys
or the API token can be learnt from a cookie. The price: behind a load balancer that spreads
one browser over several supervisors, log in to each (or make the balancer sticky).

Every state-changing form carries a CSRF token, ``HMAC(key, "csrf|" + binding)``: the binding is
the session's nonce for a cookie, ``"bearer"`` for a request that carries the API token itself
and ``"socket"`` on the admin socket (no session there: the socket's file mode is the check). A
page of another site can neither read it (same-origin policy) nor guess it. Logging out revokes
the nonce until the cookie would have expired.

``Gate.check`` is the console's rule on a request head (the connection loop's ``authorize``
hook, before any body is read): the login page and the static files are open, every other
``/ui/`` request needs a valid session, else it is sent to the login page (303).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

from actors.api.http import Request, Response

PREFIX = "/ui/"
LOGIN_PATH = "/ui/login"
STATIC_PREFIX = "/ui/static/"
COOKIE = "sikka_console"
SESSION_S = 8 * 3600  # a working day: then log in again


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cookies(headers: Mapping[str, str]) -> dict[str, str]:
    """The request's cookies (``Cookie: a=1; b=2``), by name."""
    found: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            found.setdefault(name.strip(), value.strip())
    return found


def secure_request(headers: Mapping[str, str]) -> bool:
    """Whether the browser reached us over TLS (a proxy in front terminates it): the proxy says
    so (``X-Forwarded-Proto: https``) or the browser's ``Origin`` is ``https://``. Either only
    ever adds ``Secure`` to the cookie, so neither needs a list of trusted proxies."""
    forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded == "https" or headers.get("origin", "").lower().startswith("https://")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a console path of this server, else the overview."""
    if not target or not target.startswith(PREFIX) or target.startswith(LOGIN_PATH) or "\\" in target:
        return PREFIX
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else PREFIX


class Sessions:
    """Signed session cookies and CSRF tokens under a per-process random key (module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time, key: bytes | None = None):
        self._key = key if key is not None else secrets.token_bytes(32)
        self._clock = clock
        self._revoked: dict[str, float] = {}  # nonce → when its cookie would expire

    def _mac(self, purpose: str, text: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}|{text}".encode(), hashlib.sha256).digest())

    def mint(self) -> str:
        """A new session's cookie value."""
        signed = f"{int(self._clock()) + SESSION_S}.{secrets.token_urlsafe(16)}"
        return f"{signed}.{self._mac('session', signed)}"

    def nonce(self, headers: Mapping[str, str]) -> str | None:
        """The nonce of the request's session when its cookie is ours, unexpired and not revoked."""
        value = cookies(headers).get(COOKIE, "")
        expires, _, rest = value.partition(".")
        nonce, _, mac = rest.partition(".")
        if not (expires.isascii() and expires.isdigit() and len(expires) <= 12 and nonce and mac):
            return None
        if not hmac.compare_digest(mac.encode(), self._mac("session", f"{expires}.{nonce}").encode()):
            return None
        if int(expires) <= self._clock() or nonce in self._revoked:
            return None
        return nonce

    def revoke(self, nonce: str) -> None:
        """Log the session out (its cookie is refused from now on)."""
        now = self._clock()
        self._revoked = {n: t for n, t in self._revoked.items() if t > now}
        self._revoked[nonce] = now + SESSION_S

    def csrf(self, binding: str) -> str:
        """The CSRF token of forms shown to ``binding`` (a session nonce, "bearer" or "socket")."""
        return self._mac("csrf", binding)

    def csrf_matches(self, binding: str, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.csrf(binding).encode())

    @staticmethod
    def set_cookie(value: str, *, secure: bool) -> tuple[str, str]:
        flags = f"; Path={PREFIX}; Max-Age={SESSION_S}; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
        return "Set-Cookie", f"{COOKIE}={value}{flags}"

    @staticmethod
    def clear_cookie() -> tuple[str, str]:
        return "Set-Cookie", f"{COOKIE}=; Path={PREFIX}; Max-Age=0; HttpOnly; SameSite=Strict"


class OneTimeToken:
    """The login token of the URL ``sikka-supervisor console`` prints: good for one login."""

    def __init__(self) -> None:
        self.value = secrets.token_urlsafe(32)
        self.spent = False

    def redeem(self, given: str) -> bool:
        """Whether ``given`` is the token, unspent; it is spent from now on."""
        if self.spent or not hmac.compare_digest(given.encode(), self.value.encode()):
            return False
        self.spent = True
        return True


def is_console_path(path: str) -> bool:
    return path.startswith(PREFIX) or path == PREFIX.rstrip("/")


def to_login(target: str) -> Response:
    """303 to the login page, coming back to ``target`` afterwards."""
    return Response(303, b"", "text/plain", (("Location", f"{LOGIN_PATH}?next={quote(safe_next(target))}"),))


class Gate:
    """The console's rule on a request head (see the module docstring)."""

    def __init__(self, sessions: Sessions):
        self.sessions = sessions

    def check(self, head: Request) -> Response | None:
        if head.path == LOGIN_PATH or head.path.startswith(STATIC_PREFIX):
            return None
        if self.sessions.nonce(head.headers) is not None:
            return None
        return to_login(head.target or head.path)
