"""From settings to a migrated database: the embedded server or ``DATABASE_URL``."""

from __future__ import annotations

import psycopg

from actors.process.config import Settings
from store import embedded, migrate
from store.db import Database, DatabaseUnavailable, describe_connect_error


def database_url(settings: Settings) -> str:
    """``DATABASE_URL``, or the embedded server's (started or adopted on demand)."""
    if settings.database_url:
        return settings.database_url
    try:
        return embedded.start(settings.data_dir)
    except Exception as exc:  # pgserver raises whatever its subprocesses raise
        raise DatabaseUnavailable(f"cannot start the embedded PostgreSQL under {settings.data_dir}/pg: {exc}") from None


def open_database(
    settings: Settings, *, max_size: int = 8, migrate_schema: bool = True, timeout: float | None = None
) -> Database:
    """A pool on the configured database with the schema applied; ``DatabaseUnavailable`` if not.
    ``timeout``: the longest wait for an answer (``store.db``; ``None``: wait)."""
    db = Database(database_url(settings), max_size=max_size, timeout=timeout, node=settings.node_id)
    db.open_sync()
    if migrate_schema:
        try:
            db.call(migrate.apply)
        except psycopg.Error as exc:
            db.close_sync()
            raise DatabaseUnavailable(f"cannot apply the schema: {describe_connect_error(exc)}") from None
    return db


def close_database(db: Database) -> None:
    db.close_sync()
    if embedded.serves(db.conninfo):  # not another one this process holds (a test session's)
        embedded.stop_if_last()
