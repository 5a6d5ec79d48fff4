"""Logging: structlog lines on stdout, JSON by default (console rendering on a tty).

Processors: context variables (``office_id`` bound per actor), level, UTC timestamp, redaction,
exception info, then the renderer. Redaction drops the values of any key that names a secret or a
payload (``request_key``, ``refresh_key``, ``secret_key``, ``app_key``, ``token``, ``payload``,
``body``, …) wherever it appears, nested dicts included: only ids and codes reach a line.

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

import msgspec
import structlog

REDACTED = "[redacted]"
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

_encoder = msgspec.json.Encoder(enc_hook=str)


def redact(value):
    if isinstance(value, dict):
        return {k: (REDACTED if str(k).lower() in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def redaction(_logger, _name, event_dict: dict) -> dict:
    return redact(event_dict)


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


def configure(log_format: str = "json", level: int = logging.INFO, stream=None) -> None:
    stream = stream or sys.stdout
    journald = bool(os.environ.get("JOURNAL_STREAM"))
    renderer = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty()) if log_format == "console" else json_renderer(journald)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redaction,
            structlog.processors.dict_tracebacks if log_format == "json" else structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    driver = DriverLogs()
    for name in DRIVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        logger.handlers = [driver]
        logger.propagate = False
