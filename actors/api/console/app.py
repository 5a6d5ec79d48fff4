"""The console's routes and its rules: who may see a page, who may change something.

``Console.handle`` answers every ``/ui/`` request (``mount`` puts it in front of the admin API's
handler)::

    on the admin socket: Host a loopback name? (else 403: a DNS-rebound page of another site)
    route ── no route: 404, wrong method: 405 (HTML pages)
      └─ a page needs a viewer: on the socket, anyone (the file mode is the check); on TCP, a
         valid session cookie or the API token itself (else 303 to the login form; the
         listener's head check, ``session.Gate``, refused the request already)
           └─ POST: the form's CSRF token for this viewer (else 403, nothing done)
                └─ the page (``actors.api.console.pages``), or the action through the admin API

Reads and actions go through the admin API's own handlers, in process (``ApiClient``): the same
checks, the same answers, the same audit line (who: the socket peer, or "tcp"), and the
console sees the API's shapes of interface section 4 whatever builds them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import msgspec
import structlog

from actors.api.console import render, session
from actors.api.console.pages import ACTIONS, ApiClient, ConsoleError, Pages, Viewer
from actors.api.console.rates import RateHistory
from actors.api.console.session import LOGIN_PATH, PREFIX, SESSION_S, Sessions
from actors.api.http import Handler, Request, Response
from actors.api.auth import bearer_matches
from actors.api.errors import audit
from actors.api.router import Media, Route, find
from actors.core.secret import Secret
from actors.runtime.deps import Deps

log = structlog.get_logger("console")

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
HTML = Media("text/html")
FILES = Media("text/css, text/javascript or image/svg+xml")  # by the file's suffix
OWN_RULES = frozenset({LOGIN_PATH, "/ui/logout", "/ui/static/{name}"})  # routes that check their viewer themselves


def form(request: Request) -> dict[str, str]:
    """A posted ``application/x-www-form-urlencoded`` form, each field's last value."""
    fields = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


def host_name(headers) -> str:
    host = headers.get("host", "").strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class Console:
    """The web console (module docstring). ``api``: the admin API's handler; ``api_token``: the
    TCP login's token (``None``: no TCP listener)."""

    def __init__(
        self, api: Handler, deps: Deps, sessions: Sessions, *, rates: RateHistory | None = None,
        api_token: Secret | None = None, show_payloads: bool = False,
    ):
        self.sessions = sessions
        self.api_token = api_token
        self.node = deps.settings.node_id
        self.pages = Pages(ApiClient(api), deps, rates, show_payloads=show_payloads)
        pages = self.pages
        self.routes: list[Route] = [  # HTML pages: the console dispatches them itself (not the API's Router)
            Route("GET", "/ui/", pages.overview, "every practice, and the alerts that hold", HTML),
            Route("GET", "/ui/alerts", pages.alerts, "the alerts that hold", HTML),
            Route("GET", "/ui/practices/{office_id}", pages.practice,
                  "a practice: status, writebacks (?state=, ?before=), confirmation p50/p95, alerts, actions", HTML),
            Route("GET", "/ui/practices/{office_id}/{action}", pages.confirm,
                  "the confirmation step of pause, resume, refresh-token, retry-failed", HTML),
            Route("POST", "/ui/practices/{office_id}/{action}", pages.act, "the action, confirmed (CSRF token)",
                  HTML),
            Route("GET", "/ui/writebacks/{writeback_id}", pages.writeback,
                  "a writeback: its timeline from the event log, the Sikka calls made for it", HTML),
            Route("GET", LOGIN_PATH, self.login_form, "the login form (TCP)", HTML),
            Route("POST", LOGIN_PATH, self.login, "exchange the API token for a session cookie (TCP)", HTML),
            Route("POST", "/ui/logout", self.logout, "end the session (CSRF token)", HTML),
            Route("GET", "/ui/static/{name}", self.static, "the console's stylesheet, script and icon", FILES),
        ]
        self._compiled = [(route, route.pattern) for route in self.routes]

    # --- dispatch -----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        if request.path == PREFIX.rstrip("/"):
            return render.redirect(PREFIX)
        if request.peer != "tcp" and host_name(request.headers) not in LOOPBACK_HOSTS:
            return self._problem(403, "Refused", "On the admin socket the console answers only to a loopback Host "
                                 "(localhost, 127.0.0.1, [::1]).", None)
        route, parameters, allowed = find(self._compiled, request)
        if route is not None:
            return await self._answer(route, request, parameters)
        if allowed:
            response = self._problem(405, "Method not allowed", f"{request.method} is not allowed here.", None)
            return msgspec.structs.replace(response, headers=(*response.headers, ("Allow", ", ".join(allowed))))
        return self._problem(404, "Not found", f"The console has no page {request.path}.", None)

    async def _answer(self, route: Route, request: Request, parameters: dict[str, str]) -> Response:
        if route.path in OWN_RULES:
            return await route.handler(request, **parameters)
        viewer = self.viewer(request)
        if viewer is None:
            return session.to_login(request.target or request.path)
        if request.method == "POST" and not self.sessions.csrf_matches(viewer.binding, form(request).get("csrf", "")):
            log.warning("console.csrf_refused", who=request.peer, path=request.path)
            return self._problem(403, "Refused", "The form's CSRF token is missing or wrong: nothing was done. "
                                 "Reload the page and try again.", viewer)
        try:
            return await route.handler(request, viewer, **parameters)
        except ConsoleError as exc:
            return self._problem(exc.status, exc.heading, exc.detail, viewer, exc.code, exc.back)

    def viewer(self, request: Request) -> Viewer | None:
        """Who is looking: the socket's peer, a session, or a holder of the API token (TCP)."""
        if request.peer != "tcp":
            binding, in_session = "socket", False
        elif (nonce := self.sessions.nonce(request.headers)) is not None:
            binding, in_session = nonce, True
        elif self.api_token is not None and bearer_matches(self.api_token, request.headers):
            binding, in_session = "bearer", False
        else:
            return None
        return Viewer(binding=binding, session=in_session, csrf=self.sessions.csrf(binding))

    def _problem(self, status: int, heading: str, detail: str, viewer: Viewer | None, code: str | None = None,
                 back: str | None = None) -> Response:
        return render.page(status, "error.html", title=heading, heading=heading, detail=detail, code=code, back=back,
                           **self.pages.frame(viewer, live=False))

    # --- login, logout, static files ------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        target = session.safe_next(_last(request, "next"))
        if self.viewer(request) is not None:
            return render.redirect(target)
        return self._login_page(200, target, None)

    def _login_page(self, status: int, target: str, problem: str | None) -> Response:
        form_shown = self.api_token is not None
        if not form_shown:
            problem = problem or "This listener has no login: use the admin socket, or sikka-supervisor console."
        return render.page(status, "login.html", title="Log in", next=target, problem=problem, form=form_shown,
                           session_hours=SESSION_S // 3600, **self.pages.frame(None, live=False))

    async def login(self, request: Request) -> Response:
        fields = form(request)
        target = session.safe_next(fields.get("next"))
        if request.peer != "tcp":
            return render.redirect(target)
        if self.api_token is None or not self.api_token.matches(fields.get("token", "")):
            log.warning("console.login_refused", who=request.peer)
            return self._login_page(401, target, "Wrong token.")
        audit(request, "console_login")
        cookie = Sessions.set_cookie(self.sessions.mint(), secure=session.secure_request(request.headers))
        return render.redirect(target, (cookie,))

    async def logout(self, request: Request) -> Response:
        nonce = self.sessions.nonce(request.headers)
        if nonce is None:
            return render.redirect(LOGIN_PATH if request.peer == "tcp" else PREFIX)
        if not self.sessions.csrf_matches(nonce, form(request).get("csrf", "")):
            return self._problem(403, "Refused", "The form's CSRF token is missing or wrong: still logged in.",
                                 self.viewer(request))
        self.sessions.revoke(nonce)
        audit(request, "console_logout")
        return render.redirect(LOGIN_PATH, (Sessions.clear_cookie(),))

    async def static(self, request: Request, name: str) -> Response:
        found = render.static(name)
        return found if found is not None else self._problem(404, "Not found", f"No file {name}.", None)


def _last(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else None


def mount(console: Console, api: Handler) -> Callable[[Request], Awaitable[Response]]:
    """One handler for a listener: ``/ui/`` to the console, everything else to the admin API."""

    async def handle(request: Request) -> Response:
        if session.is_console_path(request.path):
            return await console.handle(request)
        return await api(request)

    return handle


__all__ = ["ACTIONS", "Console", "mount"]
