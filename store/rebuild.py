"""``sikka-supervisor replay --rebuild-projections``: the ``practices`` and ``writebacks`` tables
rebuilt from the whole log by the production fold (``store.projections.fold_log``).

The log is folded into shadow tables, the rows that differ from the live ones are counted, and
(with ``swap``) the live rows are replaced in the same transaction: ``TRUNCATE`` + ``INSERT …
SELECT`` under the append lock, so appends wait meanwhile and names, indexes and constraints stay
as the migrations made them.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import psycopg

from store.eventlog import RecordedEvent
from store.locks import APPEND_LOCK
from store.pglog import iterate_log
from store.projections import encode_json, fold_log, practice_record, writeback_record


class RebuildReport(msgspec.Struct, frozen=True):
    events: int
    practices: int
    writebacks: int
    differences: int  # rows that differed between the live tables and the rebuild (before the swap)


def rebuild(conn: psycopg.Connection, *, swap: bool = True) -> RebuildReport:
    """Fold the log into shadow tables, count the rows that differ from the live ones, and (with
    ``swap``) replace the live rows in the same transaction. Appends wait meanwhile."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", APPEND_LOCK)
        count = 0

        def counted() -> Iterator[RecordedEvent]:
            nonlocal count
            for r in iterate_log(conn):
                count += 1
                yield r

        practices, writebacks = fold_log(counted())
        for table in ("practices", "writebacks"):
            conn.execute(f"CREATE TEMP TABLE {table}_shadow (LIKE {table} INCLUDING ALL) ON COMMIT DROP")
        conn.execute(
            "INSERT INTO practices_shadow SELECT * FROM jsonb_populate_recordset(NULL::practices, %s::jsonb)",
            (encode_json([practice_record(p, v) for p, v in practices.values()]),),
        )
        conn.execute(
            "INSERT INTO writebacks_shadow SELECT * FROM jsonb_populate_recordset(NULL::writebacks, %s::jsonb)",
            (encode_json([writeback_record(w) for w in writebacks.values()]),),
        )
        conn.execute(
            "UPDATE practices_shadow s SET owner = p.owner FROM practices p WHERE p.office_id = s.office_id"
        )
        differences = 0
        for table in ("practices", "writebacks"):
            differences += conn.execute(
                f"SELECT (SELECT count(*) FROM (TABLE {table} EXCEPT TABLE {table}_shadow) a)"
                f" + (SELECT count(*) FROM (TABLE {table}_shadow EXCEPT TABLE {table}) b)"
            ).fetchone()[0]
        if swap:
            conn.execute("TRUNCATE practices, writebacks")
            conn.execute("INSERT INTO practices TABLE practices_shadow")
            conn.execute("INSERT INTO writebacks TABLE writebacks_shadow")
    return RebuildReport(events=count, practices=len(practices), writebacks=len(writebacks), differences=differences)
