"""The OpenAPI 3.1 description of the admin API (``GET /openapi.json``), generated from its routes.

Nothing here describes the API a second time: every part comes from what the code runs on.

- paths and operations: the ``Route`` table (``actors.api.admin``), the handler's name as the
  ``operationId``; path parameters with the id rules' own patterns (``actors.core.ids``,
  ``actors.core.operations.PATH_ID``);
- query parameters: the fields of the route's query struct (``actors.api.query``) with their
  types, bounds, defaults and descriptions;
- bodies: the msgspec structs the handlers decode and answer (``msgspec.json.schema_components``
  over ``actors.api.schemas`` and ``actors.api.views``); a submission's payload per operation from
  the operation table (``actors.core.operations.OPERATIONS``: required, one-of and optional
  fields, formats), one alternative per operation;
- the statuses each route answers: its success statuses, the errors its path, query and body
  imply, those it declares, 401 with ``WWW-Authenticate`` where a token is required;
- security: ``bearer`` (``SIKKA_API_TOKEN``) on the TCP listener, none on the Unix socket (the
  document says which it was asked on); Sikka's webhook proves itself with ``callback-key``;
- links from every answer carrying an id (a submitted writeback's ``writeback_id`` and
  ``office_id``, the first item of a list) to the operations that take it.

A route whose answer is a ``Media`` (``/metrics``: Prometheus text; the web console's HTML pages)
is published with that media type.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.api import views
from actors.api.router import Media, Route
from actors.api.schemas import SubmitBody
from actors.api.version import VERSION
from actors.core.operations import FORMATS, OPERATIONS, PATH_ID, OperationSpec

REF = "#/components/schemas/{name}"
PATH_PARAMETERS = {
    "office_id": views.OfficeId,
    "writeback_id": views.WritebackId,
    "appointment_sr_no": views.SikkaPathId,
    "patient_id": views.SikkaPathId,
}
ERRORS = {  # status: what it means and the codes it carries (interface section 4)
    400: "bad input: bad_json, missing_field, invalid_field, unknown_field, unknown_operation, bad_parameter",
    401: "unauthorized: the bearer token (TCP) or the webhook's callback-key is missing or wrong",
    404: "unknown_practice (offboarded ones too), unknown_writeback, not_found",
    409: "idempotency_conflict, not_cancellable, writebacks_in_flight",
    413: "too_large: a body over 1 MiB",
    502: "upstream_error: Sikka answered with an error",
    503: "practice_unavailable, upstream_rate_limited, upstream_quota, upstream_spu_offline, database_unavailable",
    504: "upstream_timeout: Sikka did not answer in time",
}
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "SIKKA_API_TOKEN: required on the TCP listener (SIKKA_HTTP_LISTEN); the Unix socket is "
        "guarded by its file mode and takes none",
    },
    "callbackKey": {"type": "apiKey", "in": "header", "name": "callback-key",
                    "description": "SIKKA_WEBHOOK_CALLBACK_KEY, as Sikka sends it"},
}
NON_BLANK = r"[^\s\x1c-\x1f\x85]"  # what str.strip() keeps (ECMA's \s lacks \x1c-\x1f and \x85)
_FILLED = {"anyOf": [{"type": "string", "pattern": NON_BLANK}, {"type": "number"}]}  # a value that is not blank


class _Schemas:
    """JSON schemas of msgspec types, their named parts gathered as components."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, type_: Any) -> dict:
        (schema,), components = msgspec.json.schema_components([type_], ref_template=REF)
        self.components.update(components)
        return schema


def _parameters(route: Route, schemas: _Schemas) -> list[dict]:
    out = []
    for name in route.parameters:
        schema = schemas.of(PATH_PARAMETERS[name])
        out.append(_parameter(name, "path", True, schema))
    fields = msgspec.structs.fields(route.query) if route.query is not None else ()
    for field in fields:
        schema = schemas.of(field.type)
        default = field.default_factory() if field.default_factory is not msgspec.NODEFAULT else field.default
        if not field.required and default is not None:
            schema["default"] = default
        out.append(_parameter(field.name, "query", field.required, schema))
    return out


def _parameter(name: str, where: str, required: bool, schema: dict) -> dict:
    description = schema.pop("description", None)
    described = {"description": description} if description else {}
    return {"name": name, "in": where, "required": required, **described, "schema": schema}


def _payload_field(spec: OperationSpec, name: str) -> dict:
    """What one payload field may be: strings as Sikka wants them, numbers converted."""
    if name == spec.path_field:
        return {"anyOf": [{"type": "string", "pattern": PATH_ID.pattern}, {"type": "number"}]}
    if name in FORMATS:
        pattern = {"type": "string", "pattern": f"^{FORMATS[name].pattern}$"}
        if name == "length":
            return {"anyOf": [pattern, {"type": "integer", "minimum": 1}]}
        return {**pattern, "format": "date"} if name in ("date", "birthdate") else pattern
    return _FILLED if name in spec.required else {"type": ["string", "number"]}


def payload_schema(spec: OperationSpec) -> dict:
    """The payload of ``spec``'s operation (``actors.core.operations.prepare``'s rules)."""
    names = spec.required + spec.one_of + spec.optional
    schema: dict[str, Any] = {
        "title": f"{spec.name} payload",
        "type": "object",
        "properties": {name: _payload_field(spec, name) for name in names},
        "required": list(spec.required),
        "additionalProperties": False,
    }
    if spec.one_of:  # at least one of them, not blank
        schema["anyOf"] = [{"required": [name], "properties": {name: _FILLED}} for name in spec.one_of]
    return schema


def _submission(schemas: _Schemas) -> dict:
    """``SubmitBody`` with, for each operation, its payload's fields."""
    schemas.of(SubmitBody)
    envelope = schemas.components["SubmitBody"]
    alternatives = []
    for name, spec in OPERATIONS.items():
        payload = f"{name}_payload"
        schemas.components[payload] = payload_schema(spec)
        properties = {**envelope["properties"], "operation": {"const": name},
                      "payload": {"$ref": REF.format(name=payload)}}
        alternatives.append({**envelope, "title": name, "properties": properties})
    return {"oneOf": alternatives}


def _content(answer: Any, schemas: _Schemas) -> dict:
    if isinstance(answer, Media):
        return {answer.media_type.split(";")[0]: {"schema": {"type": "string"}}}
    return {"application/json": {"schema": schemas.of(answer)}}


def _ids(struct: type[msgspec.Struct]) -> set[str]:
    """The path parameters a struct always carries (a field that may be null does not count)."""
    return {f.name for f in msgspec.structs.fields(struct) if f.name in PATH_PARAMETERS and f.type == PATH_PARAMETERS[f.name]}


def _ids_in(answer: Any) -> dict[str, str]:
    """The path parameters an answer carries, as runtime expressions (a list's first item)."""
    if not (isinstance(answer, type) and issubclass(answer, msgspec.Struct)):
        return {}
    found = {name: f"$response.body#/{name}" for name in _ids(answer)}
    fields = msgspec.structs.fields(answer)
    if not found and len(fields) == 1:
        item = msgspec.inspect.type_info(fields[0].type)
        if isinstance(item, msgspec.inspect.ListType) and isinstance(item.item_type, msgspec.inspect.StructType):
            found = {p: f"$response.body#/{fields[0].name}/0/{p}" for p in _ids(item.item_type.cls)}
    return found


def _links(route: Route, routes: list[Route]) -> dict:
    ids = _ids_in(route.answer)
    return {
        target.operation_id: {"operationId": target.operation_id,
                              "parameters": {p: ids[p] for p in target.parameters}}
        for target in routes
        if target is not route and target.follow and target.parameters and set(target.parameters) <= set(ids)
    }


def _responses(route: Route, routes: list[Route], schemas: _Schemas, bearer: bool) -> dict:
    content = _content(route.answer, schemas)
    out: dict[str, Any] = {}
    for status in route.statuses:
        out[str(status)] = {"description": route.summary, "content": content}
    links = _links(route, routes)
    if links:
        out[str(route.statuses[0])]["links"] = links
    error = {"application/json": {"schema": {"$ref": REF.format(name="Error")}}}
    statuses: set[int] = set()
    if route.query is not None or route.body is not None or set(route.parameters) - {"office_id", "writeback_id"}:
        statuses.add(400)
    if route.parameters:
        statuses.add(404)
    if route.body is not None:
        statuses.add(413)
    if route.database:
        statuses.add(503)
    for declared in route.errors:
        if isinstance(declared, tuple):
            status, body = declared
            out[str(status)] = {"description": route.summary, "content": _content(body, schemas)}
        else:
            statuses.add(declared)
    for status in sorted(statuses):
        out[str(status)] = {"description": ERRORS[status], "content": error}
    if bearer and route.path != "/webhooks/sikka":
        out["401"] = {"description": ERRORS[401], "content": error,
                      "headers": {"WWW-Authenticate": {"required": True, "schema": {"const": "Bearer"}}}}
    return dict(sorted(out.items()))


def _operation(route: Route, routes: list[Route], schemas: _Schemas, bearer: bool) -> dict:
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.operation_id,
        "parameters": _parameters(route, schemas),
        "responses": _responses(route, routes, schemas, bearer),
    }
    if route.body is SubmitBody:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _submission(schemas)}}}
    elif route.body is not None:
        operation["requestBody"] = {"required": route.body_required,
                                    "content": {"application/json": {"schema": schemas.of(route.body)}}}
    if route.path == "/webhooks/sikka":
        operation["security"] = [{"callbackKey": []}]
    return operation


def openapi_document(routes: list[Route], *, bearer: bool) -> dict:
    """The OpenAPI 3.1 description of ``routes``; ``bearer``: as the TCP listener serves it."""
    schemas = _Schemas()
    schemas.of(views.Error)
    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, routes, schemas, bearer)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sikka Supervisor admin API",
            "version": VERSION,
            "description": "The admin API of interface section 4, on the Unix socket and, with SIKKA_HTTP_LISTEN, "
            "on TCP with a bearer token. Every error is {error, detail, field}.",
        },
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.components.items())), "securitySchemes": SECURITY_SCHEMES},
        "security": [{"bearer": []}] if bearer else [],
    }
