"""The operator commands of interface section 3 that talk to a running supervisor, plus
``onboard`` (which runs the flow itself when no supervisor answers) and ``doctor``.

Everything goes through three small pieces:

- ``Admin.request``: one HTTP request on the admin socket (``settings.admin_socket``); a socket
  that does not answer raises ``SocketUnreachable`` (exit status 3);
- ``finish``: the one place that turns an admin API answer into output and an exit status
  (2xx → 0; 400 → 2 naming the API's ``detail`` and ``field``; any other error → 1). With
  ``--json`` the answer's body goes to stdout exactly as the API sent it; messages go to stderr;
- ``table``: a plain-text table for people, fitted to 80 columns by shortening the columns that
  may shrink (cells cut with ``…``).

``onboard`` without a supervisor reuses ``AppLevel.onboard`` with a practice supervisor that never
runs: practices are registered (events appended directly) and secret keys stored, but no actor
starts, so no key is granted here; the supervisor stays the only token writer.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

from actors.process import config
from actors.core.state import FINAL_STATES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SOCKET, EXIT_WAIT = 0, 1, 2, 3, 4
WAIT_STEP_S = 60.0  # the admin API's longest ?wait=
WIDTH = 80
CLIENT_TIMEOUT_S = 120.0  # above the longest ?wait= and the slowest operator action
ONBOARD_TIMEOUT_S = 900.0  # POST /onboard answers when the whole flow is done


class SocketUnreachable(Exception):
    """Nothing answers on the admin socket; ``str()`` is the one line to print (exit status 3).
    ``refused``: no connection was made at all (no socket file, or nobody listening on it)."""

    def __init__(self, text: str, *, refused: bool):
        super().__init__(text)
        self.refused = refused


class CliUsage(Exception):
    """Bad input on the command line (exit status 2)."""


# --- the admin socket ------------------------------------------------------------------------------


class Admin:
    def __init__(self, socket_path: Path, timeout: float = CLIENT_TIMEOUT_S):
        self.socket_path = socket_path
        self.http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://localhost", timeout=timeout
        )

    def request(self, method: str, path: str, *, params: Any = None, body: Any = None) -> httpx.Response:
        try:
            return self.http.request(method, path, params=params, json=body)
        except httpx.ConnectError as exc:
            raise SocketUnreachable(
                f"the admin socket {self.socket_path} is unreachable ({exc}); is the supervisor running?", refused=True
            ) from None
        except httpx.TransportError as exc:
            raise SocketUnreachable(
                f"the admin socket {self.socket_path} is unreachable: {type(exc).__name__} on {method} {path}",
                refused=False,
            ) from None

    def close(self) -> None:
        self.http.close()


def err(text: str) -> None:
    print(f"sikka-supervisor: {text}", file=sys.stderr)


def emit_body(r: httpx.Response) -> None:
    """The API's body exactly as sent (a newline added when it lacks one)."""
    text = r.text
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def finish(r: httpx.Response, as_json: bool, render: Callable[[dict], None]) -> int:
    """Output for an admin API answer, and the exit status it means."""
    if as_json:
        emit_body(r)
    if r.is_success:
        if not as_json:
            render(r.json())
        return EXIT_OK
    try:
        error = r.json()
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    detail = error.get("detail") or r.text.strip() or r.reason_phrase
    field = error.get("field")
    code = error.get("error") or str(r.status_code)
    where = f" (field: {field})" if field else ""
    err(f"{code}: {detail}{where}")
    return EXIT_USAGE if r.status_code == 400 else EXIT_FAILED


# --- tables for people -----------------------------------------------------------------------------


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, shrink: Sequence[str] = (), width: int = WIDTH) -> str:
    """Left-aligned text columns (numbers right-aligned), two spaces apart, at most ``width``
    wide: the widest column named in ``shrink`` (default: the last) gives way first."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    gaps = 2 * (len(headers) - 1)
    # first the columns that may shrink, down to their header; then, if need be, any column
    for columns, floor in (
        ([headers.index(h) for h in shrink] or [len(headers) - 1], lambda k: max(len(headers[k]), 4)),
        (range(len(headers)), lambda k: 3),
    ):
        while sum(widths) + gaps > width:
            i = max(columns, key=lambda k: widths[k] - floor(k))
            if widths[i] <= floor(i):
                break
            widths[i] -= 1
    right = [
        any(row[i] for row in cells) and all(_is_number(row[i]) or not row[i] for row in cells)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            cut(v, w).rjust(w) if r else cut(v, w).ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(headers))] + [line(row) for row in cells])


def _is_number(text: str) -> bool:
    return text.replace(".", "", 1).replace("%", "", 1).isdigit()


def details(pairs: Iterable[tuple[str, Any]]) -> str:
    """``name  value`` lines, names aligned."""
    pairs = [(k, "-" if v is None or v == "" else str(v)) for k, v in pairs]
    pad = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(pad)}  {v}" for k, v in pairs)


def when(value: str | None) -> str | None:
    """``2026-03-10T09:00:12.345Z`` → ``2026-03-10 09:00``."""
    return value[:16].replace("T", " ") if value else None


def show(text: str) -> None:
    print(text)


# --- renderers -------------------------------------------------------------------------------------


def _counts(c: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in c.items() if v) or "none"


def render_practice(p: dict) -> None:
    rate = p["rate"]
    show(
        details(
            [
                ("office", p["office_id"]),
                ("name", p["practice_name"]),
                ("practice ids", ", ".join(p["practice_ids"])),
                ("state", p["state"]),
                ("conditions", ", ".join(p["conditions"])),
                ("owner", p["owner"]),
                ("token expires", p["token_expires_at"]),
                ("rate", f"{rate['used_last_60s']}/{rate['limit']} in the last 60 s ({rate['remaining']} left)"),
                ("writebacks", _counts(p["writebacks"])),
                ("last error", p["last_error"]),
                ("restarts", p["restarts"]),
            ]
        )
    )


def render_practices(body: dict) -> None:
    rows = []
    for p in body["practices"]:
        c = p["writebacks"]
        rows.append(
            [
                p["office_id"],
                p["practice_name"],
                p["state"],
                ",".join(p["conditions"]),
                f"{p['rate']['used_last_60s']}/{p['rate']['limit']}",
                c["queued"] + c["deferred"],
                c["submitting"] + c["pending"] + c["unknown"],
                c["completed"],
                c["failed"],
                p["last_error"],
            ]
        )
    if not rows:
        show("no practices registered")
        return
    headers = ["OFFICE", "NAME", "STATE", "COND", "RATE", "QUEUED", "PEND", "DONE", "FAIL", "ERROR"]
    show(table(headers, rows, shrink=["NAME", "COND", "ERROR"]))


def render_writeback(w: dict) -> None:
    error = w["error"]
    show(
        details(
            [
                ("writeback", w["writeback_id"]),
                ("office", w["office_id"]),
                ("operation", w["operation"]),
                ("state", w["state"]),
                ("error", f"{error['code']}: {error['message']}" if error else None),
                ("retryable", "yes" if w["retryable"] else "no"),
                ("idempotency key", w["idempotency_key"]),
                ("retry of", w["retry_of"]),
                ("sikka id", w["sikka_writeback_id"]),
                ("created id", w["created_id"]),
                ("requested", w["requested_at"]),
                ("submitted", w["submitted_at"]),
                ("completed", w["completed_at"]),
                ("sikka completed", w["sikka_completed_time"]),
                ("deadline", w["deadline_at"]),
                ("attempts", w["attempts"]),
                ("checks", w["checks"]),
                ("next check", w["next_check_at"]),
            ]
        )
    )


def render_writebacks(body: dict) -> None:
    rows = [[w["writeback_id"], w["state"], when(w["requested_at"]), w["operation"]] for w in body["writebacks"]]
    if not rows:
        show("no writebacks")
        return
    show(table(["WRITEBACK", "STATE", "REQUESTED (UTC)", "OPERATION"], rows, shrink=["OPERATION"]))


def render_retried(body: dict) -> None:
    show(f"retried {body['retried']} writeback{'s' if body['retried'] != 1 else ''}")
    for writeback_id in body["writebacks"]:
        show(f"  {writeback_id}")


def render_usage(body: dict) -> None:
    rows = [
        [
            u["office_id"],
            u["practice_name"],
            u["requests_used"],
            u["limit"],
            u["requests_remaining"],
            f"{u['percent_used']:.0f}%" if isinstance(u["percent_used"], (int, float)) else u["percent_used"],
            u["requests_today"],
            u["server_remaining"],
            None if u["server_reset_s"] is None else f"{u['server_reset_s']:g}s",
        ]
        for u in body["practices"]
    ]
    if not rows:
        show("no practices")
        return
    headers = ["OFFICE", "NAME", "USED", "LIMIT", "LEFT", "USED%", "TODAY", "SIKKA LEFT", "RESET"]
    show(table(headers, rows, shrink=["NAME"]))


def render_alerts(body: dict) -> None:
    rows = [[a["severity"], a["kind"], a["office_id"] or "-", when(a["since"]), a["message"]] for a in body["alerts"]]
    if not rows:
        show("no alerts")
        return
    show(table(["SEVERITY", "KIND", "OFFICE", "SINCE (UTC)", "MESSAGE"], rows, shrink=["MESSAGE"]))


def render_stats(body: dict) -> None:
    def seconds(v):
        return None if v is None else f"{v:.1f} s"

    rate = body["success_rate"]
    show(
        details(
            [
                ("requested", body["requested"]),
                ("completed", body["completed"]),
                ("failed", body["failed"]),
                ("cancelled", body["cancelled"]),
                ("success rate", None if rate is None else f"{rate * 100:.1f}%"),
                ("confirmation p50", seconds(body["confirmation_p50_s"])),
                ("confirmation p95", seconds(body["confirmation_p95_s"])),
            ]
        )
    )


def render_onboard(report: list[dict]) -> None:
    if not report:
        show("no practices authorized or known")
        return
    show(table(["OFFICE", "NAME", "ACTION"], [[p["office_id"], p["practice_name"], p["action"]] for p in report], shrink=["NAME"]))


# --- commands on the admin socket -------------------------------------------------------------------


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
        raise CliUsage(f"--payload is not valid JSON ({exc})") from None
    if args.wait is not None and not (math.isfinite(args.wait) and args.wait >= 0):
        raise CliUsage("--wait must be a number of seconds, 0 or more")
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


def run_socket_command(args: argparse.Namespace, settings: config.Settings) -> int:
    admin = Admin(settings.admin_socket)
    try:
        return SOCKET_COMMANDS[args.command](args, admin)
    finally:
        admin.close()


def add_socket_commands(commands) -> None:
    """The parsers of the socket commands (``commands``: argparse sub-parsers)."""
    status = commands.add_parser("status", help="practice status")
    status.add_argument("office_id", nargs="?", help="one practice (default: all)")

    submit = commands.add_parser("submit", help="queue a writeback")
    submit.add_argument("office_id")
    submit.add_argument("operation", help="book_appointment, create_patient, …")
    submit.add_argument("--payload", required=True, metavar="JSON", help="the operation's fields as a JSON object")
    submit.add_argument("--idempotency-key", metavar="K")
    submit.add_argument("--deadline", type=float, metavar="SECONDS", help="seconds from now to the deadline")
    submit.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for a final state")

    writeback = commands.add_parser("writeback", help="one writeback")
    writeback.add_argument("writeback_id")

    writebacks = commands.add_parser("writebacks", help="a practice's writebacks, newest first")
    writebacks.add_argument("office_id")
    writebacks.add_argument("--state", action="append", metavar="S", help="only this state (repeatable)")
    writebacks.add_argument("--limit", type=int, metavar="N", help="at most N (default 50, max 500)")

    commands.add_parser("usage", help="rate usage per practice")
    commands.add_parser("alerts", help="the alerts that hold")

    stats = commands.add_parser("stats", help="counts, success rate, confirmation p50/p95")
    stats.add_argument("office_id")
    stats.add_argument("--since", metavar="ISO", help="only writebacks requested since then")

    for parser in (status, submit, writeback, writebacks, commands.choices["usage"], commands.choices["alerts"], stats):
        parser.add_argument("--json", action="store_true", help="print the admin API's answer as is")

    for name, (path, _, help_text) in ACTIONS.items():
        action = commands.add_parser(name, help=help_text)
        action.add_argument("target", metavar="WRITEBACK_ID" if path.startswith("/writebacks") else "OFFICE_ID")
        action.add_argument("--json", action="store_true", help="print the admin API's answer as is")


# --- onboard ------------------------------------------------------------------------------------------


def quiet_logs(settings: config.Settings) -> None:
    """Commands that run Sikka calls here: warnings and errors only, on stderr."""
    from actors.process import logs

    logs.configure(settings.log_format, logging.WARNING, stream=sys.stderr)


def cmd_onboard(args: argparse.Namespace, settings: config.Settings) -> int:
    admin = Admin(settings.admin_socket, timeout=ONBOARD_TIMEOUT_S)
    try:
        r = admin.request("POST", "/onboard")
    except SocketUnreachable as exc:
        if not exc.refused:  # a supervisor is there but did not answer: never run the flow beside it
            raise
        r = None
    finally:
        admin.close()
    if r is not None:
        print("onboarding run by the supervisor", file=sys.stderr)
        return finish(r, False, lambda body: render_onboard(body["practices"]))
    settings.require_app_credentials()
    print(f"no supervisor answers on {settings.admin_socket}; running the authorization flow here", file=sys.stderr)
    quiet_logs(settings)
    import trio

    from actors.runtime.applevel import OnboardFailed
    from store.connect import close_database, open_database
    from store.replay import supervisor_running

    db = open_database(settings, max_size=2)
    try:
        if db.call(supervisor_running):
            print(
                "note: a supervisor runs on this database but not on this socket; it grants the keys",
                file=sys.stderr,
            )
        report = trio.run(onboard_locally, settings, db)
    except OnboardFailed as exc:
        err(f"authorized_practices failed: {describe(exc.outcome)}")
        return EXIT_FAILED
    finally:
        close_database(db)
    render_onboard(report)
    if any(p["action"] == "registered" for p in report):
        print("keys are granted by the supervisor when it runs (sikka-supervisor run)", file=sys.stderr)
    return EXIT_OK


async def onboard_locally(settings: config.Settings, db) -> list[dict]:
    """``AppLevel.onboard`` with no actor running: registers and stores secret keys, grants none."""
    from actors.runtime.deps import Deps, utc_now
    from actors.runtime.applevel import AppLevel
    from actors.runtime.practices import PracticeSupervisor
    from actors.core.ratelimit import Budget

    async with sikka_client(settings) as client:
        deps = Deps(
            store=_store(db),
            credentials=await _credentials(settings, db),
            client=client,
            settings=settings,
            clock=utc_now,
            app_budget=Budget(settings.app_rate_limit),
        )
        return await AppLevel(deps, PracticeSupervisor(deps)).onboard()  # never run: start() is a no-op


def _store(db):
    from store.pglog import PgEventStore

    return PgEventStore(db)


async def _credentials(settings: config.Settings, db):
    from store.credentials import Credentials, PgCredentialRows, Vault, load_master_key

    credentials = Credentials(Vault(load_master_key(settings.secrets_key, settings.data_dir)), PgCredentialRows(db))
    await credentials.verify()
    return credentials


class sikka_client:
    """``async with sikka_client(settings) as client``: a ``SikkaClient`` on a shared AsyncClient."""

    def __init__(self, settings: config.Settings):
        self.settings = settings

    async def __aenter__(self):
        from actors.runtime.sikka import SikkaClient

        self.http = httpx.AsyncClient(timeout=self.settings.http_timeout)
        s = self.settings
        return SikkaClient(self.http, s.api_url, s.app_id, s.app_key, s.node_id)

    async def __aexit__(self, *exc) -> None:
        await self.http.aclose()


def describe(outcome) -> str:
    """A Sikka outcome in a few words (never a key)."""
    code = getattr(outcome, "code", "") or getattr(outcome, "kind", "") or getattr(outcome, "reason", "")
    return f"{type(outcome).__name__}{f' {code}' if code else ''}"


# --- doctor -------------------------------------------------------------------------------------------


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def __call__(self, ok: bool, name: str, reason: str) -> bool:
        print(f"{'ok' if ok else 'FAIL':<4}  {name}: {reason}")
        sys.stdout.flush()
        self.failed += not ok
        return ok


def cmd_doctor(args: argparse.Namespace, load_settings: Callable[[], config.Settings]) -> int:
    from store.connect import close_database, open_database
    from store.db import DatabaseUnavailable

    check = Checks()
    try:
        settings = load_settings()
        settings.require_app_credentials()
    except config.ConfigError as exc:
        check(False, "settings", str(exc))
        return EXIT_FAILED
    check(True, "settings", "loaded")
    quiet_logs(settings)
    db = None
    try:
        db = open_database(settings, max_size=2, migrate_schema=False)
        missing = db.call(_missing_migrations)
        check(not missing, "database", f"{len(missing)} migrations not applied (run migrate)" if missing else "connected, schema up to date")
    except DatabaseUnavailable as exc:
        check(False, "database", str(exc))
    try:
        import trio

        trio.run(_doctor_sikka, settings, db, check)
    finally:
        if db is not None:
            close_database(db)
    admin = Admin(settings.admin_socket, timeout=10)
    try:
        r = admin.request("GET", "/health")
        check(r.status_code == 200, "admin socket", f"{settings.admin_socket} answers /health with {r.status_code}")
    except SocketUnreachable as exc:
        check(False, "admin socket", f"nothing answers on {settings.admin_socket}" if exc.refused else str(exc))
    finally:
        admin.close()
    return EXIT_OK if not check.failed else EXIT_FAILED


def _missing_migrations(conn) -> list[str]:
    from store import migrate

    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")} if exists else set()
    return [name for version, name, _ in migrate.migrations() if version not in done]


async def _doctor_sikka(settings: config.Settings, db, check: Checks) -> None:
    from actors.core import outcomes as oc
    from store.credentials import SecretsKeyError

    async with sikka_client(settings) as client:
        result = await client.authorized_practices()
        if isinstance(result.outcome, oc.Ok):
            authorized = {p.office_id for p in result.outcome.value}
            check(True, "app credentials", f"authorized_practices lists {len(authorized)} practices")
        else:
            authorized = set()
            check(False, "app credentials", f"authorized_practices failed: {describe(result.outcome)}")
        offices = sorted(authorized)
        if db is not None:
            try:
                credentials = await _credentials(settings, db)
                rows = await _store(db).practices()
            except SecretsKeyError as exc:
                check(False, "practice keys", str(exc))
            except Exception as exc:  # the database check above has said why
                check(False, "practice keys", f"cannot read the practices: {type(exc).__name__}")
            else:
                offices = [r.practice.office_id for r in rows if r.practice.registered and r.practice.state != "offboarded"]
                if not offices:
                    check(True, "practice keys", "no practices registered yet")
                for office_id in offices:
                    await _check_key(client, credentials, office_id, check)
        sync = await client.data_sync_status()
        if not isinstance(sync.outcome, oc.Ok):
            check(False, "spu", f"data_sync_status failed: {describe(sync.outcome)}")
            return
        statuses: dict[str, list[str]] = {}
        for item in sync.outcome.value:
            statuses.setdefault(str(item.get("office_id")), []).append(str(item.get("status")))
        for office_id in offices:
            seen = statuses.get(office_id)
            if not seen:
                check(False, f"spu {office_id}", "not listed by data_sync_status")
            else:
                stale = sorted({s for s in seen if s != "refresh"})
                check(not stale, f"spu {office_id}", f"status {', '.join(stale)}" if stale else "refresh")


async def _check_key(client, credentials, office_id: str, check: Checks) -> None:
    from actors.core import outcomes as oc

    request_key = await credentials.secret(office_id, "request_key")
    if request_key is None:
        check(False, f"key {office_id}", "no request key stored (granted by a running supervisor)")
        return
    result = await client.request_key_info(request_key)
    if isinstance(result.outcome, oc.Ok):
        info = result.outcome.value
        expires = f", expires {info.expires_at:%Y-%m-%dT%H:%M:%SZ}" if info.expires_at else ""
        check(True, f"key {office_id}", f"request_key_info: {info.status}{expires}")
    else:
        check(False, f"key {office_id}", f"request_key_info failed: {describe(result.outcome)}")
