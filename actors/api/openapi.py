"""The OpenAPI 3.1 description of the admin API, generated from its routes (``GET /openapi.json``).

Each ``Route`` is one operation: its path template, its summary, its handler's name as the
``operationId``, its path parameters; every operation answers a JSON object or the ``Error``
shape. The submission also publishes its request body, ``SubmitBody``'s JSON schema from
msgspec (the same struct that decodes it), and its 202.
"""

from __future__ import annotations

import msgspec

from actors.api.schemas import SubmitBody
from actors.api.router import Route
from actors.api.version import VERSION

OBJECT = {"application/json": {"schema": {"type": "object"}}}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}, "field": {"type": ["string", "null"]}},
    "required": ["error", "detail", "field"],
}


def _operation(route: Route) -> dict:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    operation = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in route.parameters
        ],
        "responses": {
            "200": {"description": "ok", "content": OBJECT},
            "4XX": {"description": "bad request", "content": error},
            "5XX": {"description": "unavailable", "content": error},
        },
    }
    if route.handler.__name__ == "submit":
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SubmitBody"}}},
        }
        operation["responses"]["202"] = {"description": "queued", "content": OBJECT}
    return operation


def openapi_document(routes: list[Route]) -> dict:
    """The OpenAPI 3.1 description of ``routes`` (kept in step by construction and by a test)."""
    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    _, components = msgspec.json.schema_components([SubmitBody], ref_template="#/components/schemas/{name}")
    components["Error"] = ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": "Sikka Supervisor admin API", "version": VERSION},
        "paths": paths,
        "components": {"schemas": components},
    }
