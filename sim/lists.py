"""Sikka's list envelope, shared by every list endpoint.

Design: ``envelope`` pages ``rows`` (``offset`` is a page number, ``limit`` at most 5,000),
renders only the page, keeps the fields the query asks for (``fields``, ``fields=get_all``,
``lightweight=true``) and writes the pagination links from the request's own base URL; a bad
``offset`` or ``limit`` is the 400 ``API1026`` naming it. ``list_response`` wraps the envelope
in a 200.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from sim.responses import Response, invalid, json_response
from sim.state import Req


def envelope(req: Req, endpoint: str, rows: list, render: Callable, fields: tuple, all_fields: tuple,
             default_limit: int = 50) -> dict | Response:
    q = req.query
    try:
        offset = int(q.get("offset") or 0)
        limit = int(q.get("limit") or default_limit)
    except ValueError:
        return invalid("offset" if not (q.get("offset") or "0").isdigit() else "limit", "must be an integer")
    if offset < 0 or limit < 1:
        return invalid("offset" if offset < 0 else "limit", "is out of range")
    limit = min(limit, 5000)
    total = len(rows)
    last = max(0, math.ceil(total / limit) - 1)
    page = rows[offset * limit:(offset + 1) * limit]
    chosen = choose_fields(q, fields, all_fields)
    link = f"{req.base}/{endpoint}?offset={{}}&limit={limit}"
    return {
        "offset": str(offset),
        "limit": str(limit),
        "total_count": str(total),
        "execution_time": str(3 + len(page) // 50),
        "pagination": {
            "first": link.format(0),
            "previous": link.format(offset - 1) if offset > 0 else "",
            "current": link.format(offset),
            "next": link.format(offset + 1) if offset < last else "",
            "last": link.format(last),
        },
        "items": [{f: item.get(f, "") for f in chosen} for item in map(render, page)],
    }


def list_response(req: Req, endpoint: str, rows: list, render: Callable, fields: tuple, all_fields: tuple | None = None,
                  headers=()) -> Response:
    env = envelope(req, endpoint, rows, render, fields, all_fields or fields)
    return env if isinstance(env, Response) else json_response(env, headers=headers)


def choose_fields(q: Mapping[str, str], fields: tuple, all_fields: tuple) -> tuple:
    wanted = [f.strip() for f in q.get("fields", "").split(",") if f.strip()]
    if "get_all" in wanted:
        return all_fields
    listed = tuple(f for f in wanted if f in all_fields or f in fields)
    if q.get("lightweight", "").lower() == "true" and listed:
        return listed
    return fields + tuple(f for f in listed if f not in fields)
