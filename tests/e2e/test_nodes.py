"""Several ``sikka-supervisor run`` processes (distinct ``SIKKA_NODE_ID``) on one database and one
``sikka-sim``, with short leases (``SIKKA_LEASE_TTL``).

Checks: every practice owned by exactly one live node, spread by rendezvous hashing; bookings
submitted to any node (mostly not the owner) all complete; ``kill -9`` of a node: its practices
are taken over within the lease time and their pending writebacks complete; ``SIGTERM`` of a
node hands its practices over at once; from the moment ownership settled, each practice's
request timeline at the simulator (``node`` from the User-Agent) never returns to a node it left,
so no two nodes served a practice at overlapping times; the ground truth holds each booking once.

The default suite runs a two-node smoke run; the ``slow`` marker holds the full run (three nodes,
30 practices, TTL 5 s, a kill and a clean stop) for the ``CI=true`` stage.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from actors.core.leases import desired_owner
from bench.processes import Sim, Supervisor, bookings, start_nodes
from tests.support.processes import check_ground_truth, wait_all_final


def owners(node: Supervisor) -> dict[str, str | None]:
    with node.client(timeout=10) as client:
        return {p["office_id"]: p["owner"] for p in client.get("/practices").json()["practices"]}


def live_leases(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT office_id, owner FROM leases WHERE expires_at > now()").fetchall())


def wait_owned(node: Supervisor, offices: list[str], live: list[str], timeout: float) -> float:
    """Seconds until every practice is owned as rendezvous hashing over ``live`` says."""
    started = time.monotonic()
    wanted = {o: desired_owner(o, live) for o in offices}
    while True:
        seen = owners(node)
        if all(seen.get(o) == w for o, w in wanted.items()):
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, {o: (seen.get(o), w) for o, w in wanted.items() if seen.get(o) != w}
        time.sleep(0.1)


def check_routing(nodes: dict[str, Supervisor], leases: dict[str, str]) -> None:
    """A Sikka read or an operator action goes to the owner; elsewhere: 503 naming the owner."""
    office, owner = sorted(leases.items())[0]
    other = next(n for n in nodes if n != owner)
    with nodes[owner].client() as client:
        assert client.get(f"/practices/{office}/providers").status_code == 200
    with nodes[other].client() as client:
        for r in (client.get(f"/practices/{office}/providers"), client.post(f"/practices/{office}/pause")):
            assert r.status_code == 503 and r.json()["error"] == "practice_unavailable", r.text
            assert owner in r.json()["detail"], r.text
        assert client.get(f"/practices/{office}").json()["state"] == "active"  # nothing was paused


def submit_spread(nodes: list[Supervisor], work) -> dict[str, str]:
    """Each booking to the next node in turn, whoever owns the practice."""
    ids = {}
    for (office, key, payload), node in zip(work, itertools.cycle(nodes)):
        with node.client(timeout=30) as client:
            r = client.post(
                f"/practices/{office}/writebacks",
                json={"operation": "book_appointment", "payload": payload, "idempotency_key": key},
            )
        assert r.status_code == 202, r.text
        ids[key] = r.json()["writeback_id"]
    return ids


def check_no_overlap(sim: Sim, offices: list[str], since: datetime) -> None:
    """From ``since`` on, a practice's requests come from one node at a time: the sequence of
    nodes never returns to a node it left (an overlap would interleave them)."""
    for office in offices:
        items = sim.get(f"/_sim/practices/{office}/requests")["items"]
        nodes = [i["node"] for i in items if datetime.fromisoformat(i["at"]) >= since]
        assert all(nodes), (office, "a request without a node in its User-Agent")
        runs = [n for n, _ in itertools.groupby(nodes)]
        assert len(runs) == len(set(runs)), (office, runs)


def run_nodes(tmp: Path, database_url: str, *, practices: int, names: list[str], per_practice: int,
              ttl: float, kill: bool) -> dict[str, float]:
    sim = Sim(tmp, practices)
    nodes: dict[str, Supervisor] = {}
    figures = {}
    try:
        nodes = start_nodes(tmp, sim, database_url, names, ttl)
        offices = [f"D{1000 + n}" for n in range(practices)]
        live = list(names)
        first = nodes[names[0]]
        wait_owned(first, offices, live, timeout=3 * ttl + 30)
        settled = datetime.now(UTC)
        leases = live_leases(database_url)
        assert sorted(leases) == offices and set(leases.values()) == set(names), leases
        for node in nodes.values():  # every node answers for every practice, with the same owner
            assert owners(node) == leases
        check_routing(nodes, leases)

        work = bookings(sim, offices, per_practice)
        ids = submit_spread(list(nodes.values()), work)

        victim = names[1] if kill else None
        if kill:  # its pending writebacks are taken over with its practices
            nodes[victim].kill9()
            live.remove(victim)
            figures["takeover_s"] = wait_owned(first, offices, live, timeout=ttl + 10)
            assert figures["takeover_s"] < ttl + 1, figures  # expiry ≤ TTL after the last renewal, + a round
        final = wait_all_final(first, ids, timeout=120 + 2 * len(ids))
        # a booking stored by any node reaches the owner's actor at once (LISTEN/NOTIFY)
        figures["relay_max_s"] = max(
            (datetime.fromisoformat(b["submitted_at"]) - datetime.fromisoformat(b["requested_at"])).total_seconds()
            for key, b in final.items() if leases[b["office_id"]] != victim and b["attempts"] == 1
        )
        assert figures["relay_max_s"] < 2.0, figures

        leaving = names[-1]
        before = time.monotonic()
        assert nodes[leaving].terminate() == 0
        figures["stop_s"] = time.monotonic() - before
        live.remove(leaving)
        figures["handover_s"] = wait_owned(first, offices, live, timeout=ttl + 10)
        assert figures["handover_s"] < min(2.0, ttl / 2), figures  # at once, not after the lease time
        more = bookings(sim, offices, per_practice + 1)[per_practice :: per_practice + 1]
        final.update(wait_all_final(first, submit_spread([first], more), timeout=60 + 2 * len(more)))

        check_ground_truth(sim, work + more, final)
        check_no_overlap(sim, offices, settled)
        for name in live:
            assert nodes[name].terminate() == 0
        print(" ".join(f"{k}: {v:.2f}" for k, v in figures.items()))
        return figures
    finally:
        for node in nodes.values():
            if node.proc and node.proc.poll() is None:
                node.proc.kill()
        sim.stop()


def test_two_supervisors_share_the_practices_and_hand_over_on_stop(tmp_path, database_url):
    run_nodes(tmp_path, database_url, practices=6, names=["node-a", "node-b"], per_practice=2, ttl=5, kill=False)


@pytest.mark.slow
def test_three_supervisors_survive_kill_9_and_hand_over_on_stop(tmp_path, database_url):
    run_nodes(tmp_path, database_url, practices=30, names=["node-a", "node-b", "node-c"], per_practice=4, ttl=5,
              kill=True)
