"""``sikka-supervisor demo``: the whole system on one machine, in one process, in under two minutes.

What runs (interface section 3, the ``demo`` row)::

    data dir (fresh temporary one unless --data-dir) ─► embedded PostgreSQL (migrated)
    trio.run
     ├─ the simulator (sim.Simulator) served over HTTP on 127.0.0.1:<free port>
     │    writebacks complete 2–20 s after acceptance; 20–120 ms per answer;
     │    one practice's rate limit lowered (the supervisor learns it from X-Rate-Limit-*);
     │    one practice's SPU offline for a spell (its writebacks wait at "Sikka")
     ├─ the supervisor (``serve``, handed in by the composition root: ``supervisor.serve``): its
     │    own start-up onboarding against the simulator, one actor per practice, the admin API
     │    on the Unix socket in the data dir
     └─ the driver: waits until every practice is active, submits M book_appointment writebacks
          through the admin socket (valid payloads from the simulator's ground truth, distinct
          slots, idempotency keys), prints progress on stderr (the counts when they change; while
          they stand still, why: the SPU spell, the practice held to its lowered rate limit, work
          pending at Sikka), then the summary on stdout once every writeback is final (or the
          time bound passed): lines for people, or with ``--json`` its figures as one JSON object

The demo builds nothing the composition root builds: it receives the supervisor (``serve``) and
the database builder (``database``) from ``supervisor.py``. Nothing is read from the environment:
the settings are built here (app credentials of the simulator, the data dir, the socket in it,
``SIKKA_SECRETS_KEY`` unset so the key file is created in the data dir). ``DATABASE_URL`` is
deliberately ignored: the demo never writes to a configured database. The supervisor's log lines
go to ``supervisor.log`` in the data dir; a temporary data dir is removed on success and kept
(and named) when the demo fails.

Exit status: 0 when every writeback reached a final state (completed, failed or cancelled);
1 when some did not within the bound (``--timeout``, default 300 s), when a submission was
refused, or when the practices did not become active.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio
from msgspec.structs import replace

from actors.cli.demoprogress import Progress, wait_reasons
from actors.cli.local import OpenDatabase
from actors.core.figures import percentile
from actors.core.state import FINAL_STATES, WRITEBACK_STATES
from actors.process import config, datadir, logs

WRITEBACK_DELAY_S = (2.0, 20.0)  # simulator: acceptance → completed at "Sikka"
LATENCY_MS = "20:120"  # simulator: time to answer each request
LOWERED_RATE_LIMIT = 20  # requests per 60 s for the rate-limited practice (the others: 250)
SPU_OFFLINE_AFTER_S = 3.0  # after the first submission
SPU_OFFLINE_FOR_S = 15.0
SUBMIT_SPREAD_S = 8.0  # submissions are spread over at most this long (0.25 s apart at most)
SUBMIT_GAP_S = 0.25
ACTIVE_TIMEOUT_S = 60.0  # start-up onboarding: every practice active within this
PROGRESS_EVERY_S = 1.0
STOP_TIMEOUT_S = 40.0
STATES = WRITEBACK_STATES
FINAL = tuple(s for s in WRITEBACK_STATES if s in FINAL_STATES)  # in display order
SLOT_TIMES = tuple(f"{h:02d}:{m:02d}" for h in range(8, 17) for m in (0, 30))  # 08:00 … 16:30
SOCKET_MAX = 100


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- pure helpers (tested without a run) ----------------------------------------------------------


def parse_utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def latency_s(wb: dict) -> float | None:
    """Request → recorded outcome, in seconds, for a final writeback."""
    if wb.get("state") not in FINAL or not wb.get("completed_at") or not wb.get("requested_at"):
        return None
    return (parse_utc(wb["completed_at"]) - parse_utc(wb["requested_at"])).total_seconds()


def plan_bookings(
    office_ids: list[str], count: int, truth: dict[str, dict], first_day: date, run_id: str
) -> list[tuple[str, dict]]:
    """``count`` submissions spread round-robin over the practices: (office_id, request body).

    ``truth[office_id]`` holds the simulator's ground truth (``patients``, ``appointments``
    items); patients, providers and operatories are taken from it. The k-th booking of a
    practice takes the k-th half-hour slot counted from 08:00 on ``first_day`` (18 a day), so no
    two bookings of a practice share a date and time (nor, then, an operatory or a provider) and
    none meets a seeded appointment (those all lie in the past)."""
    plans: list[tuple[str, dict]] = []
    per_office: dict[str, int] = {o: 0 for o in office_ids}
    for i in range(count):
        office = office_ids[i % len(office_ids)]
        k = per_office[office]
        per_office[office] += 1
        t = truth[office]
        patients = sorted(p["patient_id"] for p in t["patients"] if p.get("status", "Active") == "Active") or sorted(
            p["patient_id"] for p in t["patients"]
        )
        providers = sorted({a["provider_id"] for a in t["appointments"] if a["provider_id"]})
        operatories = sorted({a["operatory"] for a in t["appointments"] if a["operatory"]})
        taken = {(a["date"], a["time"]) for a in t["appointments"]}
        day, slot = first_day + timedelta(days=k // len(SLOT_TIMES)), SLOT_TIMES[k % len(SLOT_TIMES)]
        while (day.isoformat(), slot) in taken:  # never with the seeded data; kept for safety
            k += len(SLOT_TIMES)
            day = first_day + timedelta(days=k // len(SLOT_TIMES))
        payload = {
            "patient_id": patients[k % len(patients)],
            "date": day.isoformat(),
            "time": slot,
            "length": "30",
            "provider_id": providers[k % len(providers)],
            "operatory": operatories[k % len(operatories)],
            "practice_id": "1",
            "description": "Demo booking",
        }
        body = {"operation": "book_appointment", "payload": payload, "idempotency_key": f"demo-{run_id}-{office}-{k}"}
        plans.append((office, body))
    return plans


def summary(
    *, practices: int, writebacks: dict[str, dict], total: int, refused: int, elapsed: float, writeback_phase: float,
    stats_before: dict,
    stats_after: dict, faults: list[str], limits: dict[str, int], default_limit: int, app_limit: int,
) -> dict:
    """The demo's figures (``demo --json`` prints them as one JSON object; ``summary_lines`` says them)."""
    counts = {s: 0 for s in STATES}
    for wb in writebacks.values():
        counts[wb["state"]] = counts.get(wb["state"], 0) + 1
    final = sum(counts[s] for s in FINAL)
    latencies = [x for x in (latency_s(wb) for wb in writebacks.values()) if x is not None]
    during = stats_after["requests"] - stats_before["requests"]
    practice_429 = {o: s["status_429"] for o, s in sorted(stats_after["practices"].items())}

    def caller(stats: dict, limit: int) -> dict:
        return {"requests": stats["requests"], "max_in_any_60s": stats["max_in_any_60s"], "limit": limit}

    return {
        "practices": practices, "writebacks": total, "elapsed_s": round(elapsed, 1),
        "writeback_phase_s": round(writeback_phase, 1),
        "final_states": {s: counts[s] for s in FINAL}, "not_final": total - final - refused, "refused": refused,
        "latency_s": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                      "max": max(latencies) if latencies else None},
        "sikka_requests": {"per_writeback": round(during / total, 2), "from_first_submission": during,
                           "total": stats_after["requests"]},
        "status_429": {"total": stats_after["app"]["status_429"] + sum(practice_429.values()),
                       "app": stats_after["app"]["status_429"], "practices": practice_429},
        "requests_by_caller": {
            "app": caller(stats_after["app"], app_limit),
            "practices": {
                o: caller(s, limits.get(o, default_limit)) for o, s in sorted(stats_after["practices"].items())
            },
        },
        "faults": faults,
    }


def summary_lines(figures: dict) -> list[str]:
    """The summary for people, from ``summary``'s figures."""

    def secs(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1f} s"

    latency, requests, n429, callers = (figures[k] for k in ("latency_s", "sikka_requests", "status_429",
                                                               "requests_by_caller"))
    refused = figures["refused"]
    lines = [
        f"demo: {plural(figures['practices'], 'practice')}, {figures['writebacks']} booking writebacks; "
        f"{figures['elapsed_s']:.1f} s in all, "
        f"{figures['writeback_phase_s']:.1f} s from the first submission until every writeback was final",
        "final states: " + ", ".join(f"{s} {n}" for s, n in figures["final_states"].items())
        + f"; not final {figures['not_final']}" + (f"; refused at submission {refused}" if refused else ""),
        f"confirmation latency (request → recorded outcome): p50 {secs(latency['p50'])}, p95 {secs(latency['p95'])}, "
        f"max {secs(latency['max'])}",
        f"Sikka requests per writeback: {requests['per_writeback']:.2f} ({requests['from_first_submission']} "
        f"requests from the first submission on; {requests['total']} in all, onboarding included)",
        f"429s: {n429['total']} (app level {n429['app']}; "
        + ", ".join(f"{o} {n}" for o, n in n429["practices"].items()) + ")",
        "Sikka requests by caller (most in any 60 s / limit): "
        + f"app {callers['app']['requests']} ({callers['app']['max_in_any_60s']}/{callers['app']['limit']}); "
        + "; ".join(f"{o} {c['requests']} ({c['max_in_any_60s']}/{c['limit']})"
                    for o, c in callers["practices"].items()),
    ]
    lines += [f"fault: {f}" for f in figures["faults"]]
    return lines


# --- the run -----------------------------------------------------------------------------------


def _data_dir(chosen: str | None) -> tuple[Path, bool]:
    """(the data dir, whether it is a temporary one of ours)."""
    if chosen:
        return datadir.prepare(Path(chosen).absolute()), False
    path = Path(tempfile.mkdtemp(prefix="sikka-demo-"))
    if len(os.fsencode(str(path / "admin.sock"))) > SOCKET_MAX:  # a long $TMPDIR
        shutil.rmtree(path, ignore_errors=True)
        path = Path(tempfile.mkdtemp(prefix="sikka-demo-", dir="/tmp"))
    return path, True


def cmd_demo(args: argparse.Namespace, serve: Callable[..., Awaitable[None]], database: OpenDatabase) -> int:
    """The demo. ``serve(settings, db, *, stop, task_status)`` runs the whole supervisor;
    ``database(settings, max_size=...)`` opens (and on exit closes) the database of ``settings``."""
    from sim import SimConfig, Simulator  # the simulator: only the demo loads it

    started = time.monotonic()
    data_dir, temporary = _data_dir(getattr(args, "demo_data_dir", None) or getattr(args, "data_dir", None))
    ok = False
    try:
        env = {
            "SIKKA_DATA_DIR": str(data_dir),
            "SIKKA_ADMIN_SOCKET": str(data_dir / "admin.sock"),
            "SIKKA_API_URL": "http://127.0.0.1:9/v4",  # replaced once the simulator listens
            "SIKKA_NODE_ID": "demo",
            "SIKKA_LOG_FORMAT": "json",
        }
        simulator = Simulator(
            SimConfig(practices=args.practices, seed=1, writeback_delay=WRITEBACK_DELAY_S, rate_limit=250)
        )
        env["SIKKA_APP_ID"], env["SIKKA_APP_KEY"] = simulator.config.app_id, simulator.config.app_key
        settings = config.load(env)
        err(f"demo: data dir {data_dir}{' (temporary)' if temporary else ''}; starting the embedded PostgreSQL")
        log_file = os.fdopen(os.open(data_dir / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a")
        try:
            logs.configure("json", stream=log_file, secrets=settings.secrets())
            with database(settings, max_size=10) as db:
                ok = trio.run(_demo, args, settings, db, simulator, serve, started)
        finally:
            log_file.close()
    finally:
        if temporary and ok:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif not ok:
            err(f"demo: kept the data dir {data_dir} (supervisor.log, the database) for a look")
    return 0 if ok else 1


async def _demo(args, settings, db, simulator, serve, started: float) -> bool:
    from sim import serve as serve_simulator  # the simulator: only the demo loads it

    lowered = f"D{1000 + args.practices - 1}"  # the last practice (with one practice, the same as offline)
    offline = "D1000"
    simulator.set_faults({"latency_ms": LATENCY_MS, "rate_limit": {lowered: LOWERED_RATE_LIMIT}})
    faults = [
        f"{lowered}: rate limit lowered to {LOWERED_RATE_LIMIT} requests per 60 s "
        f"(others {simulator.config.rate_limit})"
    ]
    result = {"ok": False}
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_simulator, simulator, "127.0.0.1", 0)
        settings = replace(settings, api_url=f"http://127.0.0.1:{port}/v4")
        err(f"demo: simulator on http://127.0.0.1:{port} ({plural(args.practices, 'practice')}, writebacks complete "
            f"{WRITEBACK_DELAY_S[0]:g}–{WRITEBACK_DELAY_S[1]:g} s after acceptance); {faults[0]}")
        stop, done = trio.Event(), trio.Event()

        async def supervisor(task_status=trio.TASK_STATUS_IGNORED):
            try:
                await serve(settings, db, stop=stop, task_status=task_status)
            finally:
                done.set()

        await nursery.start(supervisor)
        err(f"demo: supervisor up (admin socket {settings.admin_socket}); start-up onboarding")
        async with trio.open_nursery() as driving:

            async def interrupted():  # the supervisor stopped on its own (SIGINT/SIGTERM)
                await done.wait()
                err("demo: the supervisor stopped; giving up")
                driving.cancel_scope.cancel()

            async def drive():
                result["ok"] = await _drive(args, settings, simulator, port, offline, faults, started)
                driving.cancel_scope.cancel()

            driving.start_soon(interrupted)
            driving.start_soon(drive)
        stop.set()
        with trio.move_on_after(STOP_TIMEOUT_S) as waited:
            await done.wait()
        if waited.cancelled_caught:
            err("demo: the supervisor did not stop in time")
            result["ok"] = False
        nursery.cancel_scope.cancel()  # the simulator
    return result["ok"]


async def _drive(args, settings, simulator, port, offline, faults, started) -> bool:
    """Wait for the practices, submit the bookings, follow them until final, print the summary."""
    deadline = started + args.timeout
    admin = httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=str(settings.admin_socket)), base_url="http://localhost", timeout=30
    )
    sim = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
    async with admin, sim:
        offices = [f"D{1000 + i}" for i in range(args.practices)]
        if not await _until_active(admin, offices, started, deadline):
            return False
        truth = {office: await _ground_truth(sim, office) for office in offices}
        run_id = uuid.uuid4().hex[:8]
        plans = plan_bookings(offices, args.writebacks, truth, simulator.today + timedelta(days=1), run_id)
        stats_before = (await sim.get("/_sim/stats")).json()
        bookings = Bookings(admin, plans)
        faults.append(f"{offline}: SPU offline {SPU_OFFLINE_FOR_S:g} s, from {SPU_OFFLINE_AFTER_S:g} s after the "
                      "first submission")
        async with trio.open_nursery() as work:
            work.start_soon(_spu_spell, simulator, offline, bookings.spell)
            work.start_soon(bookings.submit_all)
            all_final = await bookings.follow(started, deadline, args.timeout)
            stats_after = (await sim.get("/_sim/stats")).json()
            work.cancel_scope.cancel()  # the SPU spell, if still on (its finally clause clears it)
        figures = summary(
            practices=len(offices), writebacks={w: bookings.views[w] for w in bookings.ids}, total=len(plans),
            refused=bookings.refused, elapsed=time.monotonic() - started,
            writeback_phase=time.monotonic() - bookings.submitted_at, stats_before=stats_before,
            stats_after=stats_after, faults=faults, limits=simulator.faults.get("rate_limit", {}),
            default_limit=simulator.config.rate_limit, app_limit=simulator.config.app_rate_limit,
        )
        print(json.dumps(figures) if args.json else "\n".join(summary_lines(figures)), flush=True)
        return all_final and bookings.refused == 0


async def _until_active(admin: httpx.AsyncClient, offices: list[str], started: float, deadline: float) -> bool:
    """The supervisor's own start-up onboarding: every practice registered and active."""
    states: dict[str, str] = {}
    with trio.move_on_at(trio.current_time() + min(ACTIVE_TIMEOUT_S, deadline - time.monotonic())) as scope:
        while True:
            try:
                listed = (await admin.get("/practices")).json()["practices"]
            except (httpx.TransportError, ValueError, KeyError):
                listed = []
            states = {p["office_id"]: p["state"] for p in listed}
            if all(states.get(o) == "active" for o in offices):
                break
            await trio.sleep(0.2)
    if scope.cancelled_caught:
        err(f"demo: the practices did not all become active within {ACTIVE_TIMEOUT_S:g} s: {states}")
        return False
    err(f"demo: onboarded {plural(len(offices), 'practice')} in {time.monotonic() - started:.1f} s: all active")
    return True


async def _ground_truth(sim: httpx.AsyncClient, office: str) -> dict[str, list[dict]]:
    """The simulator's patients and appointments of a practice: valid bookings are made of them."""
    return {
        "patients": (await sim.get(f"/_sim/practices/{office}/patients")).json()["items"],
        "appointments": (await sim.get(f"/_sim/practices/{office}/appointments")).json()["items"],
    }


class Spell:
    """The SPU-offline spell as the progress lines tell it: the office, and until when (trio time)."""

    def __init__(self) -> None:
        self.office: str | None = None
        self.until: float | None = None


async def _spu_spell(simulator, offline: str, spell: Spell) -> None:
    await trio.sleep(SPU_OFFLINE_AFTER_S)
    simulator.set_faults({"spu_offline": [offline]})
    spell.office, spell.until = offline, trio.current_time() + SPU_OFFLINE_FOR_S
    err(f"demo: fault: {offline} SPU offline (its writebacks wait at Sikka for {SPU_OFFLINE_FOR_S:g} s)")
    try:
        await trio.sleep(SPU_OFFLINE_FOR_S)
    finally:
        simulator.set_faults({"spu_offline": None})
        spell.office = spell.until = None
        err(f"demo: fault cleared: {offline} SPU back online")


class Bookings:
    """The demo's writebacks through the admin socket: submitted a little apart, then the latest
    view of each polled every second until all are final, with the practices' status: progress on
    stderr (``actors.cli.demoprogress``: the counts when they change, else why they wait)."""

    def __init__(self, admin: httpx.AsyncClient, plans: list[tuple[str, dict]]):
        self.admin = admin
        self.plans = plans
        self.ids: list[str] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.refused = 0
        self.submitted_at = time.monotonic()
        self.gap = min(SUBMIT_GAP_S, SUBMIT_SPREAD_S / len(plans))
        self.spell = Spell()
        self.progress = Progress()
        self.practices: list[dict] = []  # the latest PracticeStatus bodies

    async def submit_all(self) -> None:
        for office, body in self.plans:
            try:
                r = await self.admin.post(f"/practices/{office}/writebacks", json=body)
            except httpx.TransportError as exc:
                err(f"demo: submission to {office} failed: {exc!r}")
                self.refused += 1
                continue
            if r.status_code in (200, 202):
                wb = r.json()
                self.ids.append(wb["writeback_id"])
                self.views[wb["writeback_id"]] = wb
            else:
                err(f"demo: submission to {office} refused: {r.status_code} {r.text.strip()}")
                self.refused += 1
            await trio.sleep(self.gap)

    async def follow(self, started: float, deadline: float, timeout: float) -> bool:
        """Every second: refresh the writebacks not yet final and print the progress line; True
        once all were submitted and are final, False when ``deadline`` passes first."""
        limiter = trio.CapacityLimiter(16)
        while True:
            await trio.sleep(PROGRESS_EVERY_S)
            async with trio.open_nursery() as polls:
                polls.start_soon(self._refresh_practices)
                for wid in list(self.ids):
                    if self.views[wid]["state"] not in FINAL:
                        polls.start_soon(self._refresh, limiter, wid)
            counts = {s: 0 for s in STATES}
            for wid in self.ids:
                state = self.views[wid]["state"]
                counts[state] = counts.get(state, 0) + 1
            done_submitting = len(self.ids) + self.refused == len(self.plans)
            back_in = None if self.spell.until is None else max(0.0, self.spell.until - trio.current_time())
            reasons = wait_reasons([self.views[w] for w in self.ids], self.practices, spu_offline=self.spell.office,
                                   spu_back_in_s=back_in, completes_in=WRITEBACK_DELAY_S)
            for line in self.progress.lines(time.monotonic() - started, counts, len(self.ids) + self.refused,
                                            len(self.plans), reasons):
                err(line)
            if done_submitting and all(self.views[w]["state"] in FINAL for w in self.ids):
                return True
            if time.monotonic() >= deadline:
                err(f"demo: not every writeback was final after {timeout:g} s")
                return False

    async def _refresh_practices(self) -> None:
        try:
            r = await self.admin.get("/practices")
        except httpx.TransportError:
            return
        if r.status_code == 200:
            self.practices = r.json()["practices"]

    async def _refresh(self, limiter: trio.CapacityLimiter, wid: str) -> None:
        async with limiter:
            try:
                r = await self.admin.get(f"/writebacks/{wid}")
            except httpx.TransportError:
                return
            if r.status_code == 200:
                self.views[wid] = r.json()
