"""The operator commands that run without a supervisor: ``migrate``, ``rotate-keys``, ``replay``
and ``onboard`` (which asks the supervisor first and runs the flow itself only when none answers).

With ``--json`` each prints its result as one JSON object on stdout (``onboard``: exactly the
``POST /onboard`` answer's shape). ``replay`` of a practice the log does not hold is exit 2.

They receive what they work on from the composition root (``supervisor.py``): an open database,
the credentials vault, or the builder of a part they open only at the step that needs it (the
vault of ``replay --with-payloads``; the database and the onboarding flow of ``onboard``, once
the socket is found silent). None of them builds a database, a vault, an event store or a Sikka
client itself.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

import msgspec
import trio

from actors.cli.client import EXIT_FAILED, EXIT_OK, Admin, SocketUnreachable, UsageError, emit_json, err, finish
from actors.cli.commands import check_id, width
from actors.cli.render import describe, render_onboard
from actors.process import logs
from actors.process.config import Settings
from actors.runtime.applevel import NotAuthorized, OnboardFailed
from store import migrate, replay
from store.credentials import PURGED, Credentials
from store.db import Database
from store.rebuild import rebuild

ONBOARD_TIMEOUT_S = 900.0  # POST /onboard answers when the whole flow is done

OpenDatabase = Callable[..., AbstractContextManager[Database]]  # (settings, *, max_size, migrate_schema=True)


def quiet_logs(settings: Settings) -> None:
    """Commands that run Sikka calls here: warnings and errors only, on stderr."""
    logs.configure(settings.log_format, logging.WARNING, stream=sys.stderr, secrets=settings.secrets())


def cmd_migrate(args: argparse.Namespace, db: Database) -> int:
    applied = db.call(migrate.apply)
    if args.json:
        emit_json({"applied": applied})
    else:
        print(f"applied: {', '.join(applied)}" if applied else "schema up to date")
    return EXIT_OK


def cmd_rotate_keys(args: argparse.Namespace, credentials: Credentials) -> int:
    count = trio.run(credentials.rotate)
    if args.json:
        emit_json({"re_encrypted": count})
    else:
        print(f"re-encrypted {count} credentials under the first key of SIKKA_SECRETS_KEY")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace, db: Database, open_credentials: Callable[[], Credentials]) -> int:
    """Every event with the state after it; or, with ``--rebuild-projections``, the projections
    rebuilt from the log (refused while a supervisor runs on the database)."""
    if args.rebuild_projections:
        if db.call(replay.supervisor_running):
            raise UsageError("a supervisor is running on this database; stop it before rebuilding projections")
        report = db.call(rebuild)
        if args.json:
            emit_json(msgspec.to_builtins(report))
        else:
            print(
                f"rebuilt from {report.events} events: {report.practices} practices, {report.writebacks} writebacks;"
                f" {report.differences} rows differed from the live tables before the swap"
            )
        return EXIT_OK
    if args.office_id is not None:
        check_id("office_id", args.office_id)
        if not db.call(lambda conn: replay.stream_exists(conn, args.office_id)):
            raise UsageError(f"the log holds no practice {args.office_id}")
    payloads = trio.run(_open_payloads, db, open_credentials(), args.office_id) if args.with_payloads else None
    db.call(
        lambda conn: replay.print_replay(
            conn, sys.stdout, office_id=args.office_id, until=args.until, as_json=args.json, payloads=payloads,
            width=width(args),
        )
    )
    return EXIT_OK


async def _open_payloads(db: Database, credentials: Credentials, office_id: str | None) -> dict[str, str]:
    sealed = await db.run(replay.sealed_payloads, office_id)
    opened = await credentials.open_payloads(sealed)
    return {wid: (plain.decode() if plain is not None else PURGED) for wid, plain in opened.items()}


def cmd_onboard(
    args: argparse.Namespace,
    settings: Settings,
    database: OpenDatabase,
    onboard_here: Callable[[Settings, Database, str | None], Awaitable[list[dict]]],
) -> int:
    """``POST /onboard`` to the supervisor (``{"office_id"}`` with ``--office``); when nothing
    listens on the socket, the flow here: ``onboard_here(settings, db, office_id)`` (the root's
    ``AppLevel.onboard`` with no actor running)."""
    office = None if args.office is None else check_id("office_id", args.office)
    admin = Admin(settings.admin_socket, timeout=ONBOARD_TIMEOUT_S)
    try:
        r = admin.request("POST", "/onboard", body=None if office is None else {"office_id": office})
    except SocketUnreachable as exc:
        if not exc.refused:  # a supervisor is there but did not answer: never run the flow beside it
            raise
        r = None
    finally:
        admin.close()
    if r is not None:
        print("onboarding run by the supervisor", file=sys.stderr)
        return finish(r, args.json, lambda body: render_onboard(body["practices"], width(args)))
    settings.require_app_credentials()
    print(f"no supervisor answers on {settings.admin_socket}; running the authorization flow here", file=sys.stderr)
    quiet_logs(settings)
    with database(settings, max_size=2) as db:
        try:
            if db.call(replay.supervisor_running):
                print(
                    "note: a supervisor runs on this database but not on this socket; it grants the keys",
                    file=sys.stderr,
                )
            report = trio.run(onboard_here, settings, db, office)
        except OnboardFailed as exc:
            err(f"authorized_practices failed: {describe(exc.outcome)}")
            return EXIT_FAILED
        except NotAuthorized as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        emit_json({"practices": report})
    else:
        render_onboard(report, width(args))
    if any(p["action"] == "registered" for p in report):
        print("keys are granted by the supervisor when it runs (sikka-supervisor run)", file=sys.stderr)
    return EXIT_OK
