"""``sikka-supervisor replay``: every event with the state after it, by the production fold.

Reads the log straight from PostgreSQL (the supervisor may be stopped). Payloads are shown as
``[redacted]`` unless ``--with-payloads`` (then decrypted, or ``[purged]`` once their key was
destroyed). ``--rebuild-projections`` rebuilds ``practices`` and ``writebacks`` from the log and
swaps them in one transaction (refused while any supervisor runs: each holds the run lock shared).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

import msgspec
import psycopg
from msgspec.structs import replace

from actors.core import events as ev
from actors.core.state import Practice, empty, evolve
from store.credentials import PURGED
from store.eventlog import RecordedEvent
from store.pglog import iterate_log
from store.locks import RUN_LOCK

REDACTED = "[redacted]"
_json = msgspec.json.Encoder()


def replayed(
    records: Iterator[RecordedEvent], office_id: str | None = None
) -> Iterator[tuple[RecordedEvent, Practice]]:
    """(event, the practice's state after it), folding each stream with ``evolve``."""
    states: dict[str, Practice] = {}
    wanted = ev.stream_id(office_id) if office_id else None
    for r in records:
        if wanted and r.stream_id != wanted:
            continue
        office = ev.office_of(r.stream_id)
        state = evolve(states.get(office) or empty(office), r.event)
        states[office] = state
        yield r, state


def _shown_state(state: Practice) -> dict:
    out = _every_field(replace(state, payloads={}))
    out["state"] = state.state
    return out


def _every_field(value):
    """``value`` as JSON builtins with every field of its structs, those at their defaults too
    (the state's structs leave them out when encoded, ``omit_defaults``; a reader of the replay
    wants to see a writeback ``queued``)."""
    if isinstance(value, msgspec.Struct):
        return {name: _every_field(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, dict):
        return {key: _every_field(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_every_field(item) for item in value]
    return msgspec.to_builtins(value)


def _shown_data(event: ev.Event, payloads: dict[str, str] | None) -> dict:
    data = msgspec.to_builtins(event)
    if isinstance(event, ev.WritebackRequested):
        data["payload"] = REDACTED if payloads is None else payloads.get(event.writeback_id, PURGED)
    return data


def print_replay(
    conn: psycopg.Connection,
    out: TextIO,
    *,
    office_id: str | None = None,
    until: int | None = None,
    as_json: bool = False,
    payloads: dict[str, str] | None = None,
    width: int | None = None,
) -> int:
    """Every event (of ``office_id``'s stream, up to ``until``) with the state after it: JSON
    lines, or one line each for people, its "→ state" on a line of its own when the line would
    run past ``width``."""
    count = 0
    for r, state in replayed(iterate_log(conn, 0, until), office_id):
        count += 1
        data = _shown_data(r.event, payloads)
        if as_json:
            line = {
                "position": r.position,
                "stream_id": r.stream_id,
                "version": r.version,
                "type": r.type,
                "recorded_at": r.recorded_at,
                "data": data,
                "state": _shown_state(state),
            }
            out.write(_json.encode(line).decode() + "\n")
        else:
            writeback_id = data.get("writeback_id")
            wb = state.writebacks.get(writeback_id) if writeback_id else None
            if writeback_id:
                after = f"writeback {writeback_id} {wb.state if wb else 'final'}"
            else:
                after = f"practice {state.state}"
            head = f"{r.position:>8} {r.stream_id} v{r.version} {r.type} {r.recorded_at:%Y-%m-%dT%H:%M:%SZ}"
            joint = " " if width is None or len(head) + len(after) + 3 <= width else "\n" + " " * 9
            out.write(f"{head}{joint}→ {after}\n")
    return count


def stream_exists(conn: psycopg.Connection, office_id: str) -> bool:
    """Whether the log holds any event of the practice."""
    found = conn.execute("SELECT 1 FROM events WHERE stream_id = %s LIMIT 1", (ev.stream_id(office_id),)).fetchone()
    return found is not None


def sealed_payloads(conn: psycopg.Connection, office_id: str | None) -> dict[str, str]:
    query = "SELECT data->>'writeback_id', data->>'payload' FROM events WHERE type = 'writeback_requested'"
    params: tuple = ()
    if office_id:
        query += " AND stream_id = %s"
        params = (ev.stream_id(office_id),)
    return dict(conn.execute(query, params).fetchall())


def supervisor_running(conn: psycopg.Connection) -> bool:
    """True while any ``run`` holds the database (each holds the run lock shared; this tries it exclusively)."""
    got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", RUN_LOCK).fetchone()[0]
    if got:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", RUN_LOCK)
    return not got

