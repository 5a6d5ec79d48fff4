"""``sikka-supervisor``: the command line, and the supervisor process that ``run`` starts.

The process (any number per database, one per ``SIKKA_NODE_ID``)::

    settings ─► logging ─► database (migrated) ─► node lock (same node id running: exit 2)
    root nursery
     ├─ LISTEN bridge (wake-ups on append)
     ├─ practice supervisor ── one supervised actor per practice whose lease this node holds
     ├─ monitor (alerts every 5 s; onsets and clearings to Slack), loop-lag probe
     ├─ ownership (actors.ownership): heartbeat, practice leases by rendezvous hashing, the
     │   safety guard; a lone node owns every practice from its first round
     ├─ intake (stopped first on SIGTERM)
     │   ├─ app-level list poller (batched GET /writebacks, fanned out to actors)
     │   ├─ onboarding (at start, every SIKKA_ONBOARD_INTERVAL, on request)
     │   ├─ append follower (another process extended a stream: its actor here wakes at once;
     │   │   a practice never seen: ownership re-plans)
     │   ├─ payload retention (hourly: keys of payloads final for SIKKA_PAYLOAD_RETENTION_DAYS)
     │   └─ admin API on the Unix socket (and on SIKKA_HTTP_LISTEN with a bearer token)
     └─ systemd watchdog pings

SIGTERM/SIGINT: STOPPING=1; the intake stops (no new work); the node leaves the live set and
every actor finishes its step (an HTTP call in flight completes and its outcome is recorded),
its lease released the moment it stops so a peer takes over at once; after ``DRAIN_S`` whatever
remains is cancelled (a submit cut short is reconciled by the next owner); exit 0 within 30 s.
"""

from __future__ import annotations

import signal
import sys
from functools import partial

import httpx
import structlog
import trio

from actors.monitoring import looplag
from actors.process import systemd
from actors.runtime.deps import Deps, utc_now
from actors.api.admin import Admin
from actors.api.auth import bearer_guard
from actors.runtime.applevel import AppLevel
from actors.runtime.follower import follow_appends
from actors.process.config import Settings
from actors.api.http import bind_unix_listener, serve_connection
from actors.process.gcpolicy import freeze_long_lived
from actors.monitoring.metrics import Metrics, StateCollector, TimedStore
from actors.monitoring.monitor import Monitor
from actors.runtime.ownership import Ownership
from actors.runtime.practices import PracticeSupervisor
from actors.core.ratelimit import Budget
from actors.runtime.sikka import SikkaClient
from actors.monitoring.slack import SlackNotifier
from store.credentials import Credentials, PgCredentialRows, Vault, load_master_key
from store.db import Database
from store import leases, retention
from store.pglog import PgEventStore

log = structlog.get_logger("supervisor")

DRAIN_S = 20.0  # actors' grace on shutdown (under systemd's TimeoutStopSec and the 30 s promise)


hold_run_lock = leases.hold_node_lock  # (conninfo, node_id): the session that holds this node's lock
AlreadyRunning = leases.AlreadyRunning


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
    metrics = Metrics()
    store = TimedStore(PgEventStore(db), metrics.event_append)
    credentials = Credentials(Vault(load_master_key(settings.secrets_key, settings.data_dir)), PgCredentialRows(db))
    await credentials.verify()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=settings.http_timeout, limits=limits) as http:
        client = SikkaClient(
            http, settings.api_url, settings.app_id, settings.app_key, settings.node_id, on_call=metrics.on_call
        )
        deps = Deps(
            store=store,
            credentials=credentials,
            client=client,
            settings=settings,
            clock=utc_now,
            app_budget=Budget(settings.app_rate_limit),
            on_events=metrics.observe_events,
        )
        practices = PracticeSupervisor(deps)
        ownership = Ownership(db, settings.node_id, settings.lease_ttl, practices)
        deps.owns, deps.owner_of = ownership.owns, ownership.owner_of
        app = AppLevel(deps, practices)
        deps.on_targets_changed = app.targets_changed
        slack = SlackNotifier(http, settings.slack_webhook_url) if settings.slack_webhook_url else None
        monitor = Monitor(deps, practices, publish=slack.publish if slack else lambda t: None)
        admin = Admin(deps, practices, app, monitor=monitor, metrics=metrics)
        monitor.webhook_last_at = lambda: admin.last_webhook_at
        metrics.registry.register(StateCollector(practices, lambda: monitor.table, deps.clock))
        listener = await bind_unix_listener(
            settings.admin_socket, mode=0o660 if settings.admin_group else 0o600, group=settings.admin_group
        )
        async with trio.open_nursery() as root:
            await root.start(store.pump_notifications)
            await root.start(practices.run)
            await root.start(ownership.run)
            await root.start(monitor.run)
            if slack is not None:
                root.start_soon(slack.run)
            async with trio.open_nursery() as intake:
                intake.start_soon(app.run_lists)
                intake.start_soon(app.run_onboarding)
                intake.start_soon(follow_appends, store, practices, ownership)
                intake.start_soon(retention.run, db, credentials, settings.payload_retention_days)
                intake.start_soon(partial(trio.serve_listeners, partial(serve_connection, handler=admin.handle), [listener]))
                if settings.http_listen:
                    host, port = settings.http_listen
                    tcp = await trio.open_tcp_listeners(port, host=host)
                    handler = partial(serve_connection, handler=bearer_guard(settings.api_token, admin.handle))
                    intake.start_soon(partial(trio.serve_listeners, handler, tcp))
                root.start_soon(partial(looplag.probe, observe=metrics.loop_lag.observe))
                root.start_soon(freeze_long_lived)
                interval = systemd.watchdog_interval()
                if interval:
                    root.start_soon(systemd.watchdog, interval)
                systemd.notify("READY=1")
                log.info("supervisor.ready", node=settings.node_id, socket=str(settings.admin_socket))
                task_status.started(deps)
                await _wait_for_stop(stop)
                systemd.notify("STOPPING=1")
                intake.cancel_scope.cancel()
            await ownership.begin_close()
            await practices.drain(DRAIN_S)
            await ownership.close()
            root.cancel_scope.cancel()
    settings.admin_socket.unlink(missing_ok=True)
    log.info("supervisor.stopped")


def main(argv: list[str] | None = None) -> int:
    from actors.cli.args import run_cli

    return run_cli(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
