"""``sikka-supervisor``: the command line, and the supervisor process that ``run`` starts.

The process (one per database until practice leases exist)::

    settings ─► logging ─► database (migrated) ─► database-wide advisory lock (else exit 2)
    root nursery
     ├─ LISTEN bridge (wake-ups on append)
     ├─ practice supervisor ── one supervised actor per registered practice
     ├─ intake (stopped first on SIGTERM)
     │   ├─ app-level list poller (batched GET /writebacks, fanned out to actors)
     │   ├─ onboarding (at start, every SIKKA_ONBOARD_INTERVAL, on request)
     │   ├─ practice watcher (new practices get an actor within 5 s; foreign writes wake actors)
     │   └─ admin API on the Unix socket (and on SIKKA_HTTP_LISTEN with a bearer token)
     └─ systemd watchdog pings

SIGTERM/SIGINT: STOPPING=1; the intake stops (no new work); every actor finishes its step (an
HTTP call in flight completes and its outcome is recorded); after ``DRAIN_S`` whatever remains is
cancelled (a submit cut short is reconciled at the next start); exit 0 within 30 s.
"""

from __future__ import annotations

import hmac
import signal
import sys
from functools import partial

import httpx
import psycopg
import structlog
import trio

from actors import looplag, systemd
from actors.actor import Deps, Wake, utc_now
from actors.admin import Admin
from actors.applevel import AppLevel
from actors.config import Settings
from actors.http11 import Request, Response, bind_unix_listener, json_response, serve_connection
from actors.gcpolicy import freeze_long_lived
from actors.practices import PracticeSupervisor
from actors.ratelimit import Budget
from actors.sikka import SikkaClient
from store.credentials import Credentials, PgCredentialRows, Vault, load_master_key
from store.db import Database
from store.eventlog import PgEventStore
from store.locks import RUN_LOCK

log = structlog.get_logger("supervisor")

DRAIN_S = 20.0  # actors' grace on shutdown (under systemd's TimeoutStopSec and the 30 s promise)
WATCH_S = 2.0  # practice watcher period


class AlreadyRunning(Exception):
    """Another supervisor holds the database."""


def hold_run_lock(conninfo: str) -> psycopg.Connection:
    """A session that holds the database-wide lock for as long as it stays open."""
    conn = psycopg.connect(conninfo, autocommit=True)
    if not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", RUN_LOCK).fetchone()[0]:
        conn.close()
        raise AlreadyRunning("another sikka-supervisor is already running on this database")
    return conn


async def watch_practices(store: PgEventStore, practices: PracticeSupervisor) -> None:
    """Start actors for practices registered while we run; wake actors whose stream another
    writer extended."""
    while True:
        for head in await store.practice_heads():
            actor = practices.actors.get(head.office_id)
            if actor is None:
                if head.registered and head.state not in ("offboarded", "parked"):
                    practices.start(head.office_id)
            elif head.version > actor.version:
                actor.tell(Wake())
        await trio.sleep(WATCH_S)


def bearer_guard(token: str, handle):
    """The TCP listener's handler: every request but the webhook (which has its callback-key)
    needs ``Authorization: Bearer <SIKKA_API_TOKEN>``, compared in constant time."""
    expected = f"Bearer {token}".encode()

    async def guarded(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if request.path != "/webhooks/sikka" and not hmac.compare_digest(given, expected):
            error = {"error": "unauthorized", "detail": "a valid bearer token is required", "field": None}
            return json_response(401, error)
        return await handle(request)

    return guarded


async def watchdog(interval: float) -> None:
    while True:
        systemd.notify("WATCHDOG=1")
        await trio.sleep(interval)


async def _wait_for_stop(stop: trio.Event | None) -> None:
    """Return on SIGTERM/SIGINT, or when ``stop`` is set."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as waiter:
            if stop is not None:

                async def on_stop() -> None:
                    await stop.wait()
                    log.info("supervisor.stopping", signal=None)
                    waiter.cancel_scope.cancel()

                waiter.start_soon(on_stop)
            async for signum in signals:
                log.info("supervisor.stopping", signal=signal.Signals(signum).name)
                break
            waiter.cancel_scope.cancel()


async def serve(
    settings: Settings, db: Database, *, stop: trio.Event | None = None, task_status=trio.TASK_STATUS_IGNORED
) -> None:
    """Run the supervisor until SIGTERM/SIGINT (or until ``stop`` is set: for tests), then shut
    down as on SIGTERM."""
    store = PgEventStore(db)
    credentials = Credentials(Vault(load_master_key(settings.secrets_key, settings.data_dir)), PgCredentialRows(db))
    await credentials.verify()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=settings.http_timeout, limits=limits) as http:
        client = SikkaClient(http, settings.api_url, settings.app_id, settings.app_key, settings.node_id)
        deps = Deps(
            store=store,
            credentials=credentials,
            client=client,
            settings=settings,
            clock=utc_now,
            app_budget=Budget(settings.app_rate_limit),
        )
        practices = PracticeSupervisor(deps)
        app = AppLevel(deps, practices)
        deps.on_targets_changed = app.targets_changed
        admin = Admin(deps, practices, app)
        listener = await bind_unix_listener(
            settings.admin_socket, mode=0o660 if settings.admin_group else 0o600, group=settings.admin_group
        )
        async with trio.open_nursery() as root:
            await root.start(store.pump_notifications)
            await root.start(practices.run)
            for row in await store.practices():
                if row.practice.registered and row.practice.state != "offboarded":
                    practices.start(row.practice.office_id)
            async with trio.open_nursery() as intake:
                intake.start_soon(app.run_lists)
                intake.start_soon(app.run_onboarding)
                intake.start_soon(watch_practices, store, practices)
                intake.start_soon(partial(trio.serve_listeners, partial(serve_connection, handler=admin.handle), [listener]))
                if settings.http_listen:
                    host, port = settings.http_listen
                    tcp = await trio.open_tcp_listeners(port, host=host)
                    handler = partial(serve_connection, handler=bearer_guard(settings.api_token, admin.handle))
                    intake.start_soon(partial(trio.serve_listeners, handler, tcp))
                root.start_soon(looplag.probe)
                root.start_soon(freeze_long_lived)
                interval = systemd.watchdog_interval()
                if interval:
                    root.start_soon(watchdog, interval)
                systemd.notify("READY=1")
                log.info("supervisor.ready", node=settings.node_id, socket=str(settings.admin_socket))
                task_status.started(deps)
                await _wait_for_stop(stop)
                systemd.notify("STOPPING=1")
                intake.cancel_scope.cancel()
            await practices.drain(DRAIN_S)
            root.cancel_scope.cancel()
    settings.admin_socket.unlink(missing_ok=True)
    log.info("supervisor.stopped")


def main(argv: list[str] | None = None) -> int:
    from actors.cli import run_cli

    return run_cli(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
