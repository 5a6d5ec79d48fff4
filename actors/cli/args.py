"""The ``sikka-supervisor`` command line (interface section 3): the argparse parser, nothing else.

``parser()`` knows every command, its arguments and its help text; the composition root
(``supervisor.main``) parses with it and runs the command named. Argument values argparse
refuses (``demo --writebacks 0``) end with argparse's usage message and exit status 2.
"""

from __future__ import annotations

import argparse
import math

from actors.cli.commands import ACTIONS

DEMO_PRACTICES = 3
DEMO_WRITEBACKS = 30
DEMO_TIMEOUT_S = 300.0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def port_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def parser() -> argparse.ArgumentParser:
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

    _add_demo_arguments(commands.add_parser("demo", help="the whole system against the in-process simulator"))

    console = commands.add_parser(
        "console", help="the web console on a loopback port (for SSH forwarding); prints a one-time login URL"
    )
    console.add_argument("--port", type=port_number, default=0, help="port on 127.0.0.1 (default 0: a free one)")

    commands.add_parser("onboard", help="the authorization flow for every authorized practice")
    commands.add_parser("doctor", help="pre-flight checks, one line each")
    _add_socket_commands(commands)
    return parser


def _add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--practices", type=positive_int, default=DEMO_PRACTICES, metavar="N",
                        help=f"simulated practices (default {DEMO_PRACTICES})")
    parser.add_argument("--writebacks", type=positive_int, default=DEMO_WRITEBACKS, metavar="M",
                        help=f"booking writebacks to submit (default {DEMO_WRITEBACKS})")
    parser.add_argument("--data-dir", dest="demo_data_dir", metavar="D",
                        help="data directory to use (default: a fresh temporary one, removed afterwards)")
    parser.add_argument("--timeout", type=positive_float, default=DEMO_TIMEOUT_S, metavar="SECONDS",
                        help="give up (exit 1) when writebacks are not all final by then "
                        f"(default {DEMO_TIMEOUT_S:g})")


def _add_socket_commands(commands) -> None:
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
