"""Every event variant round-trips through msgspec and PostgreSQL under the type name the store
records; stored events stay readable as schemas grow."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import msgspec
import pytest

from actors.core import events as ev
from store.eventlog import checked_batch
from store.pglog import PgEventStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sample(cls: type[ev.Event]) -> ev.Event:
    """An instance of ``cls`` with every field set (so defaults cannot hide a lost field)."""
    values = {}
    for field in msgspec.structs.fields(cls):
        hint = typing.get_type_hints(cls)[field.name]
        values[field.name] = _value_for(hint, field.name)
    return cls(**values)


def _value_for(hint, name):
    args = typing.get_args(hint)
    if hint is datetime or datetime in args:
        return NOW
    if hint is int or int in args:
        return 3
    if hint is bool:
        return True
    if typing.get_origin(hint) is tuple:
        return ("1", "2")
    return f"{name}-value"


@pytest.mark.parametrize("cls", ev.EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_variant_round_trips(cls):
    event = sample(cls)
    data = ev.encode(event)
    assert msgspec.json.decode(data)["type"] == ev.type_name(event)
    assert ev.decode(data) == event


def test_every_event_class_is_in_the_union_that_decode_reads():
    """A new event class left out of ``AnyEvent`` would be written but never read back; only the
    transient ones (folded by the actor, never stored) stay out, and the stores refuse them."""
    assert set(ev.Event.__subclasses__()) - set(ev.TRANSIENT) == set(ev.EVENT_TYPES)
    assert not set(ev.TRANSIENT) & set(ev.EVENT_TYPES)
    for cls in ev.TRANSIENT:
        with pytest.raises(TypeError, match="not an event the log keeps"):
            checked_batch([sample(cls)])


async def test_every_variant_round_trips_through_postgresql_under_its_type_name(db):
    """The ``type`` column (``type_name``, what queries and dashboards filter on) is the tag the
    struct encodes with, and the stored JSON decodes to the event appended."""
    store = PgEventStore(db)
    events = [sample(cls) for cls in ev.EVENT_TYPES]
    for n, event in enumerate(events):
        await store.append(ev.stream_id(f"D{1000 + n}"), 0, [event])
    rows = await db.run(
        lambda conn: conn.execute("SELECT type, data->>'type', data::text FROM events ORDER BY position").fetchall()
    )
    assert [(column, tag) for column, tag, _ in rows] == [
        (cls.__struct_config__.tag, cls.__struct_config__.tag) for cls in ev.EVENT_TYPES
    ]
    assert [ev.decode(data) for _, _, data in rows] == events
    assert [r.event for r in await store.read_all()] == events


def test_unknown_fields_from_a_newer_version_are_ignored():
    data = b'{"type":"writeback_cancelled","at":"2026-03-01T12:00:00Z","writeback_id":"w","added_later":1}'
    assert ev.decode(data) == ev.WritebackCancelled(at=NOW, writeback_id="w")


def test_fields_added_with_defaults_read_old_events():
    old = b'{"type":"token_refreshed","at":"2026-03-01T12:00:00Z","expires_at":"2026-03-02T12:00:00Z"}'
    assert ev.decode(old).grant == "refresh_key"


def test_no_event_type_carries_a_secret_field():
    secret_names = {"request_key", "refresh_key", "secret_key", "app_key", "token"}
    for cls in ev.EVENT_TYPES:
        assert not secret_names & {f.name for f in msgspec.structs.fields(cls)}, cls
