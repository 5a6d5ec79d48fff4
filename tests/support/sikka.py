"""Sikka's own example responses, loaded at test time from its published Postman collections
(vendored under ``tests/fixtures/``, see the README there).

- ``v4(name)`` / ``wb(name, method)``: a saved Postman example response (V4 and writeback collections)
  as an ``httpx.Response`` with its saved status and headers;
- ``doc_json(marker)``: a JSON sample quoted in a collection's descriptive text (the request_key
  answer, the 412 ``log_message`` body, the session-terminated ack).
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from actors.core.secret import Secret

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V4 = "sikka-api-v4.postman.json"
WB = "sikka-writeback-api.postman.json"

# The body is saved decoded; these headers would describe bytes we do not replay.
_TRANSPORT_HEADERS = {"content-encoding", "transfer-encoding", "content-length", "connection"}


@functools.cache
def collection(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _walk(item.get("item") or [])


def requests(name: str) -> Iterator[dict[str, Any]]:
    """Every request item (with its saved ``response`` list) of a collection."""
    return (item for item in _walk(collection(name)["item"]) if "request" in item)


def saved(name: str, request_name: str, method: str = "GET", index: int = 0) -> dict[str, Any]:
    matches = [
        response
        for item in requests(name)
        if item["name"] == request_name and item["request"].get("method") == method
        for response in item.get("response") or []
    ]
    return matches[index]


def status_of(response: dict[str, Any]) -> int:
    """The saved code, else the one in Postman's free-text status ("If successfull : 201 Created")."""
    if response.get("code"):
        return int(response["code"])
    found = re.search(r"\b([1-5]\d\d)\b", response.get("status") or "")
    return int(found.group(1)) if found else 200


def headers_of(response: dict[str, Any]) -> list[tuple[str, str]]:
    return [(h["key"], h["value"]) for h in response.get("header") or [] if h["key"].lower() not in _TRANSPORT_HEADERS]


def as_httpx(response: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status_of(response), headers=headers_of(response), content=(response.get("body") or "").encode())


def v4(request_name: str, index: int = 0) -> dict[str, Any]:
    return saved(V4, request_name, "GET", index)


def wb(request_name: str, method: str, index: int = 0) -> dict[str, Any]:
    return saved(WB, request_name, method, index)


def body_json(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def _descriptions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield value
            elif key == "description" and isinstance(value, dict):
                yield value.get("content") or ""
            else:
                yield from _descriptions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _descriptions(value)


def doc_json(marker: str) -> dict[str, Any]:
    """The first JSON object quoted in a ``<code>`` block of any description that contains ``marker``."""
    for name in (V4, WB):
        for text in _descriptions(collection(name)):
            for block in re.findall(r"<code[^>]*>(.*?)</code>", text, re.S):
                code = html.unescape(block)
                if marker in code:
                    return json.loads(code[code.index("{") : code.rindex("}") + 1])
    raise LookupError(marker)


# --- test doubles' credentials (fake) and a tiny envelope builder --------------------------------

BASE = "https://api.sikkasoft.com/v4"
APP_ID = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
APP_KEY = "appkey0000000000000000000000secret"
REQUEST_KEY = "d7ab733c766917fa5ef8ae3a54100620"
APP_SECRET, KEY = Secret(APP_KEY), Secret(REQUEST_KEY)  # as the client takes them
NODE = "node-a"
BOOKING = {  # a valid book_appointment payload
    "patient_id": "5383",
    "date": "2025-03-17",
    "time": "10:00",
    "length": "30",
    "provider_id": "DOC1",
    "operatory": "OP1",
    "practice_id": "1",
}


def envelope(items: list[Any], *, offset: int = 0, limit: int = 50, total: int | str | None = None) -> dict[str, Any]:
    """A Sikka list envelope (numbers as strings; links that drop filters, as Sikka's do)."""
    link = f"http://api.sikkasoft.com/v4/x?offset={{}}&limit={limit}"
    return {
        "offset": str(offset),
        "limit": str(limit),
        "total_count": str(len(items) if total is None else total),
        "execution_time": "7",
        "pagination": {"first": link.format(0), "previous": "", "current": link.format(offset), "next": link.format(offset + 1), "last": ""},
        "items": items,
    }
