"""Settings from the environment (interface section 2), validated once at start.

``load(env)`` returns ``Settings`` or raises ``ConfigError`` whose text is the one line the
program prints before exiting with status 2 (it names the variable and what is wrong).

Secrets (``SIKKA_APP_KEY``, ``SIKKA_SECRETS_KEY``, ``SIKKA_API_TOKEN``, …) come from the variable,
else from the file named by ``<VAR>_FILE``, else, under systemd, from
``$CREDENTIALS_DIRECTORY/<var in lower case>``.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import msgspec


class ConfigError(Exception):
    """A missing or malformed setting; ``str()`` is the one line to print."""


SECRET_VARS = (
    "SIKKA_APP_ID",
    "SIKKA_APP_KEY",
    "SIKKA_SECRETS_KEY",
    "SIKKA_API_TOKEN",
    "SIKKA_WEBHOOK_CALLBACK_KEY",
    "DATABASE_URL",
    "SLACK_WEBHOOK_URL",
    "SENTRY_DSN",
)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    app_id: str | None = None
    app_key: str | None = None
    api_url: str = "https://api.sikkasoft.com/v4"
    database_url: str | None = None
    data_dir: Path = Path(".sikka")
    admin_socket: Path = Path(".sikka/admin.sock")
    admin_group: str | None = None
    secrets_key: str | None = None
    rate_limit: int = 200
    app_rate_limit: int = 200
    onboard_interval: float = 300.0
    key_check_interval: float = 60.0
    http_timeout: float = 30.0
    db_timeout: float = 5.0
    absence_grace: float = 30.0
    quiet_hours: tuple[str, str] = ("00:00", "06:00")
    deadline_s: float = 21600.0
    payload_retention_days: float = 30.0
    http_listen: tuple[str, int] | None = None
    api_token: str | None = None
    webhook_callback_key: str | None = None
    node_id: str = "localhost"
    lease_ttl: float = 30.0
    slack_webhook_url: str | None = None
    sentry_dsn: str | None = None
    log_format: str = "json"

    def require_app_credentials(self) -> None:
        for name, value in (("SIKKA_APP_ID", self.app_id), ("SIKKA_APP_KEY", self.app_key)):
            if not value:
                raise ConfigError(f"{name} is not set (required by this command)")


def secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret's value from ``name``, ``name_FILE`` or ``$CREDENTIALS_DIRECTORY/name``."""
    value = env.get(name)
    if value:
        return value
    file_name = env.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from None
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / name.lower()
        if path.is_file():
            return path.read_text().strip()
    return None


def _number(env: Mapping[str, str], name: str, default: float, *, integer: bool = False, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{name}={raw!r} is not {kind}") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _quiet_hours(raw: str) -> tuple[str, str]:
    parts = raw.split("-")
    if len(parts) != 2 or not all(_HHMM.match(p) for p in parts):
        raise ConfigError(f"SIKKA_QUIET_HOURS={raw!r} is not HH:MM-HH:MM")
    return parts[0], parts[1]


def _listen(raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"SIKKA_HTTP_LISTEN={raw!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def check_database_url(url: str) -> str:
    """Reject what is certainly not a PostgreSQL URL (``postgresql://`` or a key=value DSN)."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ConfigError(f"DATABASE_URL: scheme {parts.scheme!r} is not postgresql://")
        try:
            _port = parts.port  # urllib parses the port lazily: a non-number raises here
        except ValueError:
            raise ConfigError("DATABASE_URL: the port is not a number") from None
        return url
    if re.match(r"^\s*\w+\s*=", url):
        return url
    raise ConfigError("DATABASE_URL is neither a postgresql:// URL nor a key=value connection string")


def load(env: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Settings from ``env`` (default ``os.environ``); ``overrides`` are command-line flags."""
    env = os.environ if env is None else env
    data_dir = Path(overrides.get("data_dir") or env.get("SIKKA_DATA_DIR") or env.get("STATE_DIRECTORY") or ".sikka")
    runtime_dir = env.get("RUNTIME_DIRECTORY")
    admin_socket = Path(
        overrides.get("admin_socket")
        or env.get("SIKKA_ADMIN_SOCKET")
        or (Path(runtime_dir) / "admin.sock" if runtime_dir else data_dir / "admin.sock")
    )
    if len(os.fsencode(str(admin_socket))) > 100:
        raise ConfigError(f"SIKKA_ADMIN_SOCKET: the path {str(admin_socket)!r} is over 100 bytes")
    database_url = overrides.get("database_url") or secret(env, "DATABASE_URL")
    if database_url:
        database_url = check_database_url(database_url)
    api_url = (overrides.get("api_url") or env.get("SIKKA_API_URL") or "https://api.sikkasoft.com/v4").rstrip("/")
    if urlsplit(api_url).scheme not in ("http", "https") or not urlsplit(api_url).netloc:
        raise ConfigError(f"SIKKA_API_URL={api_url!r} is not an http(s) URL")
    http_listen = _listen(env["SIKKA_HTTP_LISTEN"]) if env.get("SIKKA_HTTP_LISTEN") else None
    api_token = secret(env, "SIKKA_API_TOKEN")
    if http_listen and not api_token:
        raise ConfigError("SIKKA_API_TOKEN is required when SIKKA_HTTP_LISTEN is set")
    slack_webhook_url = secret(env, "SLACK_WEBHOOK_URL")
    if slack_webhook_url and (urlsplit(slack_webhook_url).scheme not in ("http", "https") or not urlsplit(slack_webhook_url).netloc):
        raise ConfigError("SLACK_WEBHOOK_URL is not an http(s) URL")
    log_format = env.get("SIKKA_LOG_FORMAT") or ("console" if os.isatty(1) else "json")
    if log_format not in ("json", "console"):
        raise ConfigError(f"SIKKA_LOG_FORMAT={log_format!r} is not json or console")
    return Settings(
        app_id=secret(env, "SIKKA_APP_ID"),
        app_key=secret(env, "SIKKA_APP_KEY"),
        api_url=api_url,
        database_url=database_url,
        data_dir=data_dir,
        admin_socket=admin_socket,
        admin_group=env.get("SIKKA_ADMIN_GROUP") or None,
        secrets_key=secret(env, "SIKKA_SECRETS_KEY"),
        rate_limit=int(_number(env, "SIKKA_RATE_LIMIT", 200, integer=True, minimum=1)),
        app_rate_limit=int(_number(env, "SIKKA_APP_RATE_LIMIT", 200, integer=True, minimum=1)),
        onboard_interval=_number(env, "SIKKA_ONBOARD_INTERVAL", 300, minimum=1),
        key_check_interval=_number(env, "SIKKA_KEY_CHECK_INTERVAL", 60, minimum=1),
        http_timeout=_number(env, "SIKKA_HTTP_TIMEOUT", 30, minimum=0.1),
        db_timeout=_number(env, "SIKKA_DB_TIMEOUT", 5, minimum=0.5),
        absence_grace=_number(env, "SIKKA_ABSENCE_GRACE", 30, minimum=0),
        quiet_hours=_quiet_hours(env.get("SIKKA_QUIET_HOURS") or "00:00-06:00"),
        deadline_s=_number(env, "SIKKA_DEADLINE", 21600, minimum=1),
        payload_retention_days=_number(env, "SIKKA_PAYLOAD_RETENTION_DAYS", 30, minimum=0),
        http_listen=http_listen,
        api_token=api_token,
        webhook_callback_key=secret(env, "SIKKA_WEBHOOK_CALLBACK_KEY"),
        node_id=env.get("SIKKA_NODE_ID") or socket.gethostname(),
        lease_ttl=_number(env, "SIKKA_LEASE_TTL", 30, minimum=1),
        slack_webhook_url=slack_webhook_url,
        sentry_dsn=secret(env, "SENTRY_DSN"),
        log_format=log_format,
    )
