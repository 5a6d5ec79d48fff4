"""``sikka-supervisor``: the composition root. ``main`` parses the command line, builds what the
command needs, once, here, and hands it over; the supervisor process is ``serve``.

Every part is built by one small builder of this module, and by nothing else: the settings
(``load_settings``), the database (``database``: the embedded server or ``DATABASE_URL``, migrated),
the credentials vault (``credentials``), the event store (``event_store``), the Sikka client on its
HTTP client (``http_client``, ``sikka_client``, ``sikka_session``), what the actors share
(``actor_deps``). The command modules (``actors.cli``: ``commands`` on the admin socket, ``local``
and ``doctor`` without a supervisor, ``demo``) receive them as parameters (or their builders, to
open a part at the step that needs it) and never import this module; the demo receives ``serve``
itself, a local ``onboard`` the flow ``onboard_here``.

The process (``run``; any number per database, one per ``SIKKA_NODE_ID``)::

    settings ─► logging ─► database (migrated) ─► node lock (same node id running: exit 2)
    root nursery
     ├─ database probe (store.probe: /health and database_unreachable read it, never the database)
     ├─ node lock keeper (store.nodelock: a lost session re-takes it; taken by another: exit 2)
     ├─ embedded server keeper (without DATABASE_URL: a dead postmaster is started again)
     ├─ LISTEN bridge (wake-ups on append; reconnects and re-reads by itself)
     ├─ practice supervisor ── one supervised actor per practice whose lease this node holds
     ├─ monitor (alerts every 5 s; onsets and clearings to Slack and the alerts table), loop-lag probe
     ├─ ownership (actors.runtime.ownership): heartbeat, practice leases by rendezvous hashing,
     │   the safety guard; a lone node owns every practice from its first round
     ├─ intake (stopped first on SIGTERM)
     │   ├─ app-level list poller (batched GET /writebacks, fanned out to actors)
     │   ├─ onboarding (at start, every SIKKA_ONBOARD_INTERVAL, on request)
     │   ├─ append follower (actors.runtime.follower: another process extended a stream: its
     │   │   actor here wakes at once; a practice never seen: ownership re-plans)
     │   ├─ payload retention (hourly: keys of payloads final for SIKKA_PAYLOAD_RETENTION_DAYS)
     │   └─ admin API and web console (/ui/) on the Unix socket (and on SIKKA_HTTP_LISTEN with a
     │       bearer token, or a console session: actors.api.auth, actors.api.console)
     └─ systemd watchdog pings (actors.process.systemd)

SIGTERM/SIGINT: STOPPING=1; the intake stops (no new work); the node leaves the live set and
every actor finishes its step (an HTTP call in flight completes and its outcome is recorded),
its lease released the moment it stops so a peer takes over at once; after ``DRAIN_S`` whatever
remains is cancelled (a submit cut short is reconciled by the next owner); exit 0 within 30 s.
Every step that needs the database waits at most ``SIKKA_DB_TIMEOUT`` (leases not released
expire by themselves), and ``run`` arms a last resort when the stop begins: a process still
there after ``STOP_FORCED_S`` (a thread stuck on a frozen server) exits 0 at once.

Database faults never end the process (``store.db``: every fault is ``DatabaseUnavailable``,
every session reconnects; ``actors.runtime.commit``: appends wait the fault out); the one that
does is the node lock taken by another process while this one's session was gone: exit 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial

import httpx
import structlog
import trio

from actors.api.admin import VERSION, Admin
from actors.api.auth import check_head
from actors.api.console.app import Console, mount
from actors.api.console.rates import RateHistory
from actors.api.console.session import Gate, Sessions
from actors.api.http import bind_unix_listener, serve_connection, serve_listener
from actors.cli import commands, console, demo, doctor, local
from actors.cli.args import parser
from actors.cli.client import EXIT_FAILED, EXIT_OK, EXIT_SOCKET, EXIT_USAGE, SocketUnreachable, UsageError, err
from actors.cli.doctor import Builders
from actors.core.ratelimit import Budget
from actors.monitoring import looplag, tracking
from actors.monitoring.metrics import Metrics, StateCollector, TimedStore
from actors.monitoring.monitor import Monitor
from actors.monitoring.slack import SlackNotifier
from actors.process import config, datadir, limits, logs, systemd
from actors.process.config import Settings
from actors.process.gcpolicy import freeze_long_lived
from actors.process.gil import favour_the_loop
from actors.runtime.applevel import AppLevel
from actors.runtime.deps import Deps, utc_now
from actors.runtime.follower import follow_appends
from actors.runtime.ownership import Ownership
from actors.runtime.practices import PracticeSupervisor
from actors.runtime.sikka import SikkaClient
from store import embedded, retention
from store.alerts import AlertRows
from store.connect import close_database, open_database
from store.credentials import Credentials, PgCredentialRows, SecretsKeyError, Vault, load_master_key
from store.db import Database, DatabaseUnavailable
from store.nodelock import AlreadyRunning, NodeLock
from store.pglog import PgEventStore
from store.probe import DatabaseProbe

log = structlog.get_logger("supervisor")

DRAIN_S = 15.0  # actors' grace on shutdown (then a shielded outcome append may take SHIELDED_APPEND_S)
STOP_FORCED_S = 28.0  # the last resort: exit this long after the stop began (the promise: 30 s)
HTTP_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)


# --- the builders: each part is built here, one way ------------------------------------------------


def load_settings(args: argparse.Namespace) -> Settings:
    """The environment's settings, with the command line's global options over them; their
    secrets are scrubbed from every line from now on (``actors.process.logs.protect``)."""
    settings = config.load(
        database_url=args.database_url, data_dir=args.data_dir, admin_socket=args.admin_socket, api_url=args.api_url
    )
    logs.protect(settings.secrets())
    return settings


@contextmanager
def database(
    settings: Settings, *, max_size: int, migrate_schema: bool = True, timeout: float | None = None
) -> Iterator[Database]:
    """The configured database (migrated unless told not to), closed on exit; ``timeout``: the
    longest wait for an answer (the supervisor's ``SIKKA_DB_TIMEOUT``; commands wait)."""
    db = open_database(settings, max_size=max_size, migrate_schema=migrate_schema, timeout=timeout)
    try:
        yield db
    finally:
        close_database(db)


def credentials(settings: Settings, db: Database) -> Credentials:
    """The credentials vault: rows in ``db``, sealed under ``SIKKA_SECRETS_KEY`` (or the key file)."""
    return Credentials(Vault(load_master_key(settings.secrets_key, settings.data_dir)), PgCredentialRows(db))


def event_store(db: Database) -> PgEventStore:
    return PgEventStore(db)


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The process's HTTP client (Sikka, Slack)."""
    return httpx.AsyncClient(timeout=settings.http_timeout, limits=HTTP_LIMITS)


def sikka_client(settings: Settings, http: httpx.AsyncClient, on_call=None) -> SikkaClient:
    return SikkaClient(
        http, settings.api_url, settings.app_id, settings.app_key, settings.node_id, on_call=on_call,
        in_flight=HTTP_LIMITS.max_connections,
    )


@asynccontextmanager
async def sikka_session(settings: Settings) -> AsyncIterator[SikkaClient]:
    """A Sikka client on an HTTP client of its own, closed on exit (for a command)."""
    async with http_client(settings) as http:
        yield sikka_client(settings, http)


def actor_deps(settings: Settings, store, vault: Credentials, client: SikkaClient, **hooks) -> Deps:
    """What every actor shares; ``hooks``: the supervisor's listeners (``on_events``, …)."""
    return Deps(
        store=store,
        credentials=vault,
        client=client,
        settings=settings,
        clock=utc_now,
        app_budget=Budget(settings.app_rate_limit),
        **hooks,
    )


async def onboard_here(settings: Settings, db: Database, office_id: str | None = None) -> list[dict]:
    """``AppLevel.onboard`` with a practice supervisor that never runs (``onboard`` when no
    supervisor answers): practices are registered (events appended directly) and secret keys
    stored, but no actor starts, so no key is granted; the supervisor stays the only token writer."""
    async with sikka_session(settings) as client:
        store = event_store(db)
        vault = credentials(settings, db)
        await vault.verify()
        deps = actor_deps(settings, store, vault, client)
        return await AppLevel(deps, PracticeSupervisor(deps)).onboard(office_id)  # never run: start() is a no-op


BUILDERS = Builders(database=database, credentials=credentials, event_store=event_store, sikka=sikka_session)


# --- the supervisor process ------------------------------------------------------------------------


async def bind_listeners(settings: Settings) -> tuple[trio.SocketListener, list[trio.SocketListener]]:
    """The admin socket and the TCP listeners (``SIKKA_HTTP_LISTEN``), bound before anything runs:
    a path or address that cannot be used is a ``ConfigError`` naming the setting."""
    try:
        unix = await bind_unix_listener(
            settings.admin_socket, mode=0o660 if settings.admin_group else 0o600, group=settings.admin_group
        )
    except OSError as exc:
        raise config.ConfigError(f"SIKKA_ADMIN_SOCKET: cannot serve {settings.admin_socket}: {_reason(exc)}") from None
    if not settings.http_listen:
        return unix, []
    host, port = settings.http_listen
    try:
        return unix, await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        await unix.aclose()
        settings.admin_socket.unlink(missing_ok=True)
        raise config.ConfigError(f"SIKKA_HTTP_LISTEN: cannot listen on {host}:{port}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


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
    settings: Settings,
    db: Database,
    *,
    stop: trio.Event | None = None,
    node_lock: NodeLock | None = None,
    on_stopping: Callable[[], None] = lambda: None,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the supervisor until SIGTERM/SIGINT (or until ``stop`` is set: for tests), then shut
    down as on SIGTERM (``on_stopping`` is told when that begins). ``node_lock``: kept while
    serving (``AlreadyRunning`` ends the process when another one took it)."""
    metrics = Metrics()
    probe = DatabaseProbe(db)
    store = TimedStore(event_store(db), metrics.event_append)
    vault = credentials(settings, db)
    await vault.verify()
    async with http_client(settings) as http:
        client = sikka_client(settings, http, on_call=metrics.on_call)
        deps = actor_deps(
            settings, store, vault, client, on_events=metrics.observe_events, database_problem=probe.problem
        )
        practices = PracticeSupervisor(deps)
        ownership = Ownership(db, settings.node_id, settings.lease_ttl, practices, deps.app_budget)
        deps.owns, deps.owner_of = ownership.owns, ownership.owner_of
        app = AppLevel(deps, practices)
        deps.on_targets_changed = app.targets_changed
        slack = SlackNotifier(http, settings.slack_webhook_url) if settings.slack_webhook_url else None
        monitor = Monitor(
            deps, practices, publish=slack.publish if slack else lambda t: None, rows=AlertRows(db, settings.node_id),
            database_problem=probe.problem,
        )
        admin = Admin(deps, practices, app, monitor=monitor, metrics=metrics, database=probe)
        monitor.webhook_last_at = lambda: admin.last_webhook_at
        rates = RateHistory(lambda: practices.actors, deps.clock)
        console = Console(admin.handle, deps, Sessions(), rates=rates, api_token=settings.api_token,
                          show_payloads=settings.ui_show_payloads)
        handler = mount(console, admin.handle)
        metrics.registry.register(StateCollector(practices, lambda: monitor.table, deps.clock, app_level=app))
        unix, tcp = await bind_listeners(settings)
        async with trio.open_nursery() as root:
            await root.start(probe.run)
            if node_lock is not None:
                await root.start(node_lock.keep)
            if not settings.database_url:
                root.start_soon(embedded.supervise)
            await root.start(store.pump_notifications)
            await root.start(practices.run)
            await root.start(ownership.run)
            await root.start(monitor.run)
            if slack is not None:
                root.start_soon(slack.run)
            root.start_soon(rates.run)
            async with trio.open_nursery() as intake:
                gate = Gate(console.sessions).check
                _start_intake(intake, settings, handler, gate, app, store, practices, ownership, db, vault, unix, tcp)
                _start_process_tasks(root, metrics)
                systemd.notify("READY=1")
                log.info("supervisor.ready", node=settings.node_id, socket=str(settings.admin_socket))
                task_status.started(deps)
                await _wait_for_stop(stop)
                on_stopping()
                systemd.notify("STOPPING=1")
                intake.cancel_scope.cancel()
            await _stop(ownership, practices)
            root.cancel_scope.cancel()
    settings.admin_socket.unlink(missing_ok=True)
    log.info("supervisor.stopped")


def _start_intake(
    intake: trio.Nursery, settings, handler, gate, app, store, practices, ownership, db, vault, unix, tcp
) -> None:
    """What takes work in (stopped first on SIGTERM): list rounds, onboarding, the append
    follower, payload retention, the admin API and the console (``handler``) on the socket (and
    on TCP when configured, the console's pages behind its session ``gate``)."""
    intake.start_soon(app.run_lists)
    intake.start_soon(app.run_onboarding)
    intake.start_soon(follow_appends, store, practices, ownership)
    intake.start_soon(retention.run, db, vault, settings.payload_retention_days)
    cap = settings.max_connections
    intake.start_soon(partial(serve_listener, unix, partial(serve_connection, handler=handler), max_connections=cap))
    authorize = check_head(settings.api_token, settings.webhook_callback_key, gate) if tcp else None
    for listener in tcp:
        connection = partial(serve_connection, handler=handler, authorize=authorize)
        intake.start_soon(partial(serve_listener, listener, connection, max_connections=cap))


def _start_process_tasks(root: trio.Nursery, metrics: Metrics) -> None:
    favour_the_loop()
    root.start_soon(partial(looplag.probe, observe=metrics.loop_lag.observe))
    root.start_soon(freeze_long_lived)
    interval = systemd.watchdog_interval()
    if interval:
        root.start_soon(systemd.watchdog, interval)


async def _stop(ownership: Ownership, practices: PracticeSupervisor) -> None:
    """Leave the live set, let the actors finish their steps for ``DRAIN_S`` (their leases
    released as each stops), release what is left; the database steps wait at most
    ``SIKKA_DB_TIMEOUT`` each (``Database.run``)."""
    await ownership.begin_close()
    await practices.drain(DRAIN_S)
    await ownership.close()


def exit_by_deadline(seconds: float = STOP_FORCED_S) -> None:
    """The last resort of a stop: exit 0 after ``seconds`` if the process is still there (a
    thread stuck on a frozen database must not hold it past the 30 s promise)."""

    def force() -> None:
        log.error("supervisor.stop_forced", seconds=seconds)
        os._exit(EXIT_OK)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


# --- the commands: what each needs, built and handed over -------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    settings.require_app_credentials()
    logs.configure("json" if args.json else settings.log_format, secrets=settings.secrets())
    open_files = limits.raise_open_files()
    needed = limits.needed_open_files(settings.max_connections, 2 if settings.http_listen else 1)
    if open_files < needed:
        log.warning("supervisor.open_files_low", limit=open_files, needed=needed)
    if settings.sentry_dsn:
        tracking.init(settings.sentry_dsn, release=VERSION, node=settings.node_id)
    datadir.prepare(settings.data_dir)  # the default home of the socket and the key file
    with database(settings, max_size=10, timeout=settings.db_timeout) as db:
        lock = NodeLock(db.conninfo, settings.node_id, timeout=settings.db_timeout)
        try:
            lock.take()
        except AlreadyRunning as exc:
            raise UsageError(str(exc)) from None
        try:
            trio.run(partial(serve, settings, db, node_lock=lock, on_stopping=exit_by_deadline))
        except* AlreadyRunning as group:  # another process took the node lock while our session was gone
            raise UsageError(str(group.exceptions[0])) from None
        finally:
            lock.close()
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    with database(load_settings(args), max_size=1, migrate_schema=False) as db:
        return local.cmd_migrate(args, db)


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    with database(settings, max_size=2) as db:
        return local.cmd_rotate_keys(args, credentials(settings, db))


def cmd_replay(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    with database(settings, max_size=2) as db:
        return local.cmd_replay(args, db, partial(credentials, settings, db))


def cmd_demo(args: argparse.Namespace) -> int:
    return demo.cmd_demo(args, serve, database)


def cmd_onboard(args: argparse.Namespace) -> int:
    return local.cmd_onboard(args, load_settings(args), database, onboard_here)


def cmd_doctor(args: argparse.Namespace) -> int:
    return doctor.cmd_doctor(args, partial(load_settings, args), BUILDERS)


def cmd_console(args: argparse.Namespace) -> int:
    return console.cmd_console(args, load_settings(args).admin_socket)


def cmd_socket(args: argparse.Namespace) -> int:
    return commands.run(args, load_settings(args).admin_socket)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "migrate": cmd_migrate,
    "rotate-keys": cmd_rotate_keys,
    "replay": cmd_replay,
    "demo": cmd_demo,
    "onboard": cmd_onboard,
    "doctor": cmd_doctor,
    "console": cmd_console,
    **{name: cmd_socket for name in commands.SOCKET_COMMANDS},
}


def main(argv: list[str] | None = None) -> int:
    """The console script: parse, run the command, map what went wrong to its exit status
    (``actors.cli.client``: 2 bad usage or settings, 3 the admin socket unreachable)."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, config.ConfigError, DatabaseUnavailable, SecretsKeyError) as exc:
        err(logs.scrub_text(str(exc)))
        return EXIT_USAGE
    except SocketUnreachable as exc:
        err(logs.scrub_text(str(exc)))
        return EXIT_SOCKET
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug: its traceback goes through the log's scrubber, never raw to the terminal
        logs.crashed(args.command, exc)
        tracking.capture(exc)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
