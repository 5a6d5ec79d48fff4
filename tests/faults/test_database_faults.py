"""Real PostgreSQL faults under a real ``sikka-supervisor run``: the database fault suite.

A PostgreSQL server of the suite's own (``tests.faults.cluster``) runs behind a TCP relay
(``tests.faults.relay``) that can cut, freeze and delay the supervisor's connections; the
supervisor runs against ``sikka-sim`` while a client (``tests.support.workload``) keeps submitting
bookings, patient creations and reschedules, and two probes time ``/health`` and admin reads that
need the database. Faults are injected one after another, each under submissions:

    terminate_*      pg_terminate_backend storms on one kind of session (application_name):
                     the pool, the LISTEN sessions, the node lock's session
    idle_timeout     ALTER DATABASE … SET idle_session_timeout (managed PostgreSQL's habit)
    restart_*        server restart, fast (SIGINT) and immediate (SIGQUIT: crash recovery)
    read_only        default_transaction_read_only on (a standby after a failover):
                     ReadOnlySqlTransaction on every write
    freeze_*         SIGSTOP/SIGCONT of the whole server, or of the postmaster alone
    kill_postmaster  kill -9 of the postmaster, started again a few seconds later
    relay_*          cut every connection; a black hole (nothing forwarded); 300 ms per chunk;
                     connections refused
    down             the server stopped for 15 s

The score, from the simulator's ground truth (``score_of``) and the probes, must be zero: lost =
duplicated = stuck = process exits = hung answers (``/health`` over 1 s, another admin answer over
``SIKKA_DB_TIMEOUT`` + 1 s) = 0. The run prints its figures (faults, bookings accepted, slowest
answers, recovery time after each fault: ``/health`` 200 again and a submission accepted).

The default suite runs ``SHORT``; ``SIKKA_DB_FAULTS=full`` (the ``CI=true`` stage) runs them all,
each held longer. Separate tests: SIGTERM while the database is down exits 0 within 30 s; the node
lock taken by another process while the supervisor's session was gone ends it with exit 2; a
``kill -9`` of the embedded postmaster is repaired by the supervisor itself.
"""

from __future__ import annotations

import json
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trio

from bench.processes import Sim, Supervisor, bookings, fresh_database, wait_ready
from store.nodelock import AlreadyRunning, NodeLock
from tests.faults.cluster import Cluster, pid_alive, postmaster_pid
from tests.faults.relay import Relay
from tests.support.workload import Workload, score_of, wait_final

FULL = os.environ.get("SIKKA_DB_FAULTS", "short") == "full"
DB_TIMEOUT_S = 3.0
HEALTH_LIMIT_S = 1.0
ADMIN_LIMIT_S = DB_TIMEOUT_S + 1.0
PRACTICES = 3
NODE = "dbfaults"
HOLD_S = 8.0 if FULL else 4.0  # how long a fault lasts
RECOVERY_LIMIT_S = 45.0
# signals to the embedded postmaster: kill -9, and (the full set) a fast shutdown, which left
# main's supervisor up with /health 503 and its actors crash-looping
KILLS = [signal.SIGKILL, signal.SIGINT, signal.SIGKILL] if FULL else [signal.SIGKILL]


class Run:
    """One supervisor on the suite's cluster (through the relay), the simulator, the client and
    the probes; ``inject`` runs one fault and measures the recovery after it."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.cluster = Cluster(tmp)
        self.direct_url = fresh_database(self.cluster.url(), "sikka")
        self.relay = Relay(lambda: trio.open_unix_socket(str(self.cluster.socket_path)))
        self.sim = Sim(tmp, PRACTICES)
        url = f"host=127.0.0.1 port={self.relay.port} user=postgres dbname=sikka"
        self.supervisor = Supervisor(tmp, self.sim, url)
        self.supervisor.env.update(
            {"SIKKA_NODE_ID": NODE, "SIKKA_DB_TIMEOUT": str(DB_TIMEOUT_S), "SIKKA_LEASE_TTL": "10"}
        )
        self.offices = [f"D{1000 + n}" for n in range(PRACTICES)]
        self.faults: list[dict] = []
        self.samples: list[tuple[str, float, float, int]] = []  # (probe, began, seconds, status)
        self.exits: list[int] = []
        self._probing = threading.Event()
        self.work: Workload | None = None

    def start(self) -> None:
        self.supervisor.start()
        wait_ready(self.supervisor, PRACTICES, 60)
        self.work = Workload(self.supervisor, self.sim, random.Random("db-faults"), 400, offices=self.offices,
                             tag="dbf", pace=0.1, timeout=30)
        self.work.thread.start()
        for probe in (self._probe_health, self._probe_admin):
            threading.Thread(target=probe, daemon=True).start()

    # --- probes ------------------------------------------------------------------------------

    def _sample(self, probe: str, path: str, timeout: float) -> None:
        began = time.monotonic()
        try:
            with self.supervisor.client(timeout=timeout) as client:
                status = client.get(path).status_code
        except httpx.TransportError:
            status = 0
        self.samples.append((probe, began, time.monotonic() - began, status))
        if self.supervisor.proc.poll() is not None and not self.exits:
            self.exits.append(self.supervisor.proc.returncode)

    def _probe_health(self) -> None:
        while not self._probing.is_set():
            self._sample("health", "/health", 10)
            time.sleep(0.25)

    def _probe_admin(self) -> None:
        while not self._probing.is_set():
            office = random.choice(self.offices)
            self._sample("admin", f"/practices/{office}/writebacks?limit=5", 30)
            if self.work.ids:
                self._sample("admin", f"/writebacks/{next(iter(self.work.ids.values()))}", 30)
            time.sleep(0.25)

    # --- faults ------------------------------------------------------------------------------

    def inject(self, name: str, fault: Callable[[Run], None]) -> None:
        began = time.monotonic()
        fault(self)
        lifted = time.monotonic()
        recovered = self._wait_recovered(lifted)
        self.faults.append({"fault": name, "began": began, "lifted": lifted, "recovered": recovered})
        assert self.supervisor.proc.poll() is None, f"the supervisor exited during {name}"

    def _wait_recovered(self, lifted: float) -> float | None:
        """Seconds from the fault's end to /health 200 and a submission accepted after it."""
        deadline = lifted + RECOVERY_LIMIT_S
        while time.monotonic() < deadline:
            healthy = [b + s for p, b, s, st in self.samples if p == "health" and b >= lifted and st == 200]
            accepted = [b + s for b, s, st in self.work.answers if b >= lifted and st in (200, 202)]
            if healthy and accepted:
                return max(healthy[0], accepted[0]) - lifted
            time.sleep(0.1)
        return None

    def finish(self) -> dict:
        self.work.stop()
        self.work.thread.join(120)
        self._probing.set()
        final = wait_final(self.supervisor, self.work.ids, timeout=240)
        score, details = score_of(self.sim, self.direct_url, self.work, final)
        score["exits"] = len(self.exits)
        score["hung_health"] = sum(1 for p, _, s, _ in self.samples if p == "health" and s > HEALTH_LIMIT_S)
        score["hung_admin"] = sum(1 for p, _, s, _ in self.samples if p == "admin" and s > ADMIN_LIMIT_S)
        score["hung_admin"] += sum(1 for _, s, _ in self.work.answers if s > ADMIN_LIMIT_S)
        score["not_recovered"] = sum(1 for f in self.faults if f["recovered"] is None)
        slow = [(p, b, s, st) for p, b, s, st in self.samples if s > (HEALTH_LIMIT_S if p == "health" else ADMIN_LIMIT_S)]
        slow += [("submit", b, s, st) for b, s, st in self.work.answers if s > ADMIN_LIMIT_S]
        details += [f"slow {p}: {s:.2f} s ({st}) during {self.fault_at(b)}" for p, b, s, st in slow]
        return {"score": score, "details": details, "figures": self.figures()}

    def degraded_during(self, name: str) -> bool:
        """Whether /health said 503 while the fault lasted."""
        (f,) = [f for f in self.faults if f["fault"] == name]
        return any(p == "health" and st == 503 and f["began"] <= b <= f["lifted"] for p, b, _, st in self.samples)

    def fault_at(self, moment: float) -> str:
        """The fault (or the recovery after it) going on at ``moment``."""
        for f in self.faults:
            if f["began"] <= moment <= f["lifted"] + (f["recovered"] or RECOVERY_LIMIT_S):
                return f"{f['fault']} (+{moment - f['began']:.1f} s)"
        return "no fault"

    def figures(self) -> dict:
        during = [(b, s) for f in self.faults for (_, b, s, _) in self.samples
                  if f["began"] <= b <= f["lifted"] + (f["recovered"] or RECOVERY_LIMIT_S)]
        admin = [s for p, _, s, _ in self.samples if p == "admin"] + [s for _, s, _ in self.work.answers]
        return {
            "faults_injected": len(self.faults),
            "bookings_accepted": len(self.work.ids),
            "answers_503": sum(1 for _, _, st in self.work.answers if st == 503),
            "slowest_health_s": round(max(s for p, _, s, _ in self.samples if p == "health"), 3),
            "slowest_admin_s": round(max(admin), 3),
            "slowest_answer_during_faults_s": round(max((s for _, s in during), default=0.0), 3),
            "recovery_s": {f["fault"]: None if f["recovered"] is None else round(f["recovered"], 2)
                           for f in self.faults},
        }

    def close(self) -> None:
        self._probing.set()
        if self.work is not None:
            self.work.stop()
        if self.supervisor.proc and self.supervisor.proc.poll() is None:
            self.supervisor.proc.kill()
        self.sim.stop()
        self.relay.close()
        self.cluster.close()


# --- the faults ----------------------------------------------------------------------------------


def terminating(pattern: str, rounds: int = 4) -> Callable[[Run], None]:
    def fault(run: Run) -> None:
        for _ in range(rounds):
            run.cluster.terminate(f"sikka-supervisor/{NODE}/{pattern}")
            time.sleep(HOLD_S / rounds)

    return fault


def idle_timeout(run: Run) -> None:
    run.cluster.set_idle_session_timeout("sikka", 1.5)
    run.cluster.terminate(f"sikka-supervisor/{NODE}/%")  # new sessions get the setting
    time.sleep(HOLD_S * 2)
    run.cluster.set_idle_session_timeout("sikka", None)
    run.cluster.terminate(f"sikka-supervisor/{NODE}/%")


def restarting(mode: str) -> Callable[[Run], None]:
    def fault(run: Run) -> None:
        run.cluster.restart(mode)
        time.sleep(HOLD_S / 2)

    return fault


def read_only(run: Run) -> None:
    run.cluster.set_read_only(True)
    time.sleep(HOLD_S)
    run.cluster.set_read_only(False)


def freezing(everything: bool) -> Callable[[Run], None]:
    def fault(run: Run) -> None:
        frozen = run.cluster.freeze(everything)
        time.sleep(HOLD_S)
        run.cluster.thaw(frozen)

    return fault


def kill_postmaster(run: Run) -> None:
    run.cluster.kill()
    time.sleep(HOLD_S / 2)
    run.cluster.start()


def relay_cut(run: Run) -> None:
    for _ in range(3):
        run.relay.cut()
        time.sleep(HOLD_S / 3)


def relay_black_hole(run: Run) -> None:
    run.relay.freeze()
    time.sleep(HOLD_S)
    run.relay.thaw()


def relay_slow(run: Run) -> None:
    run.relay.delay(0.3)
    time.sleep(HOLD_S)
    run.relay.delay(0)


def relay_refusing(run: Run) -> None:
    run.relay.refuse(True)
    run.relay.cut()
    time.sleep(HOLD_S)
    run.relay.refuse(False)


def server_down(run: Run) -> None:
    run.cluster.stop("fast")
    time.sleep(15)
    run.cluster.start()


SHORT = [
    ("terminate_pool", terminating("pool")),
    ("terminate_listen", terminating("listen-%")),
    ("terminate_node_lock", terminating("node-lock")),
    ("idle_timeout", idle_timeout),
    ("relay_cut", relay_cut),
    ("read_only", read_only),
    ("restart_fast", restarting("fast")),
    ("freeze_server", freezing(True)),
]
EVERY = SHORT + [
    ("terminate_all", terminating("%", rounds=8)),
    ("restart_immediate", restarting("immediate")),
    ("freeze_postmaster", freezing(False)),
    ("kill_postmaster", kill_postmaster),
    ("relay_black_hole", relay_black_hole),
    ("relay_slow", relay_slow),
    ("relay_refusing", relay_refusing),
    ("down", server_down),
]


@pytest.fixture
def run():
    # a short path (the server's socket is in it), and not under pytest's temporary root, which
    # other pytest sessions on the machine clean up
    with tempfile.TemporaryDirectory(prefix="sikka-dbfaults-") as tmp:
        run = Run(Path(tmp))
        try:
            yield run
        finally:
            run.close()


def test_database_faults_score_zero(run):
    run.start()
    for name, fault in EVERY if FULL else SHORT:
        run.inject(name, fault)
    outcome = run.finish()
    print("database fault suite:", json.dumps(outcome["figures"]))
    assert sum(outcome["score"].values()) == 0, f"score {outcome['score']}\n" + "\n".join(outcome["details"])
    assert run.degraded_during("read_only") and run.degraded_during("freeze_server")  # /health told
    # the driver's messages came through our logging: JSON lines only, one per event
    log = (run.tmp / "supervisor-1.log").read_text().splitlines()
    assert [line for line in log if not line.startswith("{")] == []
    assert all(json.loads(line)["event"] for line in log)
    # SIGTERM while the database is down (the full set: frozen, its threads stuck): exit 0 within 30 s
    if FULL:
        run.cluster.freeze()
    else:
        run.cluster.stop("fast")
    began = time.monotonic()
    assert run.supervisor.terminate() == 0
    print(f"stopped with the database {'frozen' if FULL else 'down'} in {time.monotonic() - began:.1f} s")
    assert time.monotonic() - began < 30


def test_the_node_lock_holds_when_its_session_is_lost(run):
    """Regression: the node lock was a session advisory lock that nothing re-checked: once its
    session was terminated, a second ``run`` with the same ``SIKKA_NODE_ID`` started and both
    served. The supervisor now re-takes it on a new session within seconds and goes on serving;
    when another process took it meanwhile, it stops serving at once and exits 2 with one line."""
    run.supervisor.start()
    for _ in range(2):
        assert run.cluster.terminate(f"sikka-supervisor/{NODE}/node-lock") == 1
        deadline = time.monotonic() + 15
        while run.cluster.sessions(f"sikka-supervisor/{NODE}/node-lock") != 1:
            assert time.monotonic() < deadline, "the node lock was not re-taken"
            time.sleep(0.1)
    with pytest.raises(AlreadyRunning):
        NodeLock(run.direct_url, NODE).take()
    assert _answers(run.supervisor)

    assert run.cluster.terminate(f"sikka-supervisor/{NODE}/node-lock") == 1
    other = NodeLock(run.direct_url, NODE)
    deadline = time.monotonic() + 5
    while True:  # the terminated backend lets go of the lock a moment after pg_terminate_backend
        try:
            other.take()
            break
        except AlreadyRunning:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    try:
        assert run.supervisor.proc.wait(20) == 2
    finally:
        other.close()
    log = (run.tmp / "supervisor-1.log").read_text().splitlines()
    assert log[-1] == (
        f"sikka-supervisor: another sikka-supervisor with SIKKA_NODE_ID={NODE!r} is already running on this database"
    )


def _answers(supervisor: Supervisor) -> bool:
    try:
        with supervisor.client(timeout=2) as client:
            return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False


def test_the_embedded_postmaster_killed_is_started_again(tmp_path_factory):
    """Regression: a ``kill -9`` of the embedded postmaster ended the supervisor within 0.1 s, a
    fast shutdown left it up and useless, and nothing ever restarted the server. The supervisor now restarts it (adopting the data
    directory, as ``run`` does at start) and goes on: /health comes back and bookings complete."""
    with tempfile.TemporaryDirectory(prefix="sikka-embedded-") as tmp:
        tmp = Path(tmp)
        sim = Sim(tmp, 1)
        supervisor = Supervisor(tmp, sim, "")
        del supervisor.env["DATABASE_URL"]
        try:
            supervisor.start()
            wait_ready(supervisor, 1, 60)
            pgdata = tmp / "data" / "pg"
            for sig in KILLS:
                old = postmaster_pid(pgdata)
                os.kill(old, sig)
                deadline = time.monotonic() + 60
                while not ((pid := postmaster_pid(pgdata)) and pid != old and pid_alive(pid) and _answers(supervisor)):
                    assert supervisor.proc.poll() is None, "the supervisor exited"
                    assert time.monotonic() < deadline, "the embedded server was not started again"
                    time.sleep(0.2)
            (office, key, payload), = bookings(sim, ["D1000"], 1)
            with supervisor.client() as client:
                r = client.post(f"/practices/{office}/writebacks", json={
                    "operation": "book_appointment", "idempotency_key": key, "payload": payload})
                assert r.status_code == 202, r.text
                wid = r.json()["writeback_id"]
                assert client.get(f"/writebacks/{wid}", params={"wait": 30}).json()["state"] == "completed"
            log = (tmp / "supervisor-1.log").read_text()
            # one restart may cover two kills: a kill can land while a restart is being retried
            assert 1 <= log.count('"database.embedded_server_restarted"') <= len(KILLS)
            assert supervisor.terminate() == 0
        finally:
            if supervisor.proc and supervisor.proc.poll() is None:
                supervisor.proc.kill()
            sim.stop()
