"""End to end: ``sikka-sim`` and ``sikka-supervisor run`` as separate processes on real PostgreSQL,
keys rolling every 60 s (``--token-ttl 60``), bookings submitted through the admin socket.

Each run ends with the checks that matter: every booking ``completed``; the simulator's ground
truth holds exactly one appointment per booking; no 429 earned by exceeding a window; no call
made with a key after its announced expiry; ``SIGTERM`` exits 0. The kill variant adds cut
connections after Sikka accepted (``drop_after_accept_rate``) and ``kill -9`` of the supervisor,
with the client re-sending unanswered requests under their idempotency keys. The process
wrappers (``Sim``, ``Supervisor``, ``bookings``) are ``bench.processes``', shared with the benchmarks.

The default suite runs a short version of each; the ``slow`` marker holds the full sizes (5
practices, 100 bookings each, three kills) for the ``CI=true`` stage.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.processes import Sim, Supervisor, bookings
from tests.support.processes import check_ground_truth, submit_all, wait_all_final


def run_scenario(tmp: Path, database_url: str, *, practices: int, per_practice: int, kills: int, drop_rate: float):
    sim = Sim(tmp, practices)
    supervisor = Supervisor(tmp, sim, database_url)
    try:
        supervisor.start()
        offices = [f"D{1000 + n}" for n in range(practices)]
        work = bookings(sim, offices, per_practice)
        if drop_rate:
            sim.faults({"drop_after_accept_rate": drop_rate})
        total = len(work)
        kill_after = [total * (k + 1) // (kills + 1) for k in range(kills)]
        ids = submit_all(supervisor, work, kill_after=kill_after)
        final = wait_all_final(supervisor, ids, timeout=120 + 2 * total)
        check_ground_truth(sim, work, final)
        assert supervisor.terminate() == 0
    finally:
        if supervisor.proc and supervisor.proc.poll() is None:
            supervisor.proc.kill()
        sim.stop()


def test_bookings_end_to_end(tmp_path, database_url):
    run_scenario(tmp_path, database_url, practices=2, per_practice=10, kills=0, drop_rate=0)


def test_bookings_survive_cut_connections_and_kill_9(tmp_path, database_url):
    run_scenario(tmp_path, database_url, practices=2, per_practice=10, kills=1, drop_rate=0.3)


@pytest.mark.slow
def test_bookings_end_to_end_full(tmp_path, database_url):
    run_scenario(tmp_path, database_url, practices=5, per_practice=100, kills=0, drop_rate=0)


@pytest.mark.slow
def test_bookings_survive_cut_connections_and_kill_9_full(tmp_path, database_url):
    run_scenario(tmp_path, database_url, practices=5, per_practice=100, kills=3, drop_rate=0.2)
