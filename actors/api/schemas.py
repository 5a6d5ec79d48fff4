"""Request bodies, decoded with msgspec into structs that state every field's rule.

``decode_body(body, SubmitBody)`` is the one decoder (the router calls it for a route's ``body``):
a struct forbids unknown fields, and each msgspec failure becomes the admin API's 400 naming the
field (``missing_field``, ``unknown_field``, ``invalid_field``, ``unknown_operation`` for an
operation not in the table; ``bad_json`` for text that is not JSON). What a field's type and
``msgspec.Meta`` constraints cannot say (each operation's payload fields) is
``actors.core.operations.normalize``, and ``/openapi.json`` publishes it from the same table;
``canonical`` is the normalized payload's one byte form, digested for idempotency and sealed in
the log.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import msgspec

from actors.api.errors import ApiError
from actors.api.views import OfficeId, Operation

DEADLINE_MAX_S = 10 * 366 * 86400.0  # ten years; far larger values overflow the datetime arithmetic

IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
"""1 to 200 characters, no NUL (PostgreSQL text cannot hold one)."""
DeadlineSeconds = Annotated[float, msgspec.Meta(gt=0, le=DEADLINE_MAX_S)]


class SubmitBody(msgspec.Struct, forbid_unknown_fields=True):
    """A writeback to queue: the operation, its payload (values as strings, numbers converted),
    an optional idempotency key (the same key with the same request answers the writeback it
    made) and seconds to its deadline (default SIKKA_DEADLINE)."""

    operation: Operation
    payload: dict[str, Any]
    idempotency_key: IdempotencyKey | None = None
    deadline_s: DeadlineSeconds | None = None


class OnboardBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /onboard``: without a body, every authorized practice; with ``office_id``, that
    practice only, an offboarded one included (it comes back through the authorization flow)."""

    office_id: OfficeId


UNKNOWN_VALUE_CODES = {"operation": "unknown_operation"}  # a value outside the field's enumeration

_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_AT = re.compile(r"at `\$\.([A-Za-z0-9_]+)")


def decode_body(body: bytes, type_):
    """``type_`` from JSON ``body``, or the admin API's 400 naming the field."""
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if m := _MISSING.search(text):
            raise ApiError(400, "missing_field", f"the field {m[1]!r} is required", m[1]) from None
        if m := _UNKNOWN.search(text):
            raise ApiError(400, "unknown_field", f"unknown field {m[1]!r}", m[1]) from None
        field = m[1] if (m := _AT.search(text)) else None
        if text.startswith("Invalid enum value") and field in UNKNOWN_VALUE_CODES:
            value = text.removeprefix("Invalid enum value ").split(" - at ")[0]
            raise ApiError(400, UNKNOWN_VALUE_CODES[field], f"unknown {field} {value}", field) from None
        raise ApiError(400, "invalid_field", text, field) from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    except RecursionError:  # msgspec follows nesting as deep as the 1 MiB body allows
        raise ApiError(400, "bad_json", "the body nests too deeply") from None


def canonical(payload: dict[str, str]) -> bytes:
    """The normalized payload's one byte form (sorted keys, no spaces)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
