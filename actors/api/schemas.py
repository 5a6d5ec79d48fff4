"""Request bodies, decoded with msgspec into structs that state every field's rule.

``decode_body(body, SubmitBody)`` is the one decoder: a struct forbids unknown fields, and each
msgspec failure becomes the admin API's 400 naming the field (``missing_field``,
``unknown_field``, ``invalid_field``; ``bad_json`` for text that is not JSON). What a field's
type and ``msgspec.Meta`` constraints cannot say (the operation and its payload fields) is
``actors.core.operations.normalize``; ``canonical`` is the normalized payload's one byte form,
digested for idempotency and sealed in the log.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import msgspec

from actors.api.router import ApiError

DEADLINE_MAX_S = 10 * 366 * 86400.0  # ten years; far larger values overflow the datetime arithmetic

IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
"""1 to 200 characters, no NUL (PostgreSQL text cannot hold one)."""
DeadlineSeconds = Annotated[float, msgspec.Meta(gt=0, le=DEADLINE_MAX_S)]


class SubmitBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /practices/{office_id}/writebacks``: every field's rule is here (the operation and
    its payload fields: ``actors.core.operations.normalize``)."""

    operation: str
    payload: dict[str, Any]
    idempotency_key: IdempotencyKey | None = None
    deadline_s: DeadlineSeconds | None = None


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
        raise ApiError(400, "invalid_field", text, field) from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    except RecursionError:  # msgspec follows nesting as deep as the 1 MiB body allows
        raise ApiError(400, "bad_json", "the body nests too deeply") from None


def canonical(payload: dict[str, str]) -> bytes:
    """The normalized payload's one byte form (sorted keys, no spaces)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
