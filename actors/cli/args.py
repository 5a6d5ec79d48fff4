"""The ``sikka-supervisor`` command line (interface section 3): the argparse parser, nothing else.

``parser()`` knows every command, its arguments and its help: each subcommand's help has a
description and an example, ``submit --help`` lists each operation's payload fields (from the
operation table, ``actors.core.operations.OPERATIONS``), and ``--help`` ends with the exit
statuses and the main settings. The composition root (``supervisor.main``) parses with it and
runs the command named. Argument values argparse refuses (``demo --writebacks 0``) end with
argparse's usage message and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import textwrap

from actors.cli.commands import ACTIONS
from actors.core.operations import OPERATIONS

DEMO_PRACTICES = 3
DEMO_WRITEBACKS = 30
DEMO_TIMEOUT_S = 300.0

EXIT_STATUSES = """exit status:
  0  success
  1  the operation failed (a writeback ended failed, a 409, a check failed)
  2  bad usage, bad input (an unknown or malformed office or writeback id
     included) or bad settings
  3  the admin socket is unreachable
  4  --wait ran out before a final state"""

SETTINGS = """main settings (environment; a secret also as NAME_FILE):
  SIKKA_APP_ID, SIKKA_APP_KEY  application credentials (run, onboard, doctor)
  SIKKA_API_URL        Sikka base URL, /v4 included
  DATABASE_URL         PostgreSQL (unset: embedded, under SIKKA_DATA_DIR/pg)
  SIKKA_DATA_DIR       data directory (default ./.sikka)
  SIKKA_ADMIN_SOCKET   admin socket (default SIKKA_DATA_DIR/admin.sock)
  SIKKA_SECRETS_KEY    Fernet key(s) for credentials and payloads at rest
  SIKKA_HTTP_LISTEN    the admin API on TCP too (with SIKKA_API_TOKEN)
  SIKKA_LOG_FORMAT     json or console
the README lists every setting"""
HELP_WIDTH = 78  # the width the pre-formatted parts of the help (operations, settings) keep within


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions and epilogs as paragraphs filled to the terminal, except those with indented
    lines (examples, the operations' fields, exit statuses), which are printed as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(
            paragraph if "\n " in paragraph or paragraph.startswith(" ")
            else textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent, subsequent_indent=indent)
            for paragraph in text.split("\n\n")
        )


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


def operations_help() -> str:
    """Each operation's payload fields, from the operation table."""
    lines = ["operations and their payload fields (values are strings; numbers are converted):"]
    for spec in OPERATIONS.values():
        path = f"/{spec.resource}" + (f"/{{{spec.path_field}}}" if spec.path_field else "")
        lines.append(f"  {spec.name}  ({spec.method} {path})")
        for label, fields in (("required", spec.required), ("at least one of", spec.one_of),
                              ("optional", spec.optional)):
            if fields:
                lines += textwrap.wrap(f"{label}: {', '.join(fields)}", HELP_WIDTH, initial_indent="    ",
                                       subsequent_indent="      ")
    lines += textwrap.wrap("formats: date and birthdate yyyy-mm-dd, time HH:mm, length a positive integer (minutes)",
                           HELP_WIDTH, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines)


def port_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sikka-supervisor", description="Runs the Sikka API v4 integration.",
        epilog=f"{EXIT_STATUSES}\n\n{SETTINGS}", formatter_class=HelpFormatter,
    )
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--data-dir", help="data directory (default: $SIKKA_DATA_DIR or ./.sikka)")
    parser.add_argument("--admin-socket", help="admin socket path")
    parser.add_argument("--api-url", help="Sikka base URL, /v4 included")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = _adder(commands)

    add("run", "the supervisor (systemd ExecStart)",
        "Applies migrations, starts one actor per practice, polls authorized_practices and serves the admin API "
        "until SIGTERM. Its log goes to stdout (SIKKA_LOG_FORMAT).", "sikka-supervisor run",
        json="its log as JSON lines, whatever SIKKA_LOG_FORMAT says")
    add("migrate", "apply the database schema (idempotent)", "Applies the schema's pending migrations.",
        "sikka-supervisor migrate")
    add("rotate-keys", "re-encrypt every stored credential under the first SIKKA_SECRETS_KEY",
        "After adding a new key in front of SIKKA_SECRETS_KEY: every credential is re-encrypted under it.",
        "sikka-supervisor rotate-keys  # with SIKKA_SECRETS_KEY=NEW,OLD")
    _add_replay(add)
    _add_demo_arguments(add(
        "demo", "the whole system against the in-process simulator",
        "A fresh data dir, embedded PostgreSQL, the simulator in the same process with a small fault mix, the real "
        "onboarding flow and booking writebacks; live progress on stderr, then a summary. Exit 0 when every "
        "writeback is final.", "sikka-supervisor demo --practices 3 --writebacks 30",
        json="the summary's figures as one JSON object on stdout",
    ))
    onboard = add("onboard", "the authorization flow for every authorized practice",
                  "Asks the running supervisor (POST /onboard), or runs the flow itself when none answers. An "
                  "offboarded practice comes back only when named with --office.",
                  "sikka-supervisor onboard\n  sikka-supervisor onboard --office D1000", wide=True)
    onboard.add_argument("--office", metavar="OFFICE_ID", help="only this practice (brings an offboarded one back)")
    add("doctor", "pre-flight checks, one line each",
        "Checks the settings, the database, the app credentials (authorized_practices), each practice's key "
        "(request_key_info), each practice's data freshness (data_sync_status) and the admin socket; each line "
        "says what the check means. Exit 0 when all pass.", "sikka-supervisor doctor")
    console = add("console", "the web console on a loopback port, for SSH forwarding",
                  "Serves the running supervisor's console (/ui/, read through the admin socket) on 127.0.0.1 and "
                  "prints a one-time login URL; Ctrl-C stops it.", "sikka-supervisor console --port 8765",
                  json='the login URL and port as one JSON object on stdout ({"url": ..., "port": ...})')
    console.add_argument("--port", type=port_number, default=0, help="port on 127.0.0.1 (default 0: a free one)")
    _add_socket_commands(add)
    return parser


def _adder(commands):
    """``add(name, summary, description, example, json=..., wide=False)``: a subcommand whose help
    has its description and an example, ``--json`` (``json``: what it prints) and, when asked, ``--wide``."""

    def add(name: str, summary: str, description: str, example: str, *,
            json: str = "print the answer as JSON on stdout", wide: bool = False):
        sub = commands.add_parser(
            name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {description}",
            epilog=f"example:\n  {example}", formatter_class=HelpFormatter,
        )
        sub.add_argument("--json", action="store_true", help=json)
        if wide:
            sub.add_argument("--wide", action="store_true", help="every column, however wide the terminal")
        return sub

    return add


def _add_replay(add) -> None:
    replay = add("replay", "every event with the state after it",
                 "Reads the log with the production fold; works with the supervisor stopped. Payloads are redacted "
                 "unless --with-payloads. --rebuild-projections rebuilds the tables from the log instead.",
                 "sikka-supervisor replay D1000 --until 120\n  sikka-supervisor replay --json | jq .type",
                 wide=True)
    replay.add_argument("office_id", nargs="?", help="only this practice's stream")
    replay.add_argument("--until", type=int, metavar="POSITION", help="stop at this log position")
    replay.add_argument("--with-payloads", action="store_true", help="decrypt writeback payloads (patient data)")
    replay.add_argument(
        "--rebuild-projections", action="store_true", help="rebuild the projections from the log and swap them in"
    )


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


def _add_socket_commands(add) -> None:
    """The commands that ask the running supervisor on its admin socket."""
    status = add("status", "practice status", "Every practice's state, conditions, rate and writeback counts; one "
                 "practice in detail when named.", "sikka-supervisor status\n  sikka-supervisor status D1000",
                 wide=True)
    status.add_argument("office_id", nargs="?", help="one practice (default: all)")

    submit = add("submit", "queue a writeback",
                 f"OPERATION for the practice, with its payload. With --wait, waits for a final state (exit 4 when "
                 f"it runs out, 1 when the writeback fails).\n\n{operations_help()}",
                 "sikka-supervisor submit D1000 book_appointment --wait 60 --payload '{\n"
                 '    "patient_id": "12", "date": "2026-03-10", "time": "09:00", "length": 30,\n'
                 '    "provider_id": "DDS1", "operatory": "OP1", "practice_id": "1"}\'')
    submit.add_argument("office_id")
    submit.add_argument("operation", metavar="OPERATION", help=", ".join(OPERATIONS))
    submit.add_argument("--payload", required=True, metavar="JSON", help="the operation's fields as a JSON object")
    submit.add_argument("--idempotency-key", metavar="K", help="the same key and request answer the same writeback")
    submit.add_argument("--deadline", type=float, metavar="SECONDS", help="seconds from now to the deadline")
    submit.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for a final state")

    writeback = add("writeback", "one writeback", "Its state, error, Sikka's ids and times.",
                    "sikka-supervisor writeback 6f1c2a4e-3b7d-4e8f-9a0b-1c2d3e4f5a6b")
    writeback.add_argument("writeback_id")

    writebacks = add("writebacks", "a practice's writebacks, newest first",
                     "One line each: id, state, when requested, operation and error.",
                     "sikka-supervisor writebacks D1000 --state failed --limit 20", wide=True)
    writebacks.add_argument("office_id")
    writebacks.add_argument("--state", action="append", metavar="S", help="only this state (repeatable)")
    writebacks.add_argument("--limit", type=int, metavar="N", help="at most N (default 50, max 500)")

    add("usage", "rate usage per practice", "Requests sent in the last 60 s against each practice's limit, and "
        "Sikka's own figures.", "sikka-supervisor usage", wide=True)
    add("alerts", "the alerts that hold", "Each alert's severity, kind, practice, since when and message.",
        "sikka-supervisor alerts", wide=True)

    stats = add("stats", "counts, success rate, confirmation p50/p95",
                "A practice's writebacks: requested, completed, failed, cancelled, the success rate and how long "
                "confirmation took.", "sikka-supervisor stats D1000 --since 2026-03-01T00:00:00Z")
    stats.add_argument("office_id")
    stats.add_argument("--since", metavar="ISO", help="only writebacks requested since then (with its zone: Z)")

    for name, (path, _, help_text) in ACTIONS.items():
        kind = "WRITEBACK_ID" if path.startswith("/writebacks") else "OFFICE_ID"
        example = "6f1c2a4e-3b7d-4e8f-9a0b-1c2d3e4f5a6b" if kind == "WRITEBACK_ID" else "D1000"
        action = add(name, help_text, f"POST {path}.", f"sikka-supervisor {name} {example}")
        action.add_argument("target", metavar=kind)
