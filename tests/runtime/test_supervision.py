"""One-for-one supervision: restarts with backoff, parking after too many crashes, clean return,
and cancellation that is never swallowed (trio MockClock)."""

from __future__ import annotations

import random

import pytest
import trio

from actors.core import events as ev
from actors.runtime.commit import DB_RETRY_MAX_S
from actors.runtime.supervision import TRANSIENT_MAX_CRASHES, RestartPolicy, Supervised, restart_delay

POLICY = RestartPolicy(intensity=3, period=60, base_delay=1, max_delay=8, park_for=600)


async def test_crashed_child_restarts_with_growing_backoff(autojump_clock):
    starts = []

    async def child():
        starts.append(trio.current_time())
        if len(starts) < 3:
            raise RuntimeError("boom")

    sup = Supervised("D1", POLICY, random.Random(0))
    await sup.run(child)
    assert len(starts) == 3 and sup.restarts == 2 and not sup.parked
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert 0.5 <= gaps[0] <= 1 and 1 <= gaps[1] <= 2
    assert sup.statistics().last_error == "RuntimeError: boom"


async def test_too_many_crashes_park_then_retry(autojump_clock):
    starts = []
    parked = []

    async def child():
        starts.append(trio.current_time())
        if len(starts) <= 4:
            raise ValueError("bad state")

    async def on_park(seconds, error):
        parked.append((trio.current_time(), seconds, error))

    await Supervised("D1", POLICY, random.Random(1)).run(child, on_park=on_park)
    assert len(parked) == 1 and parked[0][1] == 600 and "bad state" in parked[0][2]
    assert starts[4] - parked[0][0] == pytest.approx(600)


async def test_one_child_crashing_does_not_touch_its_sibling(autojump_clock):
    ticks = []

    async def steady():
        for _ in range(5):
            await trio.sleep(1)
            ticks.append(trio.current_time())

    async def crashy():
        await trio.sleep(0.5)
        raise RuntimeError("crash")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(Supervised("ok", POLICY).run, steady)
        nursery.start_soon(Supervised("bad", POLICY).run, crashy)
        await trio.sleep(6)
        nursery.cancel_scope.cancel()
    assert len(ticks) == 5


async def test_cancellation_passes_through(autojump_clock):
    cancelled = []

    async def child():
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(True)
            raise

    with trio.move_on_after(5) as scope:
        await Supervised("D1", POLICY).run(child)
    assert scope.cancelled_caught and cancelled == [True]


async def test_keyboard_interrupt_is_not_caught(autojump_clock):
    async def child():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await Supervised("D1", POLICY).run(child)


def test_restart_delay_is_capped_and_jittered():
    assert restart_delay(POLICY, 10, 1.0) == 8
    assert restart_delay(POLICY, 1, 0.0) == 0.5


# --- the process-wide tasks outlive database blips (found by the fault suite) ------------------


async def test_onboarding_loop_survives_an_unreachable_database(nursery, autojump_clock):
    """Regression: ``run_onboarding`` caught only a failed Sikka call; a database error (or an
    actor crashing under it) escaped into the supervisor's nursery and took the whole process
    down. It now logs and tries again at the next round."""
    from tests.support.faults import FaultyStore
    from bench.system import start_system

    system = await start_system(nursery, wrap_store=FaultyStore)
    system.store.unreachable = True
    nursery.start_soon(system.app.run_onboarding)
    await trio.sleep(1)
    assert system.app.onboardings == 1  # only the harness's own onboarding succeeded
    system.store.unreachable = False
    system.app.request_onboarding()
    with trio.fail_after(DB_RETRY_MAX_S + 2):  # the actors' commits waited the outage out meanwhile
        while system.app.onboardings < 2:
            await trio.sleep(0.1)


async def test_append_follower_survives_an_unreachable_database(nursery, autojump_clock):
    """Regression: the process-wide task that follows other writers' appends let a database
    error escape and end the process. It now logs, pauses and follows on from where it was."""
    from tests.support.faults import FaultyStore
    from actors.runtime.follower import FOLLOW_RETRY_S, follow_appends
    from bench.system import start_system

    class Ownership:
        def __init__(self):
            self.noticed: list[str] = []

        def notice(self, office_id: str) -> None:
            self.noticed.append(office_id)

    system = await start_system(nursery, wrap_store=FaultyStore)
    office = system.offices()[0]
    system.practices.stop(office)
    while office in system.practices.running():
        await trio.sleep(0.1)
    ownership = Ownership()
    system.store.unreachable = True
    nursery.start_soon(follow_appends, system.store, system.practices, ownership)
    await trio.sleep(5 * FOLLOW_RETRY_S)
    system.store.unreachable = False
    await trio.sleep(2 * FOLLOW_RETRY_S)
    version = (await system.store.practice(office)).version
    await system.store.append(ev.stream_id(office), version, [ev.PracticePaused(at=system.clock())])
    await trio.sleep(FOLLOW_RETRY_S)
    assert ownership.noticed == [office]  # the follower kept going and saw the foreign append


async def test_crashes_the_child_did_not_cause_never_park(autojump_clock):
    """An outage makes every actor fail its database steps: restarted with backoff as often as it
    takes, never parked (which would hold the practice's work for 15 minutes after the database
    came back), and not reported to error tracking as a crash."""
    starts = []

    async def child():
        starts.append(trio.current_time())
        if len(starts) <= 20:
            raise ConnectionError("the database is away")

    sup = Supervised("D1", POLICY, random.Random(2), transient=lambda exc: isinstance(exc, ConnectionError))
    await sup.run(child, on_park=lambda seconds, error: pytest.fail("parked"))
    assert len(starts) == 21 and not sup.parked and sup.statistics().crashes_in_period == 0
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert max(gaps) <= POLICY.base_delay * 2 ** (TRANSIENT_MAX_CRASHES - 1)  # the backoff stops growing


async def test_a_crash_text_carrying_a_secret_is_scrubbed_before_it_is_kept(autojump_clock):
    """Regression: the crash text became ``last_error`` as is, and from there the parking event,
    the ``restarting``/``parked`` alerts and their Slack message: an exception quoting the app key
    leaked it (seen in the layered canary)."""
    from datetime import UTC, datetime

    from actors.core.alerting import Alert, Transition
    from actors.core.secret import Secret
    from actors.monitoring.slack import message
    from actors.process import logs

    canary = "app-key-CANARY-4711"
    logs.protect([Secret(canary)])
    try:
        parked = []

        async def child():
            raise RuntimeError(f"refused with {canary}")

        with trio.CancelScope() as scope:

            async def on_park(seconds, error):
                parked.append(error)
                scope.cancel()  # enough: the first parking is what this test reads

            await Supervised("D1", POLICY, random.Random(0)).run(child, on_park=on_park)
        assert parked and canary not in parked[0] and "[redacted]" in parked[0]
        now = datetime(2026, 1, 1, tzinfo=UTC)
        alert = Alert(kind="restarting", severity="warning", office_id="D1", message=f"crashed: {canary}", since=now)
        assert canary not in message(Transition(phase="onset", alert=alert, at=now))
    finally:
        logs.protect([])
