"""The ``practices`` and ``writebacks`` projections: rows computed by the production fold.

Both stores keep the projections in step with the log by applying ``project`` to every batch
they append, in the same transaction (PostgreSQL) or the same step (memory): a reader of the
tables never sees an event without its effect. ``project`` uses ``actors.core.state.step``, the
very function the live actor folds with, on the stored practice summary and writeback rows;
``fold_log`` applies it to a whole log (``store.rebuild`` rebuilds the tables with it).

A practice row stores the practice-level fold state (``PracticeSummary``: the ``Practice``
without its open writebacks and payloads) in ``fold``; a writeback row stores the whole
``Writeback`` in ``fold``. The typed columns beside them are for dashboards (interface §6).

Pure: no I/O and nothing of the shell (``tests/core/test_purity.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from msgspec.structs import replace

from actors.core import events as ev
from actors.core.state import FINAL_STATES, Practice, Writeback, empty, step


def summary(p: Practice) -> Practice:
    """The practice-level part of the fold state that a ``practices`` row keeps."""
    if not p.writebacks and not p.payloads:
        return p
    return replace(p, writebacks={}, payloads={})


def project(
    practice: Practice | None,
    office_id: str,
    events: Iterable[ev.Event],
    writebacks: dict[str, Writeback],
) -> tuple[Practice, dict[str, Writeback]]:
    """Apply ``events`` to a practice summary and the writeback rows they touch.

    ``writebacks`` holds the practice's open (not final) writeback rows, as ``Practice.writebacks``
    does for the live actor: an event naming a final writeback is absorbed exactly as the actor
    absorbs it. Returns the new summary and the rows that changed.
    """
    p = practice if practice is not None else empty(office_id)
    changed: dict[str, Writeback] = {}
    for e in events:
        writeback_id = getattr(e, "writeback_id", None)
        current = changed.get(writeback_id) or writebacks.get(writeback_id) if writeback_id else None
        p, wb = step(p, e, current)
        if wb is not None and wb is not current:
            changed[wb.writeback_id] = wb
        p = summary(p)
    return p, changed


# --- rows ---------------------------------------------------------------------------------------
#
# ``store.rebuild`` sends rows to PostgreSQL as JSON objects keyed by column name, turned into
# table rows by ``jsonb_populate_recordset``; an append sends only the folds, and
# ``sikka_commit_group`` reads the same columns from them (``tests/store/test_pglog.py`` checks
# that both give the same row).

_enc = msgspec.json.Encoder()
_practice_dec = msgspec.json.Decoder(Practice)
_writeback_dec = msgspec.json.Decoder(Writeback)


def practice_record(p: Practice, version: int) -> dict:
    return {
        "office_id": p.office_id,
        "practice_name": p.practice_name,
        "state": p.state,
        "token_expires_at": p.token_expires_at,
        "last_error": p.last_error,
        "updated_at": p.updated_at,
        "version": version,
        "fold": p,
    }


def writeback_record(wb: Writeback) -> dict:
    record = {f: getattr(wb, f) for f in _WRITEBACK_COLUMNS}
    record["fold"] = wb
    return record


_WRITEBACK_COLUMNS = (
    "writeback_id",
    "office_id",
    "operation",
    "state",
    "idempotency_key",
    "retry_of",
    "retryable",
    "sikka_writeback_id",
    "created_id",
    "error",
    "requested_at",
    "submitted_at",
    "completed_at",
    "sikka_completed_time",
    "deadline_at",
    "attempts",
    "checks",
    "next_check_at",
    "seq",
)


def encode_json(value) -> str:
    return _enc.encode(value).decode()


def decode_practice(fold: str | bytes) -> Practice:
    return _practice_dec.decode(fold)


def decode_writeback(fold: str | bytes) -> Writeback:
    return _writeback_dec.decode(fold)


# --- the whole log ------------------------------------------------------------------------------


def fold_log(records: Iterable) -> tuple[dict[str, tuple[Practice, int]], dict[str, Writeback]]:
    """Every practice summary (with its stream version) and writeback row, from the whole log
    (``store.eventlog.RecordedEvent``s in position order)."""
    practices: dict[str, tuple[Practice, int]] = {}
    writebacks: dict[str, Writeback] = {}
    for r in records:
        office_id = ev.office_of(r.stream_id)
        known = practices.get(office_id)
        writeback_id = getattr(r.event, "writeback_id", None)
        row = writebacks.get(writeback_id) if writeback_id else None
        current = {writeback_id: row} if row is not None and row.state not in FINAL_STATES else {}
        p, changed = project(known[0] if known else None, office_id, (r.event,), current)
        practices[office_id] = (p, r.version)
        writebacks.update(changed)
    return practices, writebacks
