"""The alerts that hold, kept per node in PostgreSQL (migration 0005, table ``alerts``).

The monitor (``actors.monitoring.monitor``) keeps its alert table in memory and mirrors it here
(a row written at onset, deleted at clearing), so that a restarted node starts from the alerts
that held when it stopped, with their ``since``, instead of raising them anew. Rows are keyed
by node: several supervisors on one database each keep their own (a practice's alerts are raised
by the node that runs it; the global ones by every node).
"""

from __future__ import annotations

import psycopg

from actors.core.alerting import SEVERITY, Alert, Table


class AlertRows:
    """This node's rows of ``alerts``, read and written from trio through ``Database.run``."""

    def __init__(self, db, node_id: str):
        self.db = db
        self.node_id = node_id

    async def load(self) -> Table:
        return await self.db.run(self._load)

    async def save(self, held: list[Alert], cleared: list[tuple[str, str | None]]) -> None:
        """Upsert ``held`` and delete ``cleared`` (keys), in one transaction."""
        await self.db.run(self._save, held, cleared)

    def _load(self, conn: psycopg.Connection) -> Table:
        rows = conn.execute(
            "SELECT kind, office_id, message, practice_name, since FROM alerts WHERE node_id = %s", (self.node_id,)
        ).fetchall()
        alerts = [  # the severity is this version's for the kind; a kind it no longer knows is dropped
            Alert(kind=kind, office_id=office_id or None, severity=SEVERITY[kind], message=message,
                  practice_name=practice_name, since=since)
            for kind, office_id, message, practice_name, since in rows
            if kind in SEVERITY
        ]
        return {a.key: a for a in alerts}

    def _save(self, conn: psycopg.Connection, held: list[Alert], cleared: list[tuple[str, str | None]]) -> None:
        with conn.transaction():
            for kind, office_id in cleared:
                conn.execute(
                    "DELETE FROM alerts WHERE node_id = %s AND kind = %s AND office_id = %s",
                    (self.node_id, kind, office_id or ""),
                )
            for a in held:
                conn.execute(
                    "INSERT INTO alerts (node_id, kind, office_id, severity, message, practice_name, since)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (node_id, kind, office_id) DO UPDATE"
                    " SET severity = EXCLUDED.severity, message = EXCLUDED.message,"
                    " practice_name = EXCLUDED.practice_name, since = EXCLUDED.since",
                    (self.node_id, a.kind, a.office_id or "", a.severity, a.message, a.practice_name, a.since),
                )
