"""What the simulator answers: the ``Response`` value and Sikka's documented error bodies.

Design: a ``Response`` is plain data (status, headers, JSON body) plus two instructions for the
shells in ``sim/http.py`` and ``sim/transport.py``: ``delay`` (the latency fault: wait before
answering) and ``cut`` (the ``drop_after_accept_rate`` fault: hang up without an answer). Every
answer is JSON, so the shells add ``Content-Type: CONTENT_TYPE`` and ``headers`` carries the rest.
``sikka_body(code)`` builds the six-field error (or acknowledgement) body of ``CODES``;
``invalid(field)`` is the synchronous 400 ``API1026`` that names the field.
"""

from __future__ import annotations

import msgspec

CONTENT_TYPE = "application/json; charset=utf-8"


class Response(msgspec.Struct):
    status: int
    headers: list[tuple[str, str]]  # Content-Type aside (always CONTENT_TYPE)
    body: bytes
    delay: float = 0.0  # seconds to wait before answering (latency fault)
    cut: bool = False  # drop the connection instead of answering

    def json(self):
        return msgspec.json.decode(self.body)


# error_code: (http status, http_code_desc, short_message, long_message, more_information)
CODES: dict[str, tuple[int, str, str, str, str]] = {
    "API0002": (200, "OK", "OK", "Request Session terminated successfully.", ""),
    "API0007": (200, "OK", "Appointment status logged successfully", "", ""),
    "API0011": (200, "OK", "Patient update request logged successfully", "", ""),
    "API2016": (201, "Created", "New resource created successfully", "", ""),
    "API4006": (200, "OK", "", "Writeback request deleted successfully.", ""),
    "API1001": (400, "BadRequest", "Missing Parameter", "ApplicationID is missing.",
                "Please provide the applicationid."),
    "API1002": (400, "BadRequest", "Missing Parameter", "ApplicationKey is missing.",
                "Please provide the applicationkey."),
    "API1004": (400, "BadRequest", "Missing Parameter", "Requestkey is missing/invalid",
                "Please provide correct requestkey"),
    "API1025": (400, "BadRequest", "Request key expired", "Request key is not valid, it is expired.",
                "Please generate new request key and make new request."),
    "API1026": (400, "BadRequest", "Missing/Invalid Parameter", "One of the parameter is missing or invalid.", ""),
    "API2001": (500, "InternalServerError", "Internal Error", "Internal Error.", "Please contact Sikka API Support."),
    "API2002": (503, "ServiceUnavailable", "Try again later.",
                "The Sikka APIs are up, but overloaded with requests. Try again later.", ""),
    "API2003": (401, "Unauthorized", "Authentication/Authorization Failed", "ID or key is incorrect.",
                "Please provide correct application id , application key or secret key."),
    "API2007": (401, "Unauthorized", "Authentication/Authorization Failed",
                "You are not authorized to access practice details with Sikka API.",
                "Practice details not accessible by you. Please contact practice and ask to allow access."),
    "API2009": (404, "NotFound", "Resource not found", "The resource you requested does not exist.",
                "The resource you requested does not exist."),
    "API2012": (429, "Too Many Requests", "Request limit exceeded", "Requests per practice per day exceeded",
                "Please make request to the datalimit API for more information."),
    "API2014": (405, "Method Not Allowed", "Method not allowed for the resource",
                "Requested method not allowed for the resource", "Please contact Sikka API support"),
    "API2017": (412, "Precondition Failed",
                "The server does not meet one of the preconditions that the requester put on the request.",
                "Sikka platform utility is offline", "--"),
    # The body of a per-minute 429 is undocumented: the six fields with an empty error_code.
    "": (429, "Too Many Requests", "Rate limit exceeded", "Too many requests in the current 60 second window.",
         "Retry after X-Rate-Limit-Reset seconds."),
}


def sikka_body(code: str, long: str | None = None, more: str | None = None, headers=()) -> Response:
    status, desc, short, dlong, dmore = CODES[code]
    body = {
        "http_code": str(status),
        "http_code_desc": desc,
        "error_code": code,
        "short_message": short,
        "long_message": dlong if long is None else long,
        "more_information": dmore if more is None else more,
    }
    return Response(status, [*headers], msgspec.json.encode(body))


def invalid(field: str, why: str = "is missing or invalid") -> Response:
    return sikka_body("API1026", f"Parameter '{field}' {why}.", field)


def json_response(obj, status: int = 200, headers=()) -> Response:
    return Response(status, [*headers], msgspec.json.encode(obj))
