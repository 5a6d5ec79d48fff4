"""``sikka-supervisor doctor``: pre-flight checks, one ``ok``/``FAIL`` line each, exit 1 if any failed.

In order: the settings (app credentials included); the database and its schema (no migration is
applied); the app credentials (``authorized_practices``); each registered practice's request key
(``request_key_info``); each practice's SPU (``data_sync_status``); the admin socket (``/health``).
A check that fails does not stop the ones after it: the parts are built one by one through the
composition root's ``Builders``, and a part that cannot be built is a failed check.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, ExitStack
from dataclasses import dataclass

import trio

from actors.cli.client import EXIT_FAILED, EXIT_OK, Admin, SocketUnreachable
from actors.cli.local import OpenDatabase, quiet_logs
from actors.cli.render import describe
from actors.core import outcomes as oc
from actors.process.config import ConfigError, Settings
from actors.runtime.sikka import SikkaClient
from store import migrate
from store.credentials import Credentials, SecretsKeyError
from store.db import Database, DatabaseUnavailable
from store.pglog import PgEventStore

HEALTH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Builders:
    """The composition root's builders of the parts doctor opens one by one."""

    database: OpenDatabase
    credentials: Callable[[Settings, Database], Credentials]
    event_store: Callable[[Database], PgEventStore]
    sikka: Callable[[Settings], AbstractAsyncContextManager[SikkaClient]]


class Checks:
    """Prints each check's line as it is made and counts the failures."""

    def __init__(self) -> None:
        self.failed = 0

    def __call__(self, ok: bool, name: str, reason: str) -> bool:
        print(f"{'ok' if ok else 'FAIL':<4}  {name}: {reason}")
        sys.stdout.flush()
        self.failed += not ok
        return ok


def cmd_doctor(load_settings: Callable[[], Settings], build: Builders) -> int:
    check = Checks()
    try:
        settings = load_settings()
        settings.require_app_credentials()
    except ConfigError as exc:
        check(False, "settings", str(exc))
        return EXIT_FAILED
    check(True, "settings", "loaded")
    quiet_logs(settings)
    with ExitStack() as opened:
        db = None
        try:
            db = opened.enter_context(build.database(settings, max_size=2, migrate_schema=False))
            missing = db.call(migrate.pending)
            check(not missing, "database", f"{len(missing)} migrations not applied (run migrate)" if missing else "connected, schema up to date")
        except DatabaseUnavailable as exc:
            check(False, "database", str(exc))
        trio.run(_check_sikka, settings, db, build, check)
    admin = Admin(settings.admin_socket, timeout=HEALTH_TIMEOUT_S)
    try:
        r = admin.request("GET", "/health")
        check(r.status_code == 200, "admin socket", f"{settings.admin_socket} answers /health with {r.status_code}")
    except SocketUnreachable as exc:
        check(False, "admin socket", f"nothing answers on {settings.admin_socket}" if exc.refused else str(exc))
    finally:
        admin.close()
    return EXIT_OK if not check.failed else EXIT_FAILED


async def _check_sikka(settings: Settings, db: Database | None, build: Builders, check: Checks) -> None:
    async with build.sikka(settings) as client:
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
                credentials = build.credentials(settings, db)
                await credentials.verify()
                rows = await build.event_store(db).practices()
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
        await _check_spu(client, offices, check)


async def _check_key(client: SikkaClient, credentials: Credentials, office_id: str, check: Checks) -> None:
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


async def _check_spu(client: SikkaClient, offices: list[str], check: Checks) -> None:
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
