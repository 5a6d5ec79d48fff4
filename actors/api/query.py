"""Query parameters and path ids: each route's parameters declared once, as a msgspec struct.

A route names its query struct (``Route.query``); the router reads the request's query string
into it with ``read`` before the handler runs, and ``/openapi.json`` publishes each field as a
query parameter (its type, bounds, default and description: ``actors.api.openapi``). The struct
is the one description: a parameter it does not name is 400 ``bad_parameter`` naming it, a value
it refuses is 400 ``bad_parameter`` naming the parameter and saying what it must be (the field's
``description``). A repeated parameter counts by its last value unless the field is a list
(``state``). An optional parameter that is absent is ``None``, a value no client can send
(``?since=null`` is not a time). Text values hold no control character (a NUL reaches no database, no Sikka call);
numbers are ASCII digits; times carry their zone.

``path_id`` applies the rule for the path ids Sikka gets (``actors.core.operations.PATH_ID``):
400 ``invalid_field`` otherwise.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import msgspec

from actors.api.http import Request
from actors.api.errors import ApiError
from actors.api.views import WritebackId, WritebackState
from actors.core.operations import PATH_ID

# no control character anywhere (C0, DEL, C1); no "$" (Python's also matches before a final "\n")
NO_CONTROL = r"^(?![\s\S]*[\x00-\x1f\x7f-\x9f])"

Text = Annotated[str, msgspec.Meta(pattern=NO_CONTROL, description="text without control characters")]
Limit = Annotated[int, msgspec.Meta(ge=1, le=500, description="a whole number from 1 to 500")]


def _wait_seconds(high: float):
    return Annotated[float, msgspec.Meta(ge=0, le=high, description=f"a number of seconds from 0 to {high:g}")]


class NoQuery(msgspec.Struct, forbid_unknown_fields=True):
    """A route that takes no query parameter."""


class WaitQuery(msgspec.Struct, forbid_unknown_fields=True):
    wait: _wait_seconds(60.0) = 0.0  # type: ignore[valid-type]


class WritebackListQuery(msgspec.Struct, forbid_unknown_fields=True):
    state: Annotated[list[WritebackState], msgspec.Meta(description="writeback states (the parameter may repeat)")] = []
    limit: Limit = 50
    before: Annotated[
        WritebackId,
        msgspec.Meta(description="the id of one of this practice's writebacks (the page starts after it)"),
    ] = None


class StatsQuery(msgspec.Struct, forbid_unknown_fields=True):
    since: Annotated[datetime, msgspec.Meta(tz=True, description="an RFC 3339 time with its zone (Z or +hh:mm)")] = None


class AppointmentsQuery(msgspec.Struct, forbid_unknown_fields=True):
    startdate: Annotated[date, msgspec.Meta(description="a date yyyy-mm-dd (default: today)")] = None
    enddate: Annotated[
        date, msgspec.Meta(description="a date yyyy-mm-dd, not before startdate (default: startdate + 7 days)")
    ] = None
    limit: Limit = 50


class SlotsQuery(msgspec.Struct, forbid_unknown_fields=True):
    date: Annotated[date, msgspec.Meta(description="a date yyyy-mm-dd")]
    provider_id: Text = None


class PatientsQuery(msgspec.Struct, forbid_unknown_fields=True):
    query: Annotated[
        str,
        msgspec.Meta(
            pattern=NO_CONTROL + r"[\s\S]*\S",
            description="a name, or phone digits (cell, home, work), without control characters",
        ),
    ]
    limit: Limit = 50


def _is_list(field: msgspec.structs.FieldInfo) -> bool:
    info = msgspec.inspect.type_info(field.type)
    while isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    return isinstance(info, msgspec.inspect.ListType)


def read(request: Request, spec: type[msgspec.Struct]):
    """The request's query string as ``spec``, or 400 ``bad_parameter`` naming the parameter."""
    lists = {f.name for f in msgspec.structs.fields(spec) if _is_list(f)}
    raw = {name: found if name in lists else found[-1] for name, found in request.query.items()}
    try:
        query = msgspec.convert(raw, spec, strict=False)
    except msgspec.ValidationError as exc:
        raise _refusal(spec, str(exc)) from None
    for field in msgspec.structs.fields(spec):
        value = getattr(query, field.name)
        if isinstance(value, datetime):
            setattr(query, field.name, _utc(field.name, value))
    return query


def _refusal(spec: type[msgspec.Struct], text: str) -> ApiError:
    if text.startswith("Object contains unknown field"):
        name = text.split("`")[1]
        return ApiError(400, "bad_parameter", f"unknown parameter {name!r}", name)
    if text.startswith("Object missing required field"):
        name = text.split("`")[1]
        return ApiError(400, "bad_parameter", f"the parameter {name!r} is required", name)
    name = text.rsplit("$.", 1)[-1].split("`")[0].split("[")[0]
    described = [f for f in msgspec.structs.fields(spec) if f.name == name]
    rule = _description(described[0]) if described else None
    said = text.split(" - at `")[0]
    named = f" (not {said.removeprefix('Invalid enum value ')})" if said.startswith("Invalid enum value") else ""
    return ApiError(400, "bad_parameter", f"{name} must be {rule}{named}" if rule else text, name)


def _description(field: msgspec.structs.FieldInfo) -> str | None:
    """What the field's values must be: its schema's description."""
    return msgspec.json.schema(field.type).get("description")


def _utc(name: str, value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ApiError(400, "bad_parameter", f"{name} is out of range", name) from None


def path_id(value: str, field: str) -> None:
    """Refuse a path id Sikka could not take as a path segment."""
    if not PATH_ID.fullmatch(value):
        raise ApiError(400, "invalid_field", f"{field} must be printable ASCII without spaces or : # ? / \\ % + =", field)

