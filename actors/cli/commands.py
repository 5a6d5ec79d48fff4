"""The operator commands of interface section 3 that talk to a running supervisor: status,
submit, writeback, writebacks, usage, alerts, stats, and the one-POST actions (cancel,
refresh-token, retry-failed, pause, resume, offboard).

Each command is one or a few requests on the admin socket (``actors.cli.client.Admin``) whose
answer ``finish`` turns into output and an exit status, with a renderer of ``actors.cli.render``
for people. Every path is built by ``api_path``: an id given on the command line is checked by
the API's rule (``actors.core.ids``: exit 2 and nothing sent when it is not an id) and
percent-encoded, so no argument can name another resource (``pause 'D9999/../D1001'``).
``run`` opens the socket client, runs the command named on the command line, closes it.
``submit --wait`` polls the writeback with the API's long poll (``?wait=``, at most
``WAIT_STEP_S`` at a time) until it is final or the wait runs out (exit status 4).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from actors.cli.client import EXIT_FAILED, EXIT_WAIT, Admin, UsageError, err, finish
from actors.cli.tables import terminal_width
from actors.cli.render import (
    render_alerts,
    render_practice,
    render_practices,
    render_retried,
    render_stats,
    render_usage,
    render_writeback,
    render_writebacks,
)
from actors.core.ids import is_office_id, is_writeback_id
from actors.core.state import FINAL_STATES

WAIT_STEP_S = 60.0  # the admin API's longest ?wait=

ID_RULES: dict[str, tuple[Callable[[str], bool], str]] = {
    "office_id": (is_office_id, "an office id (1 to 64 letters, digits, _ or -)"),
    "writeback_id": (is_writeback_id, "a writeback id (a UUID)"),
}


def check_id(name: str, value: str) -> str:
    """``value`` when it is an id of the kind ``name`` (``office_id``, ``writeback_id``); else
    ``UsageError`` (exit 2)."""
    valid, what = ID_RULES[name]
    if not valid(value):
        raise UsageError(f"{value!r} is not {what}")
    return value


def api_path(template: str, **ids: str) -> str:
    """``template`` (``/practices/{office_id}/stats``) with each id checked and percent-encoded."""
    return template.format(**{name: quote(check_id(name, value), safe="") for name, value in ids.items()})


def width(args: argparse.Namespace) -> int | None:
    """The width tables fit: the terminal's, or everything with ``--wide``."""
    return None if getattr(args, "wide", False) else terminal_width()


def cmd_status(args: argparse.Namespace, admin: Admin) -> int:
    if args.office_id:
        path = api_path("/practices/{office_id}", office_id=args.office_id)
        return finish(admin.request("GET", path), args.json, render_practice)
    return finish(admin.request("GET", "/practices"), args.json, lambda body: render_practices(body, width(args)))


def cmd_writeback(args: argparse.Namespace, admin: Admin) -> int:
    path = api_path("/writebacks/{writeback_id}", writeback_id=args.writeback_id)
    return finish(admin.request("GET", path), args.json, render_writeback)


def cmd_writebacks(args: argparse.Namespace, admin: Admin) -> int:
    params = [("state", s) for s in args.state or []]
    if args.limit is not None:
        params.append(("limit", str(args.limit)))
    r = admin.request("GET", api_path("/practices/{office_id}/writebacks", office_id=args.office_id), params=params)
    return finish(r, args.json, lambda body: render_writebacks(body, width(args)))


def cmd_usage(args: argparse.Namespace, admin: Admin) -> int:
    return finish(admin.request("GET", "/usage"), args.json, lambda body: render_usage(body, width(args)))


def cmd_alerts(args: argparse.Namespace, admin: Admin) -> int:
    return finish(admin.request("GET", "/alerts"), args.json, lambda body: render_alerts(body, width(args)))


def cmd_stats(args: argparse.Namespace, admin: Admin) -> int:
    params = {"since": args.since} if args.since else None
    path = api_path("/practices/{office_id}/stats", office_id=args.office_id)
    return finish(admin.request("GET", path, params=params), args.json, render_stats)


# The operator actions that are one POST each: command → (path, what the answer is, help).
ACTIONS: dict[str, tuple[str, Callable[[dict], None], str]] = {
    "cancel": ("/writebacks/{writeback_id}/cancel", render_writeback, "cancel a writeback"),
    "refresh-token": ("/practices/{office_id}/refresh-token", render_practice, "refresh the practice's key now"),
    "retry-failed": ("/practices/{office_id}/retry-failed", render_retried, "re-queue the retryable failed writebacks"),
    "pause": ("/practices/{office_id}/pause", render_practice, "send nothing new to Sikka for this practice"),
    "resume": ("/practices/{office_id}/resume", render_practice, "undo pause"),
    "offboard": ("/practices/{office_id}/offboard", render_practice,
                 "delete the keys at Sikka, destroy credentials (onboard --office brings it back)"),
}


def cmd_action(args: argparse.Namespace, admin: Admin) -> int:
    template, render, _ = ACTIONS[args.command]
    kind = "writeback_id" if template.startswith("/writebacks") else "office_id"
    return finish(admin.request("POST", api_path(template, **{kind: args.target})), args.json, render)


def cmd_submit(args: argparse.Namespace, admin: Admin) -> int:
    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        raise UsageError(f"--payload is not valid JSON ({exc})") from None
    if args.wait is not None and not (math.isfinite(args.wait) and args.wait >= 0):
        raise UsageError("--wait must be a number of seconds, 0 or more")
    body: dict[str, Any] = {"operation": args.operation, "payload": payload}
    if args.idempotency_key is not None:
        body["idempotency_key"] = args.idempotency_key
    if args.deadline is not None:
        body["deadline_s"] = args.deadline
    r = admin.request("POST", api_path("/practices/{office_id}/writebacks", office_id=args.office_id), body=body)
    if args.wait is None or not r.is_success:
        return finish(r, args.json, render_writeback)
    writeback = r.json()
    print(
        f"writeback {writeback['writeback_id']} {writeback['state']}; waiting up to {args.wait:g} s for a final state",
        file=sys.stderr,
    )
    deadline = time.monotonic() + args.wait
    while writeback["state"] not in FINAL_STATES:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        path = api_path("/writebacks/{writeback_id}", writeback_id=writeback["writeback_id"])
        r = admin.request("GET", path, params={"wait": f"{min(left, WAIT_STEP_S):.3f}"})
        if not r.is_success:
            return finish(r, args.json, render_writeback)
        writeback = r.json()
    status = finish(r, args.json, render_writeback)
    if writeback["state"] not in FINAL_STATES:
        err(f"writeback {writeback['writeback_id']} is still {writeback['state']} after {args.wait:g} s")
        return EXIT_WAIT
    if writeback["state"] != "completed":
        err(f"writeback {writeback['writeback_id']} ended {writeback['state']}")
        return EXIT_FAILED
    return status


SOCKET_COMMANDS: dict[str, Callable[[argparse.Namespace, Admin], int]] = {
    "status": cmd_status,
    "submit": cmd_submit,
    "writeback": cmd_writeback,
    "writebacks": cmd_writebacks,
    "usage": cmd_usage,
    "alerts": cmd_alerts,
    "stats": cmd_stats,
    **{name: cmd_action for name in ACTIONS},
}


def run(args: argparse.Namespace, socket_path: Path) -> int:
    """The socket command ``args.command``, on the admin socket at ``socket_path``."""
    admin = Admin(socket_path)
    try:
        return SOCKET_COMMANDS[args.command](args, admin)
    finally:
        admin.close()
