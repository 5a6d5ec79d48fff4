"""The admin API in-process on trio's MockClock (harness supervisor, memory store): the races and
crashes behind a handler that the real-socket tests cannot time (found by the fault suite)."""

from __future__ import annotations

import json

import trio

from actors.api.admin import Admin
from actors.api.http import Request
from tests.support.faults import FaultyStore
from bench.system import booking, start_system


async def test_submission_whose_append_fails_answers_503_not_500(nursery, autojump_clock):
    """Regression: when the practice's actor crashed while deciding a submission (here: its
    append failed), ``actor.ask`` raised ``Unavailable`` straight out of the admin handler (a
    500). The database's fault is the answer now, 503 ``database_unavailable`` with
    ``Retry-After``, and the actor does not crash; the client's retry with its idempotency key
    then makes exactly one writeback."""
    system = await start_system(nursery, wrap_store=FaultyStore)
    office = system.offices()[0]
    admin = Admin(system.deps, system.practices, system.app)
    body = json.dumps({"operation": "book_appointment", "payload": booking(system.sim, office, 1),
                       "idempotency_key": "k1"}).encode()
    request = Request("POST", f"/practices/{office}/writebacks", {}, {}, body, "uid=0")
    system.store.error_rate = 1.0
    response = await admin.handle(request)
    assert response.status == 503 and json.loads(response.body)["error"] == "database_unavailable"
    assert dict(response.headers)["Retry-After"] == "2"
    assert system.practices.supervised[office].restarts == 0
    system.store.error_rate = 0.0
    await system.practices.wait_started(office)
    await trio.sleep(5)  # the supervisor restarts the actor
    first = await admin.handle(request)
    again = await admin.handle(request)
    assert (first.status, again.status) == (202, 200)
    assert json.loads(first.body)["writeback_id"] == json.loads(again.body)["writeback_id"]


async def test_cancel_of_a_writeback_that_went_final_meanwhile_is_409_not_404(nursery, autojump_clock):
    """Regression: cancel reads the row (not final), then asks the actor; when the writeback went
    final in between, the actor no longer holds it and the refusal (unknown_writeback) was sent
    as a 404. The row exists and is final: 409 ``not_cancellable``, as for any final one."""
    system = await start_system(nursery)
    office = system.offices()[0]
    admin = Admin(system.deps, system.practices, system.app)
    wid = await system.request(office, "book_appointment", booking(system.sim, office, 1))
    stale = await system.store.writeback(wid)
    assert stale.state not in ("completed", "failed", "cancelled")
    await system.wait_final([wid])
    real_read = system.store.writeback
    reads = []

    async def first_read_is_stale(writeback_id):
        reads.append(writeback_id)
        return stale if len(reads) == 1 else await real_read(writeback_id)

    system.store.writeback = first_read_is_stale
    response = await admin.handle(Request("POST", f"/writebacks/{wid}/cancel", {}, {}, b"", "uid=0"))
    assert response.status == 409 and json.loads(response.body)["error"] == "not_cancellable"
