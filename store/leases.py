"""Lease and node rows in PostgreSQL (migration 0003): the statements ``actors.runtime.ownership`` runs.

Every function takes a connection (``Database.run(fn, ...)``). Times are the database's
(``now()``), one clock for every node. Releasing and joining send ``NOTIFY leases`` so peers
re-plan at once instead of at their next renewal.

The process locks (one ``run`` per node id, the shared run lock) are ``store.nodelock``.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
import psycopg

from actors.core.leases import Lease

CHANNEL = "leases"


class Snapshot(msgspec.Struct, frozen=True):
    now: datetime
    nodes: dict[str, datetime]  # node → heartbeat expiry
    leases: dict[str, Lease]  # the rows of other owners (this node's own: its held leases, or leftovers)
    practices: list[str]  # practices that should run somewhere


def join(conn: psycopg.Connection, node_id: str, ttl: float) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO nodes (node_id, expires_at) VALUES (%s, now() + make_interval(secs => %s))"
            " ON CONFLICT (node_id) DO UPDATE SET started_at = now(), expires_at = EXCLUDED.expires_at",
            (node_id, ttl),
        )
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, node_id))


def leave(conn: psycopg.Connection, node_id: str) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM nodes WHERE node_id = %s", (node_id,))
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, node_id))


def snapshot(conn: psycopg.Connection, node_id: str, ttl: float, *, heartbeat: bool) -> Snapshot:
    """The heartbeat (unless leaving), then everything a plan needs, at one database time."""
    with conn.transaction():
        if heartbeat:  # an upsert: a row removed by hand (or expired and reaped) comes back
            conn.execute(
                "INSERT INTO nodes (node_id, expires_at) VALUES (%s, now() + make_interval(secs => %s))"
                " ON CONFLICT (node_id) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                (node_id, ttl),
            )
        now = conn.execute("SELECT now()").fetchone()[0]
        nodes = dict(conn.execute("SELECT node_id, expires_at FROM nodes").fetchall())
        leases = {
            r[0]: Lease(*r)
            for r in conn.execute(
                "SELECT office_id, owner, term, expires_at FROM leases WHERE owner <> %s", (node_id,)
            ).fetchall()
        }
        practices = [
            r[0]
            for r in conn.execute(
                "SELECT office_id FROM practices WHERE state <> 'offboarded'"
                " AND coalesce((fold->>'registered')::boolean, false) ORDER BY office_id"
            ).fetchall()
        ]
    return Snapshot(now, nodes, leases, practices)


def acquire(conn: psycopg.Connection, node_id: str, office_ids: list[str], ttl: float) -> dict[str, int]:
    """Take the leases that are free, expired or this node's own leftovers; office → new term."""
    if not office_ids:
        return {}
    with conn.transaction():
        rows = conn.execute(
            "INSERT INTO leases (office_id, owner, term, expires_at)"
            " SELECT o, %(node)s, 1, now() + make_interval(secs => %(ttl)s) FROM unnest(%(offices)s::text[]) AS o"
            " ON CONFLICT (office_id) DO UPDATE SET owner = EXCLUDED.owner, term = leases.term + 1,"
            " expires_at = EXCLUDED.expires_at"
            " WHERE leases.expires_at <= now() OR leases.owner = EXCLUDED.owner"
            " RETURNING office_id, term",
            {"node": node_id, "ttl": ttl, "offices": office_ids},
        ).fetchall()
        taken = dict(rows)
        conn.execute("UPDATE practices SET owner = %s WHERE office_id = ANY(%s)", (node_id, list(taken)))
    return taken


def renew(conn: psycopg.Connection, node_id: str, held: dict[str, int], ttl: float) -> set[str]:
    """Extend the leases still held at the granted term and not expired; return those that were
    not (lost: expired, or taken by another node). Usually none: a lone node holding 20,000
    leases reads back nothing."""
    if not held:
        return set()
    rows = conn.execute(
        "WITH h AS (SELECT * FROM unnest(%s::text[], %s::bigint[]) AS h(office_id, term)),"
        " renewed AS (UPDATE leases l SET expires_at = now() + make_interval(secs => %s) FROM h"
        "  WHERE l.office_id = h.office_id AND l.term = h.term AND l.owner = %s AND l.expires_at > now()"
        "  RETURNING l.office_id)"
        " SELECT h.office_id FROM h WHERE h.office_id NOT IN (SELECT office_id FROM renewed)",
        (list(held), list(held.values()), ttl, node_id),
    ).fetchall()
    return {r[0] for r in rows}


def release(conn: psycopg.Connection, node_id: str, held: dict[str, int]) -> None:
    """End the leases now (their actors have stopped) and tell the peers."""
    if not held:
        return
    with conn.transaction():
        conn.execute(
            "UPDATE leases l SET expires_at = now() FROM unnest(%s::text[], %s::bigint[]) AS h(office_id, term)"
            " WHERE l.office_id = h.office_id AND l.term = h.term AND l.owner = %s",
            (list(held), list(held.values()), node_id),
        )
        conn.execute(
            "UPDATE practices SET owner = NULL WHERE office_id = ANY(%s) AND owner = %s", (list(held), node_id)
        )
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, node_id))


def holds(conn: psycopg.Connection, node_id: str, office_id: str, term: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM leases WHERE office_id = %s AND owner = %s AND term = %s AND expires_at > now()",
        (office_id, node_id, term),
    ).fetchone()
    return row is not None


def owner_of(conn: psycopg.Connection, office_id: str) -> str | None:
    """The node holding a live lease on the practice, if any."""
    row = conn.execute(
        "SELECT owner FROM leases WHERE office_id = %s AND expires_at > now()", (office_id,)
    ).fetchone()
    return row[0] if row else None
