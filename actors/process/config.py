"""Settings from the environment (interface section 2), validated once at start.

``load(env)`` returns ``Settings`` or raises ``ConfigError`` whose text is the one line the
program prints before exiting with status 2 (it names the variable and what is wrong).

Secrets (``SIKKA_APP_KEY``, ``SIKKA_SECRETS_KEY``, ``SIKKA_API_TOKEN``, …) come from the variable,
else from the file named by ``<VAR>_FILE``, else, under systemd, from
``$CREDENTIALS_DIRECTORY/<var in lower case>``. The secrets are ``actors.core.secret.Secret``
values (printed as ``[redacted]``); an error about one names the variable, never its value.

Numbers are finite and within bounds (a duration at most ten years), the admin group exists:
whatever ``load`` accepts, the program can run with.
"""

from __future__ import annotations

import grp
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import psycopg

from actors.core.secret import Secret, optional


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


MAX_SECONDS = 10 * 366 * 86400.0  # ten years: any longer duration overflows the date arithmetic
MAX_COUNT = 1_000_000


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    app_id: str | None = None
    app_key: Secret | None = None
    api_url: str = "https://api.sikkasoft.com/v4"
    database_url: str | None = None
    data_dir: Path = Path(".sikka")
    admin_socket: Path = Path(".sikka/admin.sock")
    admin_group: str | None = None
    secrets_key: Secret | None = None
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
    api_token: Secret | None = None
    webhook_callback_key: Secret | None = None
    node_id: str = "localhost"
    lease_ttl: float = 30.0
    slack_webhook_url: Secret | None = None
    sentry_dsn: Secret | None = None
    log_format: str = "json"
    max_connections: int = 256
    ui_show_payloads: bool = False

    def secrets(self) -> tuple[Secret, ...]:
        """Every secret setting that is set, and the database password (the log scrubber's list)."""
        found = (self.app_key, self.secrets_key, self.api_token, self.webhook_callback_key,
                 self.slack_webhook_url, self.sentry_dsn, optional(database_password(self.database_url)))
        return tuple(s for s in found if s)

    def require_app_credentials(self) -> None:
        for name, value in (("SIKKA_APP_ID", self.app_id), ("SIKKA_APP_KEY", self.app_key)):
            if not value:
                raise ConfigError(f"{name} is not set (required by this command)")


def credential(env: Mapping[str, str], name: str) -> str | None:
    """A credential's text from ``name``, ``name_FILE`` or ``$CREDENTIALS_DIRECTORY/name``."""
    value = env.get(name)
    if value:
        return value
    file_name = env.get(f"{name}_FILE")
    if file_name:
        return _read_credential(f"{name}_FILE", Path(file_name))
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / name.lower()
        if path.exists():
            return _read_credential(f"{name} (from $CREDENTIALS_DIRECTORY)", path)
    return None


def _read_credential(what: str, path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what}: {path} is not UTF-8 text") from None


def secret(env: Mapping[str, str], name: str) -> Secret | None:
    """A secret setting (see ``credential``), as a ``Secret``."""
    return optional(credential(env, name))


def _number(env: Mapping[str, str], name: str, default: float, *, integer: bool = False, minimum: float = 0,
            maximum: float = MAX_SECONDS) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{name}={raw!r} is not {kind}") from None
    if value != value:  # NaN
        raise ConfigError(f"{name}={raw!r} is not a number")
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum:g}")
    if value > maximum:
        raise ConfigError(f"{name}={raw!r} must be at most {maximum:.0f}")
    return value


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no setting: ``true``/``false`` (also 1/0, yes/no, on/off), unset or empty: false."""
    raw = (env.get(name) or "false").strip().lower()
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not true or false")


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


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _admin_group(raw: str | None) -> str | None:
    if raw:
        try:
            grp.getgrnam(raw)
        except KeyError:
            raise ConfigError(f"SIKKA_ADMIN_GROUP={raw!r}: no such group") from None
    return raw or None


_NODE_ID = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII without spaces: it goes into the User-Agent


def _node_id(raw: str | None) -> str:
    node_id = raw or socket.gethostname()
    if not _NODE_ID.match(node_id):
        raise ConfigError(f"SIKKA_NODE_ID={node_id!r} must be 1 to 200 printable ASCII characters without spaces")
    return node_id


def _paths(env: Mapping[str, str], overrides: Mapping[str, object]) -> tuple[Path, Path]:
    """(the data dir, the admin socket) from the flags, the variables or systemd's directories."""
    data_dir = Path(overrides.get("data_dir") or env.get("SIKKA_DATA_DIR") or env.get("STATE_DIRECTORY") or ".sikka")
    runtime_dir = env.get("RUNTIME_DIRECTORY")
    admin_socket = Path(
        overrides.get("admin_socket")
        or env.get("SIKKA_ADMIN_SOCKET")
        or (Path(runtime_dir) / "admin.sock" if runtime_dir else data_dir / "admin.sock")
    )
    if len(os.fsencode(str(admin_socket))) > 100:
        raise ConfigError(f"SIKKA_ADMIN_SOCKET: the path {str(admin_socket)!r} is over 100 bytes")
    return data_dir, admin_socket


def database_password(url: str | None) -> str | None:
    try:
        return psycopg.conninfo.conninfo_to_dict(url).get("password") if url else None
    except psycopg.Error:
        return None


def load(env: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Settings from ``env`` (default ``os.environ``); ``overrides`` are command-line flags."""
    env = os.environ if env is None else env
    data_dir, admin_socket = _paths(env, overrides)
    database_url = overrides.get("database_url") or credential(env, "DATABASE_URL")
    if database_url:
        database_url = check_database_url(database_url)
    api_url = (overrides.get("api_url") or env.get("SIKKA_API_URL") or "https://api.sikkasoft.com/v4").rstrip("/")
    if not _http_url(api_url):
        raise ConfigError(f"SIKKA_API_URL={api_url!r} is not an http(s) URL")
    http_listen = _listen(env["SIKKA_HTTP_LISTEN"]) if env.get("SIKKA_HTTP_LISTEN") else None
    api_token = secret(env, "SIKKA_API_TOKEN")
    if http_listen and not api_token:
        raise ConfigError("SIKKA_API_TOKEN is required when SIKKA_HTTP_LISTEN is set")
    slack_webhook_url = secret(env, "SLACK_WEBHOOK_URL")
    if slack_webhook_url and not _http_url(slack_webhook_url.reveal()):
        raise ConfigError("SLACK_WEBHOOK_URL is not an http(s) URL")
    log_format = env.get("SIKKA_LOG_FORMAT") or ("console" if os.isatty(1) else "json")
    if log_format not in ("json", "console"):
        raise ConfigError(f"SIKKA_LOG_FORMAT={log_format!r} is not json or console")
    return Settings(
        app_id=credential(env, "SIKKA_APP_ID"),
        app_key=secret(env, "SIKKA_APP_KEY"),
        api_url=api_url,
        database_url=database_url,
        data_dir=data_dir,
        admin_socket=admin_socket,
        admin_group=_admin_group(env.get("SIKKA_ADMIN_GROUP")),
        secrets_key=secret(env, "SIKKA_SECRETS_KEY"),
        rate_limit=int(_number(env, "SIKKA_RATE_LIMIT", 200, integer=True, minimum=1, maximum=MAX_COUNT)),
        app_rate_limit=int(_number(env, "SIKKA_APP_RATE_LIMIT", 200, integer=True, minimum=1, maximum=MAX_COUNT)),
        onboard_interval=_number(env, "SIKKA_ONBOARD_INTERVAL", 300, minimum=1),
        key_check_interval=_number(env, "SIKKA_KEY_CHECK_INTERVAL", 60, minimum=1),
        http_timeout=_number(env, "SIKKA_HTTP_TIMEOUT", 30, minimum=0.1),
        db_timeout=_number(env, "SIKKA_DB_TIMEOUT", 5, minimum=0.5),
        absence_grace=_number(env, "SIKKA_ABSENCE_GRACE", 30, minimum=0),
        quiet_hours=_quiet_hours(env.get("SIKKA_QUIET_HOURS") or "00:00-06:00"),
        deadline_s=_number(env, "SIKKA_DEADLINE", 21600, minimum=1),
        payload_retention_days=_number(env, "SIKKA_PAYLOAD_RETENTION_DAYS", 30, maximum=MAX_SECONDS / 86400),
        http_listen=http_listen,
        api_token=api_token,
        webhook_callback_key=secret(env, "SIKKA_WEBHOOK_CALLBACK_KEY"),
        node_id=_node_id(env.get("SIKKA_NODE_ID")),
        lease_ttl=_number(env, "SIKKA_LEASE_TTL", 30, minimum=1),
        slack_webhook_url=slack_webhook_url,
        sentry_dsn=secret(env, "SENTRY_DSN"),
        log_format=log_format,
        max_connections=int(_number(env, "SIKKA_MAX_CONNECTIONS", 256, integer=True, minimum=1, maximum=MAX_COUNT)),
        ui_show_payloads=_flag(env, "SIKKA_UI_SHOW_PAYLOADS"),
    )
