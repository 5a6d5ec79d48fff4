"""The benchmarks' cores at tiny sizes: they run, measure what they claim, and print parseable
``name: value`` lines. Behaviour only: no timing assertions (the figures live in bench/README.md)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from bench import confirm, fleet, peer, recovery, scale, soak
from bench import store as bench_store
from bench import ratelimit as bench_ratelimit
from bench.common import line, parse_lines
from bench.system import booking, start_system
from sim import SimConfig


def test_the_peer_checks_at_10_s_then_after_10_10_20_30_60_120_300_600_1800_s():
    assert peer.check_offsets(12) == [10, 20, 30, 50, 80, 140, 260, 560, 1160, 2960, 4760, 6560]


def test_the_peer_baseline_polls_each_writeback_on_its_own_schedule():
    config = SimConfig(practices=1, seed=3, writeback_delay=(100.0, 100.0))

    async def run():
        return await peer.run_peer_tracker(config, (2,), "book_appointment")

    sim, counts, recorded = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(recorded) == 2
    accepted = {str(wb.id): wb.accepted_at for wb in sim.writebacks.values()}
    checks = [t for (t, method, path, *_rest) in sim.practice("D1000").timeline if path == "/v4/writeback_status"]
    # each writeback: checks at +10, 20, 30, 50, 80, 140 s (done at 100 s: seen at 140 s)
    expected = sorted(a + off for a in accepted.values() for off in peer.check_offsets(6))
    assert checks == pytest.approx(expected)
    for sikka_id, at in recorded.items():
        assert at == pytest.approx(accepted[sikka_id] + 140)
    assert counts["GET /v4/writeback_status"] == 12


def test_the_peer_minute_counter_waits_for_the_next_calendar_minute_at_its_limit():
    async def run():
        counter = peer.MinuteCounter(limit=3)
        await trio.sleep(30)
        times = []
        for _ in range(5):
            await counter.take()
            times.append(trio.current_time())
        return times

    assert trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0)) == [30, 30, 30, 60, 60]


def test_confirm_runs_both_strategies_on_the_same_workload_and_prints_parseable_lines():
    results = confirm.run_all(confirm.scenarios(["p5"], ["seconds"]), seed=2)
    ours, theirs = results[confirm.scenarios(["p5"], ["seconds"])[0]]
    assert ours.confirmed == theirs.confirmed == 5  # our actors confirm every writeback
    assert ours.delays == theirs.delays  # same seed, same writeback delays at "Sikka"
    assert ours.status_429 == theirs.status_429 == 0
    assert all(o >= 0 for o in ours.overshoots + theirs.overshoots)
    assert max(ours.bound_ratios) <= 1.0  # every completion within max(2 s, 20 % of its age)
    assert max(theirs.bound_ratios) > 1.0  # the peer's 10, 20, 30, 50 … s schedule is not
    printed: list[str] = []
    overall = confirm.report(results, emit=printed.append)
    figures = parse_lines("\n".join(printed))
    assert figures["same_workload.p5_seconds"] == "true"
    assert figures["actors.confirmed"] == "5"
    assert float(figures["ratio.status_per_confirmed"]) == pytest.approx(overall["ratio.status_per_confirmed"], abs=1e-3)


def test_ratelimit_uses_the_limit_without_429s_over_35_fixed_windows():
    """Also the regression test of the Budget fix: a fixed-window server whose Remaining counts
    only our sends must not idle us until each Reset (was 95.1 % here, 96.6 % at 200/min)."""

    async def run():
        return await bench_ratelimit.drive("actors", limit=50, windows=35, workers=16, latency_ms=(20, 600), seed=1)

    figures = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    assert figures["status_429"] == 0
    assert figures["share_of_limit"] >= 0.975


def test_ratelimit_peer_stops_at_its_safe_150_per_minute():
    async def run():
        return await bench_ratelimit.drive("peer", limit=200, windows=3, workers=8, latency_ms=(20, 200), seed=1)

    figures = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    assert figures["status_429"] == 0
    # 150 per calendar minute; 3 windows from the first request touch 4 calendar minutes
    assert 0.70 <= figures["share_of_limit"] <= 150 * 4 / (200 * 3)


def test_parse_lines_rejects_other_output():
    assert parse_lines("a.b: 1\nc: true") == {"a.b": "1", "c": "true"}
    with pytest.raises(ValueError, match="not a 'name: value' line"):
        parse_lines("warming up the database")


def test_scale_measures_a_supervisor_process_with_its_practices(pg_admin_url, tmp_path):
    figures = scale.run_once(pg_admin_url, tmp_path / "run", practices=3, settle=10.5, timeout=60)
    assert figures["rss"] > 20 * 2**20  # a Python process with the supervisor loaded
    assert figures["ready_s"] > 0
    assert 0 <= figures["lag_p99"] < float("inf")  # loop.lag reports were read from the log
    assert 0 <= figures["lag_over_50ms"] <= 1
    # busy (the loop-lag probe alone wakes it 20 times a second), yet far from a core at steady state
    assert 0 < figures["cpu_share"] < 0.5
    assert 0 < figures["actors_s"] < 60  # the restart's actors.recovered line was seen


def test_scale_baseline_without_practices_restarts_too(pg_admin_url, tmp_path):
    """Regression: the restart waited for an ``actors.recovered`` line, which a supervisor
    without practices never logs, so the N = 0 baseline run waited out its whole timeout."""
    figures = scale.run_once(pg_admin_url, tmp_path / "run", practices=0, settle=10.5, timeout=60)
    assert 0 < figures["actors_s"] < 30


def test_recovery_restarts_after_kill_9_and_checks_every_inflight_writeback(pg_admin_url, tmp_path):
    figures = recovery.measure(pg_admin_url, tmp_path, practices=4, events=400, inflight=3, timeout=60)
    assert figures["inflight"] == 3
    assert figures["events_seeded"] >= 300
    assert figures["events_total"] > figures["events_at_kill"]  # the restarted supervisor checked them
    assert 0 < figures["actors_s"] <= figures["recovery_s"] and figures["first_checks_s"] <= figures["recovery_s"]


@pytest.mark.parametrize("in_flight", ["2", "1"])
def test_store_measures_each_writer_count_against_raw_inserts(pg_admin_url, capsys, monkeypatch, in_flight):
    depths = []

    class Store(bench_store.PgEventStore):
        def __init__(self, db):
            super().__init__(db)
            depths.append(self.group_commit)

    monkeypatch.setattr(bench_store, "PgEventStore", Store)
    args = bench_store.parse(
        ["--single", "20", "--concurrent", "128", "--streams", "3", "--writebacks", "2", "--commits-in-flight", in_flight]
    )
    figures = trio.run(bench_store.main, args, pg_admin_url)
    assert [group.depth for group in depths] == [int(in_flight)]
    printed = parse_lines(capsys.readouterr().out)
    assert set(printed) == set(figures)
    for writers in bench_store.WRITERS:
        raw, appends = (figures[f"{kind}_concurrent_{writers}"] for kind in ("raw_insert_per_s", "append_events_per_s"))
        assert raw > 0 and appends > 0
        assert figures[f"append_vs_raw_concurrent_{writers}"] == pytest.approx(appends / raw)
    assert 0 < figures["append_latency_p50_ms_concurrent_64"] <= figures["append_latency_p99_ms_concurrent_64"]
    appended = 20 + sum(w * (1 + 128 // w) for w in bench_store.WRITERS)  # single, then each writer count
    assert figures["replay_events"] > appended  # the batched run's streams came after


def test_soak_runs_real_processes_and_counts_from_ground_truth_and_the_processes_accounting(pg_admin_url, tmp_path):
    figures = soak.measure(pg_admin_url, tmp_path, practices=3, total=24, seconds=6.0, delay="1:3", nodes=1,
                           threads=2, timeout=90)
    assert figures["completed"] == figures["bookings"] == 24
    assert figures["lost"] == figures["duplicated"] == figures["not_completed"] == 0
    assert figures["app_429"] == figures["practice_429"] == 0
    assert all(figures[f"rss_mib_at_{f}"] > 20 for f in soak.FIFTHS)
    assert figures["completed_at_100"] >= figures["completed_at_20"]
    assert figures["list_rounds"] + figures["status_rounds"] > 0  # read from /metrics
    assert figures["status_reads_per_confirmation"] >= 1  # every booking is a create: created_id
    assert 5 <= figures["events_per_writeback"] < 8  # requested, attempted, submitted, checked, completed + practices'
    printed = [line(k, v) for k, v in figures.items()]
    assert parse_lines("\n".join(printed))["lost"] == "0"


def test_fleet_history_pages_the_days_earlier_writebacks_in_front_of_the_simulators_own():
    config = SimConfig(practices=1, seed=3, writeback_delay=(100.0, 100.0))

    async def run():
        async with trio.open_nursery() as nursery:
            system = await start_system(nursery, sim_config=config)
            fleet.History(system.sim, per_day=24 * 30)  # 30 an hour: yesterday's 720 and today's 14 h
            office = system.offices()[0]
            await system.request(office, "book_appointment", booking(system.sim, office, 1))
            await trio.sleep(1)  # submitted: acknowledged, pending at the simulator
            pages = [
                system.sim.handle("GET", f"/v4/writebacks?startdate=2026-03-01&enddate=2026-03-03&offset={n}&limit=500",
                                  {"app-id": config.app_id, "app-key": config.app_key}).json()
                for n in range(4)
            ]
            nursery.cancel_scope.cancel()
        return pages

    pages = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    total = 720 + 30 * 14 + 1
    assert [int(p["total_count"]) for p in pages] == [total] * 4
    ids = [i["id"] for p in pages for i in p["items"]]
    assert len(ids) == len(set(ids)) == total  # every item once, the simulator's own last
    assert [len(p["items"]) for p in pages] == [500, 500, 141, 0]
    assert pages[2]["items"][-1]["result"] == "pending" and int(ids[-1]) < fleet.HISTORY_ID


def test_fleet_runs_both_strategies_and_ours_costs_less_at_volume():
    async def run(strategy):
        return await fleet.drive(strategy, 50_000, practices=4, minutes=2, delay=(2.0, 20.0), seed=2)

    ours = trio.run(run, "ours", clock=trio.testing.MockClock(autojump_threshold=0))
    before = trio.run(run, "before", clock=trio.testing.MockClock(autojump_threshold=0))
    assert ours["confirmed"] == ours["requested"] == before["confirmed"] == before["requested"] > 20
    assert ours["app_429"] == 0 and ours["bound_p95"] <= 1.0
    assert ours["status_per_confirmed"] < before["status_per_confirmed"]
    assert ours["app_calls_per_min"] < before["app_calls_per_min"]


@pytest.mark.slow
def test_soak_on_two_nodes_shares_the_app_budget_and_loses_nothing(pg_admin_url, tmp_path):
    figures = soak.measure(pg_admin_url, tmp_path, practices=6, total=120, seconds=30.0, delay="2:20", nodes=2,
                           threads=2, timeout=120)
    assert figures["completed"] == 120 and figures["lost"] == figures["duplicated"] == 0
    assert figures["app_429"] == figures["practice_429"] == 0
    assert figures["app_max_in_any_60s"] <= soak.SIM_APP_LIMIT
