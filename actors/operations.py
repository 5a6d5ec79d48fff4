"""The six writeback operations (interface section 4) and how each maps onto Sikka. Pure.

``OPERATIONS[name]`` says which Sikka call an operation makes, which payload field (if any) goes
into the path, which fields are required, and which may appear. ``validate`` (the client issue)
turns a caller's payload into the exact string-typed body Sikka wants, or names the bad field.

Reconciliation (an ``unknown`` writeback looked up in ``GET /writebacks``) matches on office,
``method``, ``api_name`` (compared singular and case-insensitively) and every body field we sent,
against the item's URL-decoded ``api_request_body`` (which also carries the path id as ``id``).
"""

from __future__ import annotations

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


OPERATIONS: dict[str, OperationSpec] = {
    spec.name: spec
    for spec in (
        OperationSpec(
            name="book_appointment",
            method="POST",
            resource="appointment",
            required=("patient_id", "date", "time", "length", "provider_id", "operatory", "practice_id"),
            optional=("description", "type", "note", "guarantor_id", "procedure_codes", "staff", "user", "status"),
        ),
        OperationSpec(
            name="reschedule_appointment",
            method="PUT",
            resource="appointments",
            path_field="appointment_sr_no",
            required=("appointment_sr_no", "practice_id"),
            one_of=("date", "time", "length", "operatory", "provider_id", "status"),
            optional=("description", "schedule", "staff", "type"),
        ),
        OperationSpec(
            name="update_appointment_status",
            method="PATCH",
            resource="appointments",
            path_field="appointment_sr_no",
            required=("appointment_sr_no", "practice_id", "value"),
            optional=("status_changed_by", "staff", "cancellation_code_id", "cancellation_note"),
            fixed=(("op", "replace"), ("path", "/appointment_status")),
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
