"""The onboarding round (``actors.runtime.applevel.AppLevel.onboard``) on MockClock: offices are
onboarded many at once, and a failing office ends the round with its own error."""

from __future__ import annotations

import pytest
import trio

from actors.runtime.applevel import ONBOARD_CONCURRENCY
from bench.system import start_system
from sim import SimConfig
from store.db import DatabaseUnavailable
from tests.support.faults import FaultyStore

COMMIT_S = 1.0  # each append's commit, on the virtual clock


async def test_offices_are_onboarded_many_at_once(nursery, autojump_clock):
    """Regression: offices were onboarded one after the other (four database round trips each):
    20,000 practices took minutes before the last one had an actor. With every commit taking
    ``COMMIT_S``, one after the other would take at least one commit per office."""
    offices = 2 * ONBOARD_CONCURRENCY
    system = await start_system(nursery, sim_config=SimConfig(practices=offices), onboard=False,
                                wrap_store=FaultyStore)
    system.store.commit_delay = COMMIT_S
    began = trio.current_time()
    report = await system.app.onboard()
    elapsed = trio.current_time() - began
    assert [entry["action"] for entry in report] == ["registered"] * offices
    assert [entry["office_id"] for entry in report] == system.offices()  # in office-id order
    assert elapsed <= 4 * COMMIT_S * offices / ONBOARD_CONCURRENCY < offices * COMMIT_S
    for office in system.offices():
        await system.practices.wait_started(office)


async def test_a_failing_office_ends_the_round_with_its_own_error(nursery, autojump_clock):
    """The round's offices run in a nursery: the first failure is raised as it is (the onboarding
    loop and ``POST /onboard`` handle ``DatabaseUnavailable``; an exception group would have
    escaped them and ended the process)."""
    system = await start_system(nursery, onboard=False, wrap_store=FaultyStore)
    system.store.error_rate = 1.0
    with pytest.raises(DatabaseUnavailable):
        await system.app.onboard()
    assert system.app.onboardings == 0
    system.store.error_rate = 0.0
    report = await system.app.onboard()
    assert {entry["action"] for entry in report} == {"registered"}
