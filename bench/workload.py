"""A realistic, seeded mix of practice and writeback lifecycles, as events (bench and tests)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from actors.core import events as ev

EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def writeback_lifecycle(rng: random.Random, writeback_id: str, at: datetime) -> list[ev.Event]:
    """One writeback from request to a final state, through the usual detours."""
    t = at
    out: list[ev.Event] = []

    def add(cls, **kw):
        nonlocal t
        t += timedelta(seconds=rng.uniform(0.5, 30))
        out.append(cls(at=t, writeback_id=writeback_id, **kw))

    out.append(
        ev.WritebackRequested(
            at=t,
            writeback_id=writeback_id,
            operation=rng.choice(["book_appointment", "reschedule_appointment", "create_patient"]),
            payload="gAAAAA" + uuid.UUID(int=rng.getrandbits(128)).hex * 3,
            deadline_at=t + timedelta(hours=6),
            idempotency_key=f"key-{writeback_id}" if rng.random() < 0.7 else None,
        )
    )
    roll = rng.random()
    if roll < 0.05:
        add(ev.WritebackCancelled)
        return out
    attempt = 1
    add(ev.SubmitAttempted, attempt=attempt)
    if roll < 0.15:
        add(ev.WritebackDeferred, reason="rate_limited", retry_at=t + timedelta(seconds=20))
        add(ev.RetryScheduled)
        attempt += 1
        add(ev.SubmitAttempted, attempt=attempt)
    elif roll < 0.2:
        add(ev.WritebackRejected, code="API1026", message="One of the parameter is missing or invalid.")
        return out
    if roll > 0.95:
        add(ev.OutcomeUnknown, reason="timeout")
        add(ev.WritebackReconciled, sikka_writeback_id=str(rng.randrange(10**6, 10**7)))
    else:
        add(ev.WritebackSubmitted, sikka_writeback_id=str(rng.randrange(10**6, 10**7)))
    for _ in range(rng.randrange(0, 4)):
        add(ev.StatusChecked, next_check_at=t + timedelta(seconds=5))
    if rng.random() < 0.9:
        created_id = str(rng.randrange(1000, 99999))
        add(ev.WritebackCompleted, created_id=created_id, sikka_completed_time="2026-01-05 09:03:00")
    else:
        add(ev.WritebackFailed, code="sikka_error", message="Appointment slot not available", retryable=False)
    return out


def practice_streams(seed: int, practices: int, writebacks_per_practice: int) -> Iterator[tuple[str, list[ev.Event]]]:
    """(stream_id, events) per practice: registration, token refreshes and writeback lifecycles."""
    rng = random.Random(seed)
    for n in range(practices):
        office_id = f"D{1000 + n}"
        t = EPOCH + timedelta(seconds=n)
        events: list[ev.Event] = [
            ev.PracticeRegistered(at=t, office_id=office_id, practice_name=f"Practice {n}", practice_ids=("1",)),
            ev.TokenRefreshed(at=t, expires_at=t + timedelta(hours=24), grant="request_key"),
        ]
        for k in range(writebacks_per_practice):
            wid = str(uuid.UUID(int=rng.getrandbits(128)))
            events.extend(writeback_lifecycle(rng, wid, t + timedelta(minutes=k)))
            if k % 20 == 19:
                events.append(ev.TokenRefreshed(at=events[-1].at, expires_at=events[-1].at + timedelta(hours=24)))
        yield ev.stream_id(office_id), events
