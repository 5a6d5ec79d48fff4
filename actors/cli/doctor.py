"""``sikka-supervisor doctor``: pre-flight checks, one ``ok``/``FAIL`` line each, exit 1 if any failed.

In order: the settings (app credentials included); the database and its schema (no migration is
applied); the app credentials (``authorized_practices``); each registered practice's request key
(``request_key_info``); each practice's SPU and how old its data is (``data_sync_status``: its
status and ``data_insert_date``, the last refresh; no zone: UTC, as every Sikka time); the admin socket
(``/health``). The first line of each kind is followed by what the check means (``MEANINGS``).
With ``--json`` nothing prints until the end: then ``{"ok", "checks": [{"check", "subject",
"ok", "detail", "meaning"}]}`` (a data check adds ``last_refresh`` and ``age_s``).
A check that fails does not stop the ones after it: the parts are built one by one through the
composition root's ``Builders``, and a part that cannot be built is a failed check.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from actors.cli.client import EXIT_FAILED, EXIT_OK, Admin, SocketUnreachable, emit_json
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
MEANINGS = {
    "settings": "the environment and flags give everything the supervisor needs, app credentials included",
    "database": "PostgreSQL answers and every migration is applied",
    "app credentials": "Sikka accepts SIKKA_APP_ID and SIKKA_APP_KEY (authorized_practices)",
    "practice keys": "each practice's stored request key can be read",
    "key": "the practice's stored request key works at Sikka (request_key_info)",
    "spu": "Sikka's utility at the practice keeps its data current (data_sync_status: status refresh) "
    "and when it last refreshed it",
    "admin socket": "a supervisor answers /health on the admin socket",
}


@dataclass(frozen=True)
class Builders:
    """The composition root's builders of the parts doctor opens one by one."""

    database: OpenDatabase
    credentials: Callable[[Settings, Database], Credentials]
    event_store: Callable[[Database], PgEventStore]
    sikka: Callable[[Settings], AbstractAsyncContextManager[SikkaClient]]


class Checks:
    """Records each check and prints its line as it is made (its meaning under the first of its
    kind), or keeps them all for one JSON object (``as_json``); counts the failures."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self.failed = 0
        self.made: list[dict] = []

    def __call__(self, ok: bool, name: str, reason: str, **extra) -> bool:
        kind, _, subject = name.partition(" ") if name.split(" ")[0] in ("key", "spu") else (name, "", "")
        first = all(c["check"] != kind for c in self.made)
        self.made.append({"check": kind, "subject": subject or None, "ok": ok, "detail": reason,
                          "meaning": MEANINGS[kind], **extra})
        self.failed += not ok
        if not self.as_json:
            print(f"{'ok' if ok else 'FAIL':<4}  {name}: {reason}")
            if first:
                print(f"        ({MEANINGS[kind]})")
            sys.stdout.flush()
        return ok

    def finish(self) -> int:
        if self.as_json:
            emit_json({"ok": not self.failed, "checks": self.made})
        return EXIT_OK if not self.failed else EXIT_FAILED


def cmd_doctor(args: argparse.Namespace, load_settings: Callable[[], Settings], build: Builders) -> int:
    check = Checks(as_json=args.json)
    try:
        settings = load_settings()
        settings.require_app_credentials()
    except ConfigError as exc:
        check(False, "settings", str(exc))
        return check.finish()
    check(True, "settings", "loaded")
    quiet_logs(settings)
    with ExitStack() as opened:
        db = None
        try:
            db = opened.enter_context(build.database(settings, max_size=2, migrate_schema=False))
            missing = db.call(migrate.pending)
            detail = "connected, schema up to date"
            if missing:
                detail = f"{len(missing)} migrations not applied (run migrate)"
            check(not missing, "database", detail)
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
    return check.finish()


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
                offices = [
                    r.practice.office_id for r in rows if r.practice.registered and r.practice.state != "offboarded"
                ]
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
    listed: dict[str, list[dict]] = {}
    for item in sync.outcome.value:
        listed.setdefault(str(item.get("office_id")), []).append(item)
    now = datetime.now(UTC)
    for office_id in offices:
        items = listed.get(office_id)
        if not items:
            check(False, f"spu {office_id}", "not listed by data_sync_status")
            continue
        stale = sorted({str(i.get("status")) for i in items if i.get("status") != "refresh"})
        refreshed = [t for t in map(_refreshed_at, items) if t is not None]
        last = min(refreshed) if refreshed else None  # the oldest of the practice's PMS databases
        state = f"status {', '.join(stale)}" if stale else "refreshing"
        if last is None:
            check(not stale, f"spu {office_id}", f"{state}, no refresh time")
            continue
        age = f"data {_age(now - last)} old (last refresh {last:%Y-%m-%d %H:%M} UTC)"
        check(not stale, f"spu {office_id}", f"{state}, {age}",
              last_refresh=f"{last:%Y-%m-%dT%H:%M:%SZ}", age_s=round((now - last).total_seconds()))


def _refreshed_at(item: dict) -> datetime | None:
    """``data_insert_date`` (the SPU's last refresh; no zone: UTC) as aware UTC; None when unreadable."""
    try:
        stamp = datetime.fromisoformat(str(item.get("data_insert_date") or "").replace(" ", "T"))
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _age(delta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
