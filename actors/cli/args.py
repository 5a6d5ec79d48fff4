"""The ``sikka-supervisor`` command line (interface section 3).

Exit status: 0 success; 1 the operation failed; 2 bad usage, bad input or bad settings (one line
on stderr naming what is wrong); 3 the admin socket is unreachable; 4 ``--wait`` ran out.
"""

from __future__ import annotations

import argparse
import sys

import trio

from actors.cli import client as cli_client
from actors.process import config
from actors.cli.client import EXIT_OK, EXIT_SOCKET, EXIT_USAGE


class UsageError(Exception):
    """Bad usage or settings: printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sikka-supervisor", description="Runs the Sikka API v4 integration.")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--data-dir", help="data directory (default: $SIKKA_DATA_DIR or ./.sikka)")
    parser.add_argument("--admin-socket", help="admin socket path")
    parser.add_argument("--api-url", help="Sikka base URL, /v4 included")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="the supervisor (systemd ExecStart)")
    commands.add_parser("migrate", help="apply the database schema (idempotent)")
    commands.add_parser("rotate-keys", help="re-encrypt every stored credential under the first SIKKA_SECRETS_KEY")

    replay = commands.add_parser("replay", help="every event with the state after it")
    replay.add_argument("office_id", nargs="?", help="only this practice's stream")
    replay.add_argument("--until", type=int, metavar="POSITION", help="stop at this log position")
    replay.add_argument("--json", action="store_true", help="JSON lines")
    replay.add_argument("--with-payloads", action="store_true", help="decrypt writeback payloads (patient data)")
    replay.add_argument(
        "--rebuild-projections", action="store_true", help="rebuild the projections from the log and swap them in"
    )

    from actors.cli import demo

    demo.add_arguments(commands.add_parser("demo", help="the whole system against the in-process simulator"))

    commands.add_parser("onboard", help="the authorization flow for every authorized practice")
    commands.add_parser("doctor", help="pre-flight checks, one line each")
    cli_client.add_socket_commands(commands)
    return parser


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.load(
        database_url=args.database_url, data_dir=args.data_dir, admin_socket=args.admin_socket, api_url=args.api_url
    )


def cmd_run(args: argparse.Namespace) -> int:
    import supervisor
    from actors.process import logs
    from store.connect import close_database, open_database

    settings = _settings(args)
    settings.require_app_credentials()
    logs.configure(settings.log_format)
    if settings.sentry_dsn:
        from actors.monitoring import tracking
        from actors.api.admin import VERSION

        tracking.init(settings.sentry_dsn, release=VERSION, node=settings.node_id)
    db = open_database(settings, max_size=10)
    try:
        try:
            lock = supervisor.hold_run_lock(db.conninfo, settings.node_id)
        except supervisor.AlreadyRunning as exc:
            raise UsageError(str(exc)) from None
        try:
            trio.run(supervisor.serve, settings, db)
        finally:
            lock.close()
    finally:
        close_database(db)
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from store import migrate
    from store.connect import close_database, open_database

    db = open_database(_settings(args), max_size=1, migrate_schema=False)
    try:
        applied = db.call(migrate.apply)
    finally:
        close_database(db)
    print(f"applied: {', '.join(applied)}" if applied else "schema up to date")
    return EXIT_OK


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    from store.connect import close_database, open_database
    from store.credentials import Credentials, PgCredentialRows, Vault, load_master_key

    settings = _settings(args)
    db = open_database(settings, max_size=2)
    try:
        credentials = Credentials(Vault(load_master_key(settings.secrets_key, settings.data_dir)), PgCredentialRows(db))
        count = trio.run(credentials.rotate)
    finally:
        close_database(db)
    print(f"re-encrypted {count} credentials under the first key of SIKKA_SECRETS_KEY")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from store import replay
    from store.connect import close_database, open_database
    from store.rebuild import rebuild

    settings = _settings(args)
    db = open_database(settings, max_size=2)
    try:
        if args.rebuild_projections:
            if db.call(replay.supervisor_running):
                raise UsageError("a supervisor is running on this database; stop it before rebuilding projections")
            report = db.call(rebuild)
            print(
                f"rebuilt from {report.events} events: {report.practices} practices, {report.writebacks} writebacks;"
                f" {report.differences} rows differed from the live tables before the swap"
            )
            return EXIT_OK
        payloads = trio.run(_open_payloads, settings, db, args.office_id) if args.with_payloads else None
        db.call(
            lambda conn: replay.print_replay(
                conn, sys.stdout, office_id=args.office_id, until=args.until, as_json=args.json, payloads=payloads
            )
        )
    finally:
        close_database(db)
    return EXIT_OK


async def _open_payloads(settings: config.Settings, db, office_id: str | None) -> dict[str, str]:
    from store.credentials import PURGED, Credentials, PgCredentialRows, Vault, load_master_key
    from store.replay import sealed_payloads

    credentials = Credentials(Vault(load_master_key(settings.secrets_key, settings.data_dir)), PgCredentialRows(db))
    sealed = await db.run(sealed_payloads, office_id)
    opened = await credentials.open_payloads(sealed)
    return {wid: (plain.decode() if plain is not None else PURGED) for wid, plain in opened.items()}


def cmd_demo(args: argparse.Namespace) -> int:
    from actors.cli import demo

    return demo.cmd_demo(args)


def cmd_onboard(args: argparse.Namespace) -> int:
    return cli_client.cmd_onboard(args, _settings(args))


def cmd_doctor(args: argparse.Namespace) -> int:
    return cli_client.cmd_doctor(args, lambda: _settings(args))


def cmd_socket(args: argparse.Namespace) -> int:
    return cli_client.run_socket_command(args, _settings(args))


COMMANDS = {
    "run": cmd_run,
    "migrate": cmd_migrate,
    "rotate-keys": cmd_rotate_keys,
    "replay": cmd_replay,
    "demo": cmd_demo,
    "onboard": cmd_onboard,
    "doctor": cmd_doctor,
    **{name: cmd_socket for name in cli_client.SOCKET_COMMANDS},
}


def run_cli(argv: list[str]) -> int:
    from store.credentials import SecretsKeyError
    from store.db import DatabaseUnavailable

    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, cli_client.CliUsage, config.ConfigError, DatabaseUnavailable, SecretsKeyError) as exc:
        print(f"sikka-supervisor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except cli_client.SocketUnreachable as exc:
        print(f"sikka-supervisor: {exc}", file=sys.stderr)
        return EXIT_SOCKET
    except BrokenPipeError:
        return EXIT_OK
