"""Real crashes: ``kill -9``/restart cycles of a ``sikka-supervisor run`` process on real
PostgreSQL, against ``sikka-sim`` over HTTP (keys rolling every 60 s), while a client keeps
submitting bookings, patient creations and reschedules through the admin socket and the
simulator cuts connections after accepting writebacks and answers some requests 5xx.

Each kill lands at a random moment (a seeded ``random.Random``), not between requests; the client
re-sends anything unanswered under its idempotency key. When the cycles are done the faults are
lifted and the run ends with the fault suite's score, from the simulator's ground truth
(``/_sim/practices/{id}/appointments`` and ``/patients``, ``/_sim/stats``) and the database
(``store.rebuild.rebuild(swap=False)``: the production fold over the whole log against the
live projections). Every term must be zero.

Cycles: ``SIKKA_KILL_CYCLES`` (default 3; the ``CI=true`` stage runs 20).
"""

from __future__ import annotations

import os
import random
import time

from bench.processes import Sim, Supervisor, wait_ready
from tests.support.workload import Workload, score_of, wait_final

CYCLES = int(os.environ.get("SIKKA_KILL_CYCLES", "3"))
PRACTICES = 3


def test_kill_9_cycles_score_zero(tmp_path, database_url):
    rng = random.Random(f"kill-cycles:{CYCLES}")
    sim = Sim(tmp_path, PRACTICES)
    supervisor = Supervisor(tmp_path, sim, database_url)
    try:
        supervisor.start()
        wait_ready(supervisor, PRACTICES, 60)  # onboarded: a practice not yet registered is 404 unknown_practice
        work = Workload(supervisor, sim, rng, count=4 + 2 * CYCLES, offices=[f"D{1000 + n}" for n in range(PRACTICES)])
        work.thread.start()
        for _ in range(CYCLES):
            time.sleep(rng.uniform(0.3, 2.5))
            sim.faults({"drop_after_accept_rate": rng.choice([0, 0.2, 0.5]), "error_rate": rng.choice([0, 0.05, 0.2])})
            supervisor.kill9()
            time.sleep(rng.choice([0, 0, 0.5, 2]))
            supervisor.start()
        work.thread.join(300)
        assert not work.thread.is_alive(), "the client did not get every submission answered"
        sim.faults({})
        final = wait_final(supervisor, work.ids, timeout=180)
        score, details = score_of(sim, database_url, work, final)
        assert sum(score.values()) == 0, f"score {score}\n" + "\n".join(details)
        assert supervisor.terminate() == 0
    finally:
        if supervisor.proc and supervisor.proc.poll() is None:
            supervisor.proc.kill()
        sim.stop()
