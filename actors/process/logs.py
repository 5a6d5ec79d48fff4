"""Logging: structlog lines on stdout, JSON by default (console rendering on a tty), and the one
scrubber that log lines and Sentry events (``actors.monitoring.tracking``) pass through.

Processors, in order: context variables (``office_id`` bound per actor), level, UTC timestamp,
the exception rendered WITHOUT its frames' local variables (a frame may hold a key or a payload
under any name; structlog's ``dict_tracebacks`` would show them), ``redaction`` over the whole
event (the rendered exception included), the renderer, and last ``scrub_line`` over the rendered
line. Secrets are ``actors.core.secret.Secret`` values, printed as ``[redacted]`` wherever they
go; on top of that:

- by key: the value of any key that names a secret or a payload (``request_key``,
  ``refresh_key``, ``secret_key``, ``app_key``, ``token``, ``payload``, ``body``, …) is dropped,
  wherever it appears, nested dicts included: only ids and codes reach a line;
- by value: the values of the process's own secrets (``configure(secrets=...)``: the app key, the
  API token, the callback key, the Fernet keys, the Sentry DSN, the Slack URL, the database
  password) are replaced wherever they appear in a string, whatever the key, including in the
  rendered line itself (an exception's message, a ``repr``).

The database driver (``psycopg``, ``psycopg.pool``) and ``pgserver`` log through the standard
library; ``DriverLogs`` turns each record into one line of ours (``database.driver``: the logger,
the first line of libpq's multi-line text) and lets through at most one per message kind every
``DRIVER_LOG_EVERY_S``, the number held back riding on the next one, so a database outage is a
handful of lines rather than a flood.

With ``JOURNAL_STREAM`` set (stdout is the journal), each JSON line starts with the syslog
priority (``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug) so ``journalctl -p`` works.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable

import msgspec
import structlog
from structlog.tracebacks import ExceptionDictTransformer

from actors.core.secret import REDACTED, Secret

SECRET_KEYS = frozenset(
    {
        "request_key",
        "refresh_key",
        "secret_key",
        "app_key",
        "app-key",
        "request-key",
        "refresh-key",
        "authorization",
        "callback-key",
        "callback_key",
        "token",
        "api_token",
        "secrets_key",
        "payload",
        "body",
        "plaintext",
    }
)
DRIVER_LOGGERS = ("psycopg", "psycopg.pool", "pgserver")
DRIVER_LOG_EVERY_S = 30.0
PRIORITY = {"critical": 2, "error": 3, "exception": 3, "warning": 4, "info": 6, "debug": 7}
MIN_SCRUBBED = 6  # shorter values are not scrubbed by value (they would blank out ordinary words)

_encoder = msgspec.json.Encoder(enc_hook=str)
_protected: tuple[str, ...] = ()  # the values scrub_text replaces, longest first


def protect(secrets: Iterable[Secret | None]) -> None:
    """Scrub these secrets' values (and each item of a comma-separated list) from every line and
    Sentry event from now on; replaces what was protected before."""
    global _protected
    values = set()
    for secret in secrets:
        if secret:
            text = secret.reveal()
            values.update([text, *(part.strip() for part in text.split(","))])
    _protected = tuple(sorted((v for v in values if len(v) >= MIN_SCRUBBED), key=len, reverse=True))


def scrub_text(text: str) -> str:
    for value in _protected:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact(value):
    """``value`` with secrets dropped by key and by value (dicts, lists and strings, nested)."""
    if isinstance(value, dict):
        return {k: (REDACTED if str(k).lower() in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def redaction(_logger, _name, event_dict: dict) -> dict:
    return redact(event_dict)


def scrub_line(_logger, _name, line: str) -> str:
    """The last processor: the rendered line itself, scrubbed by value."""
    return scrub_text(line)


def crashed(command: str, exc: BaseException) -> None:
    """An exception no command expected (a bug): one line with its traceback (no frame's
    variables, scrubbed), on stderr when the command had not configured logging."""
    if not structlog.is_configured():
        configure("json", stream=sys.stderr)
    structlog.get_logger("supervisor").critical("command.crashed", command=command, exc_info=exc)


def json_renderer(journald: bool):
    def render(_logger, _name, event_dict: dict) -> str:
        line = _encoder.encode(event_dict).decode()
        if journald:
            return f"<{PRIORITY.get(event_dict.get('level', 'info'), 6)}>{line}"
        return line

    return render


class DriverLogs(logging.Handler):
    """Standard-library records of the database driver as rate-limited structlog lines."""

    def __init__(self, every: float = DRIVER_LOG_EVERY_S, clock=time.monotonic):
        super().__init__(logging.WARNING)
        self.every = every
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        kind = (record.name, str(record.msg))  # the format string: one kind whatever its arguments
        now = self.clock()
        if now - self._last.get(kind, float("-inf")) < self.every:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now
        lines = record.getMessage().strip().splitlines()
        extra = {"held_back": self._held.pop(kind)} if kind in self._held else {}
        structlog.get_logger(record.name).log(
            record.levelno, "database.driver", message=lines[0] if lines else "", **extra
        )


def configure(
    log_format: str = "json", level: int = logging.INFO, stream=None, *, secrets: Iterable[Secret | None] | None = None
) -> None:
    """Log lines to ``stream`` (stdout) from ``level`` up; ``secrets``: the values to scrub (as
    ``protect``; ``None`` keeps those protected already)."""
    stream = stream or sys.stdout
    if secrets is not None:
        protect(secrets)
    journald = bool(os.environ.get("JOURNAL_STREAM"))
    if log_format == "console":
        exceptions = structlog.processors.format_exc_info  # a plain traceback: no locals
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    else:
        exceptions = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        renderer = json_renderer(journald)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            exceptions,
            redaction,
            renderer,
            scrub_line,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=False,  # a logger used before a reconfiguration follows it (~16 µs a line)
    )
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    driver = DriverLogs()
    for name in DRIVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        logger.handlers = [driver]
        logger.propagate = False
