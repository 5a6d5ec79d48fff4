"""``python -m bench.soak``: a busy day compressed: real supervisors and ``sikka-sim`` over HTTP.

``sikka-sim --practices N`` (writebacks done 2–20 s after acceptance, keys valid for a day) and
``--nodes`` × ``sikka-supervisor run`` on a fresh database (embedded PostgreSQL, or
``DATABASE_URL``'s server), ``SIKKA_APP_RATE_LIMIT`` left at its default; ``--bookings`` bookings
(each in a slot of its own) submitted through the admin sockets at an even pace over
``--seconds`` by a few threads, round-robin over the practices and the nodes; then until every
booking is final. Printed, from the simulator's ground truth and the processes' own accounting:

- ``lost``, ``duplicated``: bookings the simulator's appointments lack or hold twice;
  ``not_completed``: bookings whose writeback did not end ``completed``;
- ``app_429``, ``practice_429``: 429s earned by exceeding a window (``/_sim/stats``);
  ``app_max_in_any_60s`` against the simulator's ``app_limit``;
- ``rss_mib_at_20`` … ``rss_mib_at_100``: the supervisors' resident memory (summed over nodes) at
  the end of each fifth of the submissions, with ``completed_at_20`` …; ``rss_growth_mib_per_1000``:
  (RSS at 100 % − RSS at 20 %) / writebacks completed in between × 1,000;
- ``app_calls_per_confirmation``, ``practice_calls_per_confirmation`` (every keyed call, the
  submissions included), ``status_reads_per_confirmation`` (``writeback_status``);
- ``pages_per_list_round``, ``list_rounds``, ``status_rounds`` (the supervisors' ``/metrics``);
- ``events_per_writeback``: events in the log / bookings, and ``status_checked_per_writeback``;
- ``submit_p99_ms``: the admin API's answer time for a submission.

Targets (issue 21), at 200 practices, 6,000 bookings in 1,200 s: 0 lost, 0 duplicated, 0 × 429 of
either kind, RSS growth ≤ 1 MiB per 1,000 writebacks, ≤ 6 events and ≤ 0.1 app-level calls per
writeback; the same at four times the rate; two and three nodes: ``app_max_in_any_60s`` within
the simulator's limit.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import threading
import time
from pathlib import Path

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from actors.core.figures import percentile
from bench.common import line
from bench.processes import Sim, Supervisor, bookings, fresh_database, postgres, rss_bytes, start_nodes

MIB = 1024 * 1024
FIFTHS = (20, 40, 60, 80, 100)
FINAL = ("completed", "failed", "cancelled")
SIM_APP_LIMIT = 250  # the simulator's app-level limit per 60 s (Sikka's examples show 250)


def interleaved(sim: Sim, offices: list[str], total: int) -> list[tuple[str, str, dict]]:
    """``total`` bookings, the n-th of every practice before any practice's (n+1)-th."""
    per = -(-total // len(offices))
    work = bookings(sim, offices, per)
    return [work[o * per + n] for n in range(per) for o in range(len(offices))][:total]


def counts(node: Supervisor) -> collections.Counter:
    """Writebacks by state over every practice (the ``writebacks`` projection, any node)."""
    with node.client(timeout=60) as admin:
        out = collections.Counter()
        for practice in admin.get("/practices").json()["practices"]:
            out.update(practice["writebacks"])
        return out


class Submitter:
    """Submits ``work`` at an even pace (booking i at ``start + i / rate``) from ``threads``
    threads, each booking to the next node in turn; records the answer times."""

    def __init__(self, nodes: list[Supervisor], work, rate: float, threads: int):
        self.nodes, self.work, self.rate, self.threads = nodes, work, rate, threads
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._next = itertools.count()
        self._lock = threading.Lock()
        self.start = time.monotonic()

    def run(self) -> None:
        workers = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    def _worker(self) -> None:
        clients = [node.client(timeout=60) for node in self.nodes]
        try:
            while True:
                with self._lock:
                    i = next(self._next)
                if i >= len(self.work):
                    return
                time.sleep(max(0.0, self.start + i / self.rate - time.monotonic()))
                office, key, payload = self.work[i]
                began = time.monotonic()
                r = clients[i % len(clients)].post(
                    f"/practices/{office}/writebacks",
                    json={"operation": "book_appointment", "payload": payload, "idempotency_key": key},
                )
                self.latencies.append(time.monotonic() - began)
                if r.status_code not in (200, 202):
                    self.errors.append(r.text)
        finally:
            for c in clients:
                c.close()


def sample_fifths(nodes: list[Supervisor], seconds: float, start: float) -> dict[int, tuple[int, int]]:
    """At the end of each fifth of the submission time: (RSS summed over the nodes, completed)."""
    marks = {}
    for fifth in FIFTHS:
        time.sleep(max(0.0, start + seconds * fifth / 100 - time.monotonic()))
        marks[fifth] = (sum(rss_bytes(n.proc.pid) for n in nodes), counts(nodes[0])["completed"])
    return marks


def wait_final(node: Supervisor, total: int, timeout: float) -> collections.Counter:
    deadline = time.monotonic() + timeout
    while True:
        seen = counts(node)
        if sum(seen[s] for s in FINAL) >= total or time.monotonic() > deadline:
            return seen
        time.sleep(2.0)


def ground_truth(sim: Sim, work) -> tuple[int, int]:
    """(lost, duplicated): bookings whose slot holds no appointment written back, or more than one."""
    lost = duplicated = 0
    for office in sorted({o for o, _, _ in work}):
        rows = sim.get(f"/_sim/practices/{office}/appointments")["items"]
        slots = collections.Counter((r["date"], r["time"]) for r in rows if r["source"] == "writeback")
        for _, _, payload in (w for w in work if w[0] == office):
            n = slots[(payload["date"], payload["time"])]
            lost += n == 0
            duplicated += n > 1
    return lost, duplicated


def scrape(nodes: list[Supervisor]) -> collections.Counter:
    """The counters of ``/metrics`` that the figures need, summed over the nodes."""
    out: collections.Counter = collections.Counter()
    for node in nodes:
        with node.client() as admin:
            text = admin.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "sikka_confirmation_rounds_total":
                    out[f"rounds_{labels['method']}"] += sample.value
                elif sample.name == "sikka_list_pages_total":
                    out["list_pages"] += sample.value
                elif sample.name == "sikka_requests_total" and labels.get("endpoint") == "writeback_status":
                    out["status_reads"] += sample.value
    return out


def event_counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        total, checked = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE type = 'status_checked') FROM events"
        ).fetchone()
    return total, checked


def measure(admin_url: str, tmp: Path, *, practices: int, total: int, seconds: float, delay: str, nodes: int,
            threads: int, timeout: float) -> dict[str, float]:
    url = fresh_database(admin_url, "sikka_bench_soak")
    sim = Sim(
        tmp, practices, "--writeback-delay", delay, "--token-ttl", "86400", "--app-rate-limit", str(SIM_APP_LIMIT)
    )
    running: list[Supervisor] = []
    try:
        if nodes == 1:
            running = [Supervisor(tmp, sim, url)]
            running[0].start()
        else:
            running = list(start_nodes(tmp, sim, url, [f"node-{n}" for n in range(nodes)]).values())
        wait_running(running, practices, timeout)
        offices = [f"D{1000 + n}" for n in range(practices)]
        work = interleaved(sim, offices, total)
        submitter = Submitter(running, work, total / seconds, threads)
        sender = threading.Thread(target=submitter.run)
        sender.start()
        marks = sample_fifths(running, seconds, submitter.start)
        sender.join()
        assert not submitter.errors, submitter.errors[:3]
        states = wait_final(running[0], total, timeout)
        stats = sim.get("/_sim/stats")
        scraped = scrape(running)
        events, checked = event_counts(url)
        lost, duplicated = ground_truth(sim, work)
        for node in running:
            assert node.terminate() == 0
    finally:
        for node in running:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
        sim.stop()
    return figures(marks, states, stats, scraped, events, checked, lost, duplicated, submitter.latencies, total)


def wait_running(nodes: list[Supervisor], practices: int, timeout: float) -> None:
    """Until the nodes together run an actor for every practice."""
    deadline = time.monotonic() + timeout
    while True:
        running = 0
        for node in nodes:
            with node.client(timeout=60) as admin:
                running += len(admin.get("/usage").json()["practices"])
        if running >= practices:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{running} of {practices} actors running after {timeout:.0f} s")
        time.sleep(1.0)


def figures(marks, states, stats, scraped, events, checked, lost, duplicated, latencies, total) -> dict[str, float]:
    completed = states["completed"]
    practice_stats = stats["practices"].values()
    rss_first, done_first = marks[FIFTHS[0]]
    rss_last, done_last = marks[FIFTHS[-1]]
    out: dict[str, float] = {
        "bookings": total,
        "completed": completed,
        "not_completed": total - completed,
        "lost": lost,
        "duplicated": duplicated,
        "app_429": stats["app"]["status_429"],
        "practice_429": sum(p["status_429"] for p in practice_stats),
        "app_max_in_any_60s": stats["app"]["max_in_any_60s"],
        "app_limit": SIM_APP_LIMIT,
    }
    for fifth in FIFTHS:
        out[f"rss_mib_at_{fifth}"] = marks[fifth][0] / MIB
        out[f"completed_at_{fifth}"] = marks[fifth][1]
    out["rss_growth_mib_per_1000"] = (rss_last - rss_first) / MIB / max(1, done_last - done_first) * 1000
    out["app_calls_per_confirmation"] = stats["app"]["requests"] / max(1, completed)
    out["practice_calls_per_confirmation"] = sum(p["requests"] for p in practice_stats) / max(1, completed)
    out["status_reads_per_confirmation"] = scraped["status_reads"] / max(1, completed)
    out["list_rounds"] = scraped["rounds_list"]
    out["status_rounds"] = scraped["rounds_status"]
    out["pages_per_list_round"] = scraped["list_pages"] / max(1, scraped["rounds_list"])
    out["events_per_writeback"] = events / total
    out["status_checked_per_writeback"] = checked / total
    out["submit_p99_ms"] = percentile(latencies, 99) * 1000
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--practices", type=int, default=200)
    parser.add_argument("--bookings", type=int, default=6000)
    parser.add_argument("--seconds", type=float, default=1200.0)
    parser.add_argument("--delay", default="2:20", help="the simulator's writeback delay, MIN:MAX seconds")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4, help="submitting threads")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for start-up and the end")
    args = parser.parse_args(argv)
    with postgres() as (admin_url, tmp):
        result = measure(admin_url, tmp, practices=args.practices, total=args.bookings, seconds=args.seconds,
                         delay=args.delay, nodes=args.nodes, threads=args.threads, timeout=args.timeout)
    for name, value in result.items():
        print(line(name, value), flush=True)
    return result


if __name__ == "__main__":
    main()
