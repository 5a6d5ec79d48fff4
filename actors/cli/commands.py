"""The operator commands of interface section 3 that talk to a running supervisor: status,
submit, writeback, writebacks, usage, alerts, stats, and the one-POST actions (cancel,
refresh-token, retry-failed, pause, resume, offboard).

Each command is one or a few requests on the admin socket (``actors.cli.client.Admin``) whose
answer ``finish`` turns into output and an exit status, with a renderer of ``actors.cli.render``
for people. ``run`` opens the socket client, runs the command named on the command line, closes it.
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

from actors.cli.client import EXIT_FAILED, EXIT_WAIT, Admin, UsageError, err, finish
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
from actors.core.state import FINAL_STATES

WAIT_STEP_S = 60.0  # the admin API's longest ?wait=


def cmd_status(args: argparse.Namespace, admin: Admin) -> int:
    if args.office_id:
        return finish(admin.request("GET", f"/practices/{args.office_id}"), args.json, render_practice)
    return finish(admin.request("GET", "/practices"), args.json, render_practices)


def cmd_writeback(args: argparse.Namespace, admin: Admin) -> int:
    return finish(admin.request("GET", f"/writebacks/{args.writeback_id}"), args.json, render_writeback)


def cmd_writebacks(args: argparse.Namespace, admin: Admin) -> int:
    params = [("state", s) for s in args.state or []]
    if args.limit is not None:
        params.append(("limit", str(args.limit)))
    r = admin.request("GET", f"/practices/{args.office_id}/writebacks", params=params)
    return finish(r, args.json, render_writebacks)


def cmd_usage(args: argparse.Namespace, admin: Admin) -> int:
    return finish(admin.request("GET", "/usage"), args.json, render_usage)


def cmd_alerts(args: argparse.Namespace, admin: Admin) -> int:
    return finish(admin.request("GET", "/alerts"), args.json, render_alerts)


def cmd_stats(args: argparse.Namespace, admin: Admin) -> int:
    params = {"since": args.since} if args.since else None
    return finish(admin.request("GET", f"/practices/{args.office_id}/stats", params=params), args.json, render_stats)


# The operator actions that are one POST each: command → (path, what the answer is, help).
ACTIONS: dict[str, tuple[str, Callable[[dict], None], str]] = {
    "cancel": ("/writebacks/{id}/cancel", render_writeback, "cancel a writeback"),
    "refresh-token": ("/practices/{id}/refresh-token", render_practice, "refresh the practice's key now"),
    "retry-failed": ("/practices/{id}/retry-failed", render_retried, "re-queue the retryable failed writebacks"),
    "pause": ("/practices/{id}/pause", render_practice, "send nothing new to Sikka for this practice"),
    "resume": ("/practices/{id}/resume", render_practice, "undo pause"),
    "offboard": ("/practices/{id}/offboard", render_practice, "delete the keys at Sikka, destroy credentials"),
}


def cmd_action(args: argparse.Namespace, admin: Admin) -> int:
    path, render, _ = ACTIONS[args.command]
    return finish(admin.request("POST", path.format(id=args.target)), args.json, render)


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
    r = admin.request("POST", f"/practices/{args.office_id}/writebacks", body=body)
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
        r = admin.request("GET", f"/writebacks/{writeback['writeback_id']}", params={"wait": f"{min(left, WAIT_STEP_S):.3f}"})
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
