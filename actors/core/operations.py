"""The six writeback operations (interface section 4) and how each maps onto Sikka. Pure.

``OPERATIONS[name]`` says which Sikka call an operation makes, which payload field (if any) goes
into the path, which fields are required, and which may appear. ``validate`` (the client issue)
turns a caller's payload into the exact string-typed body Sikka wants, or raises ``PayloadError``
naming the bad field; ``prepare`` also gives the method and path. Rules: unknown fields, values
that are neither strings nor numbers (numbers become decimal strings), missing required fields,
none of ``one_of``, bad formats (``date``/``birthdate`` a real yyyy-mm-dd date, ``time`` HH:mm
00:00-23:59, ``length`` a positive integer) and unsafe path ids are all refused. The path field
(``appointment_sr_no``, ``patient_id``) goes into the path only, never into the body. The
supervisor adds fixed fields itself: the status patch's ``op``/``path``, and ``check_spu=true``.

Reconciliation (an ``unknown`` writeback looked up in ``GET /writebacks``) matches on office,
``method``, ``api_name`` (compared singular and case-insensitively) and every body field we sent,
against the item's URL-decoded ``api_request_body`` (which also carries the path id as ``id``).
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Mapping
from datetime import date

import msgspec


class OperationSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    method: str  # HTTP method
    resource: str  # first path segment, e.g. "appointment" or "appointments"
    path_field: str | None = None  # payload field that becomes the path id
    required: tuple[str, ...]
    one_of: tuple[str, ...] = ()  # at least one of these must be present
    optional: tuple[str, ...] = ()
    fixed: tuple[tuple[str, str], ...] = ()  # body fields the supervisor sets itself

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(self.required + self.one_of + self.optional)

    def path(self, path_id: str | None = None) -> str:
        return f"/{self.resource}/{path_id}" if self.path_field else f"/{self.resource}"


# Sikka checks that the practice's SPU is online before accepting the writeback, and answers 412
# API2017 if not (nothing created: the writeback is deferred, not left pending at Sikka until the
# server comes back). Documented for every operation here but the medical note.
SPU_CHECK = ("check_spu", "true")

OPERATIONS: dict[str, OperationSpec] = {
    spec.name: spec
    for spec in (
        OperationSpec(
            name="book_appointment",
            method="POST",
            resource="appointment",
            required=("patient_id", "date", "time", "length", "provider_id", "operatory", "practice_id"),
            optional=("description", "type", "note", "guarantor_id", "procedure_codes", "staff", "user", "status"),
            fixed=(SPU_CHECK,),
        ),
        OperationSpec(
            name="reschedule_appointment",
            method="PUT",
            resource="appointments",
            path_field="appointment_sr_no",
            required=("appointment_sr_no", "practice_id"),
            one_of=("date", "time", "length", "operatory", "provider_id", "status"),
            optional=("description", "schedule", "staff", "type"),
            fixed=(SPU_CHECK,),
        ),
        OperationSpec(
            name="update_appointment_status",
            method="PATCH",
            resource="appointments",
            path_field="appointment_sr_no",
            required=("appointment_sr_no", "practice_id", "value"),
            optional=("status_changed_by", "staff", "cancellation_code_id", "cancellation_note"),
            fixed=(("op", "replace"), ("path", "/appointment_status"), SPU_CHECK),
        ),
        OperationSpec(
            name="create_patient",
            method="POST",
            resource="patient",
            required=("firstname", "lastname", "provider_id", "practice_id"),
            optional=(
                "middlename",
                "gender",
                "email",
                "birthdate",
                "cell",
                "homephone",
                "workphone",
                "other_phone",
                "guarantor_id",
                "address_line1",
                "address_line2",
                "city",
                "state",
                "zipcode",
                "user",
            ),
            fixed=(SPU_CHECK,),
        ),
        OperationSpec(
            name="update_patient",
            method="PATCH",
            resource="patient",
            path_field="patient_id",
            required=("patient_id", "practice_id"),
            one_of=(
                "salutation",
                "firstname",
                "middlename",
                "lastname",
                "preferred_name",
                "birthdate",
                "gender",
                "status",
                "type",
                "provider_id",
                "email",
                "cell",
                "homephone",
                "workphone",
                "address_line1",
                "address_line2",
                "city",
                "state",
                "zipcode",
            ),
            fixed=(SPU_CHECK,),
        ),
        OperationSpec(
            name="add_medical_note",
            method="POST",
            resource="medical_notes",
            required=("date", "patient_id", "type", "text", "provider_id", "practice_id"),
            optional=("description", "appointment_sr_no"),
        ),
    )
}


def api_name_matches(resource: str, api_name: str) -> bool:
    """Sikka names the api inconsistently ("appointment" vs "appointments"): compare singulars."""

    def singular(s: str) -> str:
        s = s.strip().strip("/").lower()
        return s[:-1] if s.endswith("s") else s

    return singular(resource) == singular(api_name)


# --- validation (the client issue) ------------------------------------------------------------

PAYLOAD_ERROR_CODES = ("missing_field", "invalid_field", "unknown_field", "unknown_operation")

# Characters Sikka forbids in a URI path segment (sikka-api.md section 8.4). Whitespace, control
# characters and non-ASCII are refused too: httpx would percent-encode them, and "%" is forbidden.
FORBIDDEN_PATH_CHARS = frozenset(':#?/\\%+=')
# A path id: printable ASCII but space and the characters above, and not "." or "..". Written out
# (not built) so that it reads the same in Python and in the ECMA-262 dialect of JSON Schema;
# ``/openapi.json`` publishes it as the path parameters' pattern.
PATH_ID = re.compile(r"""^(?!\.\.?$)[!"$&'()*,.0-9;<>@A-Z\[\]^_`a-z{|}~-]+$""")

# The payload fields with a format (``date`` and ``birthdate`` are also real dates); the whole
# value must match. ``/openapi.json`` publishes them as the fields' patterns.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
FORMATS = {
    "date": _DATE,
    "birthdate": _DATE,
    "time": re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d"),
    "length": re.compile(r"[1-9]\d*"),
}


class PayloadError(ValueError):
    """A payload Sikka must not see: ``code`` is one of ``PAYLOAD_ERROR_CODES``; ``field`` names
    the culprit (``None`` when no single field is to blame, e.g. "at least one of …")."""

    def __init__(self, field: str | None, code: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.code = code
        self.detail = detail


class SikkaRequest(msgspec.Struct, frozen=True):
    """What a validated operation sends: method, path (relative to the base URL) and body."""

    method: str
    path: str
    body: dict[str, str]


def _as_string(name: str, value: object) -> str:
    """Sikka wants every value as a string: numbers become decimal strings, nothing else converts."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError(name, "invalid_field", f"{name} must be a string or a number")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise PayloadError(name, "invalid_field", f"{name} must be a finite number")
    if value.is_integer():
        return str(int(value))
    return format(decimal.Decimal(repr(value)), "f")


def _check_format(name: str, value: str) -> None:
    pattern = FORMATS.get(name)
    if pattern is None:
        return
    if pattern is _DATE:
        try:
            ok = bool(_DATE.fullmatch(value)) and bool(date.fromisoformat(value))
        except ValueError:
            ok = False
        if not ok:
            raise PayloadError(name, "invalid_field", f"{name} must be a real date as yyyy-mm-dd")
    elif not pattern.fullmatch(value):
        rule = "HH:mm between 00:00 and 23:59" if name == "time" else "a positive integer (minutes)"
        raise PayloadError(name, "invalid_field", f"{name} must be {rule}")


def _check_path_id(name: str, value: str) -> None:
    if not PATH_ID.fullmatch(value):
        raise PayloadError(
            name, "invalid_field", f"{name} must be non-empty printable ASCII without spaces or any of : # ? / \\ % + ="
        )


def prepare(operation: str, payload: Mapping[str, object]) -> SikkaRequest:
    """Check ``payload`` for ``operation`` and build the exact request Sikka gets, or raise
    ``PayloadError``. The path field goes into the path only (Sikka's ``api_request_body`` shows
    it as ``id``); the fixed fields (``op``, ``path``) are added; every value is a string."""
    spec = OPERATIONS.get(operation)
    if spec is None:
        raise PayloadError("operation", "unknown_operation", f"unknown operation {operation!r}")
    if not isinstance(payload, Mapping):
        raise PayloadError("payload", "invalid_field", "payload must be an object")
    for name in sorted(payload):
        if name not in spec.allowed:
            raise PayloadError(name, "unknown_field", f"{operation} does not take {name!r}")
    fields = {name: _as_string(name, value) for name, value in payload.items()}
    for name in spec.required:
        if not fields.get(name, "").strip():
            raise PayloadError(name, "missing_field", f"{operation} needs {name}")
    if spec.one_of and not any(fields.get(name, "").strip() for name in spec.one_of):
        raise PayloadError(None, "missing_field", f"{operation} needs at least one of {', '.join(spec.one_of)}")
    for name, value in fields.items():
        _check_format(name, value)
    path_id = None
    if spec.path_field:
        path_id = fields.pop(spec.path_field)
        _check_path_id(spec.path_field, path_id)
    return SikkaRequest(method=spec.method, path=spec.path(path_id), body={**fields, **dict(spec.fixed)})


def normalize(operation: str, payload: Mapping[str, object]) -> dict[str, str]:
    """The caller's payload, checked for ``operation``, with every value as Sikka's string: what
    is stored (sealed) with a writeback and given to ``prepare`` again when it is sent. Unlike the
    Sikka body it keeps the path field and leaves out the fixed fields, so it prepares again."""
    prepare(operation, payload)
    return {name: _as_string(name, value) for name, value in payload.items()}
