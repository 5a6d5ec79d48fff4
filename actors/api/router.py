"""Routing: each endpoint declared once, matched, read and answered.

A ``Route`` is one endpoint and everything its description says: the path template
(``/practices/{office_id}``), matched against requests and published in ``/openapi.json``
(``actors.api.openapi``); its query parameters (a struct of ``actors.api.query``); its request
body (a struct of ``actors.api.schemas``); its answer (a struct of ``actors.api.views``, or a
``Media`` that is not JSON) and success statuses; the errors it can answer beyond those its path,
query and body imply. ``Router.dispatch`` answers one request::

    path matches a route? ── no ──► 404 not_found
      └─ method matches? ── no ──► 405 method_not_allowed, with Allow
           └─ path parameters percent-decoded once (D%31000 is D1000; the handler applies the id rule)
                └─ query read into the route's struct (400 bad_parameter naming the parameter)
                     └─ body decoded into the route's struct (400 naming the field)
                          └─ handler(request, **path parameters, query=, body=), its database calls
                             waiting SIKKA_DB_TIMEOUT altogether (store.db.answer_within; a long poll
                             renews it for each read, the onboarding flow bounds each call alone)
                               ├─ ApiError ──► its status, headers and {"error", "detail", "field"}
                               └─ store.db.DatabaseUnavailable ──► 503 database_unavailable, Retry-After
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import msgspec

from actors.api import query as parameters
from actors.api.errors import ApiError, database_unavailable
from actors.api.http import Request, Response
from actors.api.schemas import decode_body
from store.db import DatabaseUnavailable, answer_within


class Media(msgspec.Struct, frozen=True):
    """An answer that is not JSON: its media type (``text/plain`` for ``/metrics``; ``text/html``
    for the web console's pages)."""

    media_type: str


class Route(msgspec.Struct, frozen=True):
    """One endpoint (see the module docstring); the handler's name is its ``operationId``."""

    method: str
    path: str
    handler: Callable[..., Awaitable[Response]]
    summary: str
    answer: Any  # a views struct (JSON), or a Media
    statuses: tuple[int, ...] = (200,)  # the success statuses, all answering ``answer``
    query: type[msgspec.Struct] | None = parameters.NoQuery  # None: the query string is not read
    body: type[msgspec.Struct] | None = None
    body_required: bool = True
    errors: tuple[int | tuple[int, Any], ...] = ()  # beyond those the path, query and body imply; (status, body)
    database: bool = True  # reads or writes the database: 503 database_unavailable when it does not answer
    follow: bool = True  # a target of the links from answers that carry its ids (offboarding is not)

    @property
    def pattern(self) -> re.Pattern:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")

    @property
    def parameters(self) -> list[str]:
        """The path parameters' names, in order."""
        return re.findall(r"\{(\w+)\}", self.path)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


def _takes_query(route: Route) -> bool:
    return route.query is not None and bool(msgspec.structs.fields(route.query))


def find(compiled: list[tuple[Route, re.Pattern]], request: Request) -> tuple[Route | None, dict[str, str], list[str]]:
    """The route answering ``request`` and its raw path parameters; else ``None`` and the methods
    the path allows (405 when there are some, 404 when none)."""
    allowed: list[str] = []
    for route, pattern in compiled:
        m = pattern.match(request.path)
        if m is None:
            continue
        if route.method != request.method:
            allowed.append(route.method)
            continue
        return route, m.groupdict(), allowed
    return None, {}, allowed


class Router:
    """Answers a request with the handler of the route that matches it (see the module doc)."""

    def __init__(self, routes: list[Route], database_timeout: float | None = None):
        self._compiled = [(route, route.pattern) for route in routes]
        self.database_timeout = database_timeout

    async def dispatch(self, request: Request) -> Response:
        route, path, allowed = find(self._compiled, request)
        if route is not None:
            try:
                arguments = self._arguments(route, request, path)
                with answer_within(self.database_timeout):
                    return await route.handler(request, **arguments)
            except ApiError as exc:
                return exc.response()
            except DatabaseUnavailable as exc:
                return database_unavailable(str(exc)).response()
        if allowed:
            methods = ", ".join(sorted(set(allowed)))
            return ApiError(
                405, "method_not_allowed", f"{request.method} is not allowed on {request.path} (only {methods})",
                headers=(("Allow", methods),),
            ).response()
        return ApiError(404, "not_found", f"no endpoint {request.path}").response()

    @staticmethod
    def _arguments(route: Route, request: Request, path: dict[str, str]) -> dict[str, Any]:
        """The handler's arguments: path parameters decoded once, the query and the body read."""
        arguments: dict[str, Any] = {name: unquote(value) for name, value in path.items()}
        if route.query is not None:
            query = parameters.read(request, route.query)
            if _takes_query(route):
                arguments["query"] = query
        if route.body is not None:
            empty = not request.body.strip()
            arguments["body"] = None if empty and not route.body_required else decode_body(request.body, route.body)
        return arguments
