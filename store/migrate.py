"""Versioned schema migrations: ``store/migrations/NNNN_name.sql``, applied in order, once each.

``apply(conn)`` takes a session-independent transaction-scoped advisory lock, so several processes
starting at once apply each migration exactly once; a second run is a no-op. Every migration
runs in its own transaction together with its row in ``schema_migrations``. An up-to-date schema
is recognised without any DDL, so a role that may not create tables (``deploy/roles.sql``'s
``sikka_supervisor``) runs against a schema its owner migrated.
"""

from __future__ import annotations

import re
from importlib import resources

import psycopg

from store.locks import MIGRATE_LOCK

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration shipped, in order."""
    found = []
    for entry in resources.files("store.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


def pending(conn: psycopg.Connection) -> list[str]:
    """The names of the migrations this database lacks (read-only)."""
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
        return [name for _, name, _ in migrations()]
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    return [name for version, name, _ in migrations() if version not in done]


def apply(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations this database lacks; return the names applied."""
    if not pending(conn):
        return []
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATE_LOCK)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            with conn.transaction():
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(name)
    return applied
