"""What an idle practice costs the process (the scale benchmark's budget: ≤ 20 KiB per practice,
event-loop lag p99 ≤ 50 ms at 5,000): one trio task per actor, no per-practice random generator,
a rate log that grows only with use; the loop-lag probe and the garbage-collector policy."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref
from functools import partial

import pytest
import structlog.testing
import trio

from actors.process import gcpolicy, gil
from actors.monitoring import looplag
from actors.core.ratelimit import Budget, Lane
from actors.runtime.supervision import RestartPolicy, Supervised
from sim import SimConfig
from actors.core import messages
from bench.system import booking, start_system


def all_tasks() -> list:
    out, todo = [], [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        out.append(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return out


async def idle_tasks(practices: int) -> int:
    async with trio.open_nursery() as nursery:
        await start_system(nursery, sim_config=SimConfig(practices=practices))
        await trio.sleep(30)  # onboarded, keys issued: every actor waits for its next step
        count = len(all_tasks())
        nursery.cancel_scope.cancel()
    return count


async def test_an_idle_practice_costs_exactly_one_task(autojump_clock):
    """Regression: each idle actor waited in a nursery of two helper tasks (inbox, stop)."""
    assert await idle_tasks(5) - await idle_tasks(2) == 3


async def test_stop_interrupts_an_idle_actor(autojump_clock):
    async with trio.open_nursery() as nursery:
        system = await start_system(nursery, sim_config=SimConfig(practices=1))
        await trio.sleep(5)
        actor = system.practices.actors["D1000"]
        with trio.fail_after(1):
            actor.stop()
            while "D1000" in system.practices.actors:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


def test_the_rate_log_grows_with_use_up_to_the_limit():
    budget = Budget(200)
    assert len(budget._ring) == 0
    for i in range(250):
        budget.take(Lane.STATUS, float(i))
    assert len(budget._ring) == 200 and budget.used(249.0) <= 200


def test_supervision_records_share_one_jitter_generator():
    a, b = Supervised("a", RestartPolicy()), Supervised("b", RestartPolicy())
    assert a.rng is b.rng


def test_loop_lag_histograms_add_up_to_a_p99_bound():
    report = looplag.figures([0.0005] * 98 + [0.03, 0.3])
    assert report["samples"] == 100 and report["max_s"] == 0.3
    assert looplag.quantile_bound(report["buckets"], 0.98) == 0.001
    assert looplag.quantile_bound(report["buckets"], 0.99) == 0.05
    merged = [x + y for x, y in zip(report["buckets"], looplag.histogram([0.0005] * 100))]
    assert looplag.quantile_bound(merged, 0.99) == 0.001


async def test_loop_lag_probe_reports_on_its_interval(autojump_clock):
    with structlog.testing.capture_logs() as logs, trio.move_on_after(25):
        await looplag.probe(interval=0.05, report_every=10)
    reports = [entry for entry in logs if entry["event"] == "loop.lag"]
    assert len(reports) == 2
    assert all(r["samples"] >= 199 and r["max_s"] == 0 for r in reports)  # the mock clock is never late


@pytest.fixture
def no_trim(monkeypatch):
    """The gc policy without ``malloc_trim`` (its worker thread would let the autojump clock
    race ahead of the policy's sleeps)."""
    monkeypatch.setattr(gcpolicy, "MALLOC_TRIM", None)


async def test_gc_policy_freezes_the_survivors(autojump_clock, no_trim):
    gc.unfreeze()
    try:
        with trio.move_on_after(5):
            await gcpolicy.freeze_long_lived(first=1, every=100)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def test_gc_policy_thaws_hourly_so_cycles_that_died_frozen_are_collected(autojump_clock, no_trim):
    class Node:
        pass

    gc.unfreeze()
    holder = [Node()]
    holder[0].self = holder[0]  # a reference cycle, alive when frozen
    alive = weakref.ref(holder[0])
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(gcpolicy.freeze_long_lived, first=1, every=10, thaw_every=30))
            await trio.sleep(2)
            assert gc.get_freeze_count() > 0
            holder.clear()  # the cycle is garbage now, but frozen
            await trio.sleep(20)
            assert alive() is not None  # out of the collector's reach until the thaw
            await trio.sleep(20)
            assert alive() is None
            nursery.cancel_scope.cancel()
    finally:
        gc.unfreeze()


async def test_gc_policy_is_the_only_full_collector_while_it_runs(autojump_clock, no_trim, monkeypatch):
    """Regression: CPython's own full collections walked every object not frozen whenever the
    promoted ones passed a quarter of them: every 6 s at 20,000 practices (50–90 ms each, also in
    worker threads holding the GIL). The policy now makes the one full walk a minute, before its
    freeze, and CPython's thresholds come back when it stops."""
    walked = []
    monkeypatch.setattr(gcpolicy.gc, "collect", lambda generation=2: walked.append(generation) or 0)
    thresholds = gc.get_threshold()
    seen = []
    gc.unfreeze()
    try:
        with structlog.testing.capture_logs() as logs, trio.move_on_after(45):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(gcpolicy.freeze_long_lived, first=1, every=10, thaw_every=30))
                await trio.sleep(0.5)
                seen.append(gc.get_threshold())
    finally:
        gc.unfreeze()
    assert seen == [(thresholds[0], thresholds[1], gcpolicy.NO_AUTOMATIC_FULL)]
    assert gc.get_threshold() == thresholds
    assert walked == [2] * 5  # t = 1, 11, 21, 31 (thawed: everything), 41
    assert [entry["paused_ms"] >= 0 for entry in logs if entry["event"] == "gc.frozen"] == [True] * 5


async def test_gc_policy_trims_the_heap_in_a_worker_thread(monkeypatch):
    """Regression: ``malloc_trim`` ran on the event loop: 60–160 ms at 20,000 practices."""
    trimmed = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def trim(pad):
        assert pad == 0 and threading.current_thread() is not threading.main_thread()
        token.run_sync_soon(trimmed.set)

    monkeypatch.setattr(gcpolicy, "MALLOC_TRIM", trim)
    gc.unfreeze()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(gcpolicy.freeze_long_lived, first=0, every=100))
            with trio.fail_after(5):
                await trimmed.wait()
            nursery.cancel_scope.cancel()
    finally:
        gc.unfreeze()


async def test_the_supervisor_lets_a_busy_worker_thread_hold_the_gil_only_a_millisecond():
    """Regression: with CPython's 5 ms switch interval, each pass of the event loop could wait
    that long for a worker thread parsing thousands of rows (lag samples of 10–20 ms)."""
    import sys

    import supervisor
    from actors.monitoring.metrics import Metrics

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        async with trio.open_nursery() as nursery:
            supervisor._start_process_tasks(nursery, Metrics())
            assert sys.getswitchinterval() == pytest.approx(gil.SWITCH_INTERVAL_S)
            nursery.cancel_scope.cancel()
        assert gil.favour_the_loop() == pytest.approx(gil.SWITCH_INTERVAL_S)
    finally:
        sys.setswitchinterval(before)
        gc.unfreeze()


async def test_loop_lag_probe_feeds_the_metric(autojump_clock):
    seen = []
    with trio.move_on_after(1):
        await looplag.probe(interval=0.05, observe=seen.append)
    assert len(seen) >= 19 and all(lag == 0 for lag in seen)


async def test_only_a_change_of_list_targets_wakes_the_list_task(autojump_clock):
    """Regression: every append woke the app-level list task, which plans over every practice's
    targets: with thousands of practices onboarding, the loop did little else."""
    async with trio.open_nursery() as nursery:
        system = await start_system(nursery, sim_config=SimConfig(practices=1, writeback_delay=(30.0, 30.0)))
        wakes = []
        wake = system.deps.on_targets_changed
        system.deps.on_targets_changed = lambda: (wakes.append(trio.current_time()), wake())
        version = system.practices.actors["D1000"].version
        await system.practices.actors["D1000"].ask(messages.RefreshToken())
        await trio.sleep(600)  # key checks, a refreshed key: appends, no list target
        assert system.practices.actors["D1000"].version > version and wakes == []
        await system.request("D1000", "book_appointment", booking(system.sim, "D1000", 0))
        with trio.fail_after(60):
            while not wakes:  # pending at Sikka: now the list task has something to look for
                await trio.sleep(1)
        nursery.cancel_scope.cancel()


async def _idle_practices_bytes(practices: int) -> int:
    """Python memory the running system holds with ``practices`` idle practices, apart from the
    in-process simulator and the in-memory store (PostgreSQL's and Sikka's in production)."""
    async with trio.open_nursery() as nursery:
        tracemalloc.start()
        try:
            await start_system(nursery, sim_config=SimConfig(practices=practices, token_ttl=86400))
            await trio.sleep(150)  # onboarded, keys issued, key checks done: every actor idle
            gc.collect()
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, "*/sim/*"), tracemalloc.Filter(False, "*/store/memory.py")]
            )
        finally:
            tracemalloc.stop()
        nursery.cancel_scope.cancel()
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def test_an_idle_practice_holds_under_12_kb(autojump_clock):
    """The scale budget at 20,000 practices (≤ 16 KiB of RSS each): an idle practice's objects
    (actor, inbox, supervision record, wait, state, budget) were 15.7 KB, now 10.6 KB."""
    per_practice = (await _idle_practices_bytes(120) - await _idle_practices_bytes(20)) / 100
    assert per_practice < 12_000
