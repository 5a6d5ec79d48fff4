"""Deterministic fault simulation: one seed, one workload, one fault schedule, one score.

A seed draws (``random.Random``, one stream per purpose, string-seeded so the draws never depend
on hash randomization) a small world (3-5 practices, the simulator's writeback delays, key TTL,
limits, sometimes a daily quota), a workload (bookings, reschedules, status updates, patient
creations, cancels and client re-submissions, over two simulated hours) and a fault schedule
(throttles with odd resets, 5xx/503 bursts, writebacks accepted then cut, cut connections before
and after the server answered, latency past the client's timeout, SPU-offline spells, keys expired
mid-flight, revocations and re-authorizations, database errors, lost commit answers, slow commits
and outages through ``FaultyStore``, duplicated and forged webhooks). The whole supervisor runs
on trio's MockClock with the in-process simulator (``bench.system.start_system``), and
the admin API is called in-process as a client would (idempotency keys, retries on 503).

When the workload and the schedule are done, every fault is lifted, and the run waits (simulated
time) until every accepted writeback is final. Then it scores against the simulator's ground
truth (every request carries a tag in a payload field Sikka keeps):

- ``lost``: a request never accepted, an accepted writeback without a row, or one reported
  ``completed`` that Sikka never completed;
- ``duplicates``: Sikka completed one request more than once (two appointments/patients);
- ``misreported``: reported failed/cancelled although Sikka completed it (without a recorded late
  find), or completed with another Sikka id / created id than Sikka's;
- ``stuck``: a writeback not final, or a practice not ``active``, once every fault was lifted and
  the settle time passed;
- ``unexplained_failures``: failed with a code no fault explains;
- ``status_429``: 429s earned by exceeding a window (practice and app level; the forced ones of
  throttles and quotas are counted apart by the simulator);
- ``expired_key_calls``: calls made with a key past its natural expiry;
- ``replay_mismatches``: the production fold over the whole log differs from the live
  projections, or a running actor's state differs from the fold of its stream;
- ``contract_violations``: the admin API answered 500 (or raised), accepted a forged webhook,
  refused a valid request, or answered a re-submission with another writeback.

Every term must be zero. Determinism: trio's scheduler is made deterministic (what Hypothesis
does), its random source and the restart jitter are seeded, writeback ids come from a seeded
source, the payload digest key is seeded; ``log_hash`` hashes the event log with the sealed
payloads left out (Fernet ciphertexts are random by design; the plaintexts are the workload's).

Reproduce a seed: ``python -m tests.faults.simulation --seed 1234`` (``-v`` for details).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import msgspec
import structlog
import trio
import trio.testing

from actors.core import events as ev
from actors.api.admin import Admin
from actors.api.http import Request
from actors.core.state import FINAL_STATES, empty, fold
from sim import SimConfig
from store.credentials import DIGEST_KEY
from tests.support.faults import FaultyStore
from store.projections import fold_log
from bench.system import System, start_system

REQUEST_CAP = 2000  # Sikka requests per seed, about
WORKLOAD_STOP_AT = 1500  # no new submissions once the simulator saw this many requests
HORIZON_S = 2 * 3600  # workload and faults
SETTLE_S = 3 * 86400  # the longest wait for the last writebacks after the faults are lifted
CALLBACK_KEY = "fault-suite-callback-key"
EXPLAINED_FAILURES = {"deadline_exceeded", "sikka_error", "outcome_unknown"}
SCORE_TERMS = (
    "lost",
    "duplicates",
    "misreported",
    "stuck",
    "unexplained_failures",
    "status_429",
    "expired_key_calls",
    "replay_mismatches",
    "contract_violations",
)


# --- the plan a seed draws ----------------------------------------------------------------------


@dataclass
class Submission:
    at: float
    office: str
    operation: str
    payload: dict
    key: str
    tag: str
    deadline_s: float | None
    resubmit_after: float | None  # a client re-sending the same key later (its answer was lost)
    cancel_after: float | None


@dataclass
class Episode:
    at: float
    kind: str
    duration: float
    params: dict


@dataclass
class Plan:
    seed: int
    sim_config: SimConfig
    env: dict
    submissions: list[Submission]
    episodes: list[Episode]
    webhook_every: float
    forged_webhooks: list[float]


def draw_plan(seed: int) -> Plan:
    rng = random.Random(f"{seed}:plan")
    practices = rng.randint(3, 5)
    quota = rng.choice([0] * 6 + [90])
    sim_config = SimConfig(
        practices=practices,
        seed=seed,
        rate_limit=rng.choice([250, 60, 20]),
        app_rate_limit=rng.choice([250, 30]),
        daily_quota=quota,
        token_ttl=rng.choice([86400.0, 3600.0, 1800.0]),
        writeback_delay=(2.0, rng.choice([20.0, 120.0, 900.0])),
        writeback_failure_rate=rng.choice([0.0, 0.0, 0.05]),
        rotate_refresh_keys=rng.random() < 0.5,
        refresh_lag=rng.choice([0.0, 30.0]),
        webhook_url="http://supervisor.test/webhooks/sikka",
        callback_key=CALLBACK_KEY,
        patients_per_practice=20,
        appointments_per_practice=30,
    )
    env = {
        "SIKKA_KEY_CHECK_INTERVAL": str(rng.choice([300, 900])),
        "SIKKA_WEBHOOK_CALLBACK_KEY": CALLBACK_KEY,
        "SIKKA_RATE_LIMIT": str(rng.choice([200, 250])),
        "SIKKA_APP_RATE_LIMIT": str(rng.choice([200, 250])),
    }
    offices = [f"D{1000 + n}" for n in range(practices)]
    submissions = []
    for n in range(rng.randint(40, 100)):
        office = rng.choice(offices)
        operation, payload = _draw_operation(rng, seed, n)
        deadline = rng.choice([None] * 6 + [180.0, 900.0] + ([2 * 86400.0] * 4 if quota else []))
        submissions.append(
            Submission(
                at=rng.uniform(0, HORIZON_S),
                office=office,
                operation=operation,
                payload=payload,
                key=f"seed-{seed}-req-{n}",
                tag=payload.get("description") or payload.get("status_changed_by") or payload["firstname"],
                deadline_s=deadline,
                resubmit_after=rng.uniform(1, 900) if rng.random() < 0.1 else None,
                cancel_after=rng.uniform(1, 600) if rng.random() < 0.08 else None,
            )
        )
    submissions.sort(key=lambda s: s.at)
    episodes = sorted((_draw_episode(rng, offices) for _ in range(rng.randint(12, 30))), key=lambda e: e.at)
    forged = sorted(rng.uniform(0, HORIZON_S) for _ in range(rng.randint(1, 4)))
    return Plan(seed, sim_config, env, submissions, episodes, rng.choice([5.0, 20.0, 60.0]), forged)


def _draw_operation(rng: random.Random, seed: int, n: int) -> tuple[str, dict]:
    """An operation whose payload carries the tag ``f{seed}r{n}`` in a field Sikka keeps. Ids are
    filled in against the practice's data when submitted (``_resolve``)."""
    tag = f"f{seed}r{n}"
    roll = rng.random()
    day = f"2026-03-{rng.randint(9, 27):02d}"
    time_ = f"{rng.randint(8, 16):02d}:{rng.choice(['00', '10', '20', '30', '40', '50'])}"
    if roll < 0.5:
        return "book_appointment", {"patient_id": "?", "date": day, "time": time_, "length": "30",
                                    "provider_id": "?", "operatory": "?", "practice_id": "1", "description": tag}
    if roll < 0.7:
        return "create_patient", {"firstname": tag, "lastname": "Faultsuite", "provider_id": "?", "practice_id": "1"}
    if roll < 0.85:
        return "reschedule_appointment", {"appointment_sr_no": "?", "practice_id": "1", "date": day,
                                          "time": time_, "description": tag}
    return "update_appointment_status", {"appointment_sr_no": "?", "practice_id": "1",
                                         "value": rng.choice(["Confirmed", "Broken"]), "status_changed_by": tag}


def _draw_episode(rng: random.Random, offices: list[str]) -> Episode:
    at = rng.uniform(0, HORIZON_S)
    office = rng.choice(offices)
    kind = rng.choice(
        ["throttle", "throttle", "errors", "drop_after_accept", "cuts", "latency", "spu_offline", "expire_tokens",
         "revoke", "db_errors", "db_lost_acks", "db_slow", "db_down"]
    )
    match kind:
        case "throttle":
            return Episode(at, kind, 0, {"office": office, "reset": rng.choice([1, 7, 13, 59, 61, 89, 121, 299, 601])})
        case "errors":
            return Episode(at, kind, rng.uniform(10, 180), {"rate": rng.choice([0.2, 0.5, 1.0])})
        case "drop_after_accept":
            return Episode(at, kind, rng.uniform(30, 600), {"rate": rng.choice([0.3, 1.0])})
        case "cuts":
            return Episode(at, kind, rng.uniform(30, 300), {"before": rng.uniform(0, 0.4), "after": rng.uniform(0, 0.4)})
        case "latency":
            return Episode(at, kind, rng.uniform(30, 300), {"ms": "200:45000"})
        case "spu_offline":
            return Episode(at, kind, rng.uniform(60, 1800), {"office": office})
        case "expire_tokens":
            return Episode(at, kind, 0, {})
        case "revoke":
            return Episode(at, kind, rng.uniform(60, 900), {"office": office})
        case "db_errors":
            return Episode(at, kind, rng.uniform(10, 300), {"rate": rng.choice([0.05, 0.2, 0.5])})
        case "db_lost_acks":
            return Episode(at, kind, rng.uniform(10, 300), {"rate": rng.choice([0.05, 0.2])})
        case "db_slow":
            return Episode(at, kind, rng.uniform(10, 300), {"delay": rng.choice([0.5, 5.0, 20.0])})
        case _:  # db_down
            return Episode(at, kind, rng.uniform(5, 120), {})


# --- fault injection between the client and the simulator ---------------------------------------


class FlakyTransport(httpx.AsyncBaseTransport):
    """Cuts connections before a request reaches the simulator (``ConnectError``) or after it
    answered (``ReadError``: the server did the work), and applies the client's timeout, which
    in-process transports otherwise bypass (a latency fault past it: ``ReadTimeout`` after the
    server processed the request)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, timeout: float, rng: random.Random):
        self.inner, self.timeout, self.rng = inner, timeout, rng
        self.cut_before = self.cut_after = 0.0
        self.cuts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.cut_before and self.rng.random() < self.cut_before:
            self.cuts += 1
            raise httpx.ConnectError("injected: connection refused", request=request)
        with trio.move_on_after(self.timeout) as scope:
            response = await self.inner.handle_async_request(request)
        if scope.cancelled_caught:
            self.cuts += 1
            raise httpx.ReadTimeout("injected: no answer within the timeout", request=request)
        if self.cut_after and self.rng.random() < self.cut_after:
            self.cuts += 1
            raise httpx.ReadError("injected: connection reset after the server answered", request=request)
        return response


class Faults:
    """The active episodes, applied as one merged fault set (overlapping episodes combine)."""

    def __init__(self, system: System, store: FaultyStore, transport: FlakyTransport):
        self.system, self.store, self.transport = system, store, transport
        self.active: list[Episode] = []
        self._scope = trio.CancelScope()

    async def run(self, episodes: list[Episode]) -> None:
        with self._scope:
            async with trio.open_nursery() as nursery:
                for episode in episodes:
                    await trio.sleep_until(episode.at)
                    nursery.start_soon(self._episode, episode)

    async def _episode(self, episode: Episode) -> None:
        sim, p = self.system.sim, episode.params
        if episode.kind == "throttle":
            sim.set_faults({"throttle": {p["office"]: p["reset"]}})
            return
        if episode.kind == "expire_tokens":
            sim.set_faults({"expire_tokens": True})
            return
        self.active.append(episode)
        self.apply()
        await trio.sleep(episode.duration)
        self.active.remove(episode)
        self.apply()

    def apply(self) -> None:
        def of(kind):
            return [e.params for e in self.active if e.kind == kind]

        def top(kind, name, default=0.0):
            return max((p[name] for p in of(kind)), default=default)

        self.system.sim.set_faults(
            {
                "error_rate": top("errors", "rate") or None,
                "drop_after_accept_rate": top("drop_after_accept", "rate") or None,
                "latency_ms": of("latency")[0]["ms"] if of("latency") else None,
                "spu_offline": sorted({p["office"] for p in of("spu_offline")}) or None,
                "revoke": sorted({p["office"] for p in of("revoke")}) or None,
            }
        )
        self.transport.cut_before = top("cuts", "before")
        self.transport.cut_after = top("cuts", "after")
        self.store.error_rate = top("db_errors", "rate")
        self.store.lost_ack_rate = top("db_lost_acks", "rate")
        self.store.commit_delay = top("db_slow", "delay")
        self.store.unreachable = bool(of("db_down"))

    def lift(self) -> None:
        """End every episode now (those still running are cancelled)."""
        self._scope.cancel()
        self.active.clear()
        self.apply()
        self.system.sim.set_faults({})


# --- the client -----------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the client saw."""

    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> writeback id
    violations: list[str] = field(default_factory=list)
    cancels: int = 0
    webhooks: int = 0


class Client:
    def __init__(self, admin: Admin, system: System, ledger: Ledger, rng: random.Random):
        self.admin, self.system, self.ledger, self.rng = admin, system, ledger, rng

    async def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        request = Request(method, path, {}, headers or {}, json.dumps(body).encode() if body is not None else b"", "uid=0")
        try:
            return await self.admin.handle(request)
        except Exception as exc:  # the HTTP server would answer 500: a contract violation
            self.ledger.violations.append(f"{method} {path} raised {exc!r}")
            return None

    async def submit(self, s: Submission) -> None:
        body = {"operation": s.operation, "payload": _resolve(self.system, s), "idempotency_key": s.key}
        if s.deadline_s is not None:
            body["deadline_s"] = s.deadline_s
        writeback_id = await self._until_accepted(s, body)
        if writeback_id is None:
            return
        async with trio.open_nursery() as nursery:
            if s.resubmit_after is not None:
                nursery.start_soon(self._resubmit, s, body)
            if s.cancel_after is not None:
                nursery.start_soon(self._cancel, s.cancel_after, writeback_id)

    async def _until_accepted(self, s: Submission, body: dict) -> str | None:
        while True:
            response = await self.call("POST", f"/practices/{s.office}/writebacks", body)
            if response is not None and response.status in (200, 202):
                writeback_id = msgspec.json.decode(response.body)["writeback_id"]
                known = self.ledger.accepted.setdefault(s.key, writeback_id)
                if known != writeback_id:
                    self.ledger.violations.append(f"{s.key}: re-submission answered {writeback_id}, not {known}")
                return writeback_id
            if response is not None and response.status != 503:
                self.ledger.violations.append(f"{s.key}: submission answered {response.status} {response.body!r}")
                return None
            await trio.sleep(self.rng.uniform(5, 60))

    async def _resubmit(self, s: Submission, body: dict) -> None:
        await trio.sleep(s.resubmit_after)
        await self._until_accepted(s, body)

    async def _cancel(self, after: float, writeback_id: str) -> None:
        await trio.sleep(after)
        while True:
            response = await self.call("POST", f"/writebacks/{writeback_id}/cancel")
            if response is not None and response.status in (200, 409):
                self.ledger.cancels += 1
                return
            if response is not None and response.status != 503:
                self.ledger.violations.append(f"cancel {writeback_id}: {response.status} {response.body!r}")
                return
            await trio.sleep(self.rng.uniform(5, 60))

    async def webhooks(self, every: float, forged: list[float]) -> None:
        """Deliver the simulator's due webhooks (some twice or three times), and forged ones."""
        forged = list(forged)
        while True:
            await trio.sleep(every)
            for _ in self.system.sim.due_webhooks():
                for _ in range(self.rng.choice([1, 1, 2, 3])):
                    await self._webhook(CALLBACK_KEY, expect=202)
            while forged and forged[0] <= trio.current_time():
                forged.pop(0)
                await self._webhook(self.rng.choice(["", "forged-key", CALLBACK_KEY[:-1]]), expect=401)

    async def _webhook(self, key: str, expect: int) -> None:
        headers = {"callback-key": key} if key else {}
        response = await self.call("POST", "/webhooks/sikka", {"event": "appointments"}, headers)
        self.ledger.webhooks += 1
        if response is not None and response.status != expect:
            self.ledger.violations.append(f"webhook with key {key!r}: {response.status}, expected {expect}")


def _resolve(system: System, s: Submission) -> dict:
    """The submission's payload with ids from the practice's seeded data (drawn from the tag)."""
    data = system.sim.data(system.sim.practice(s.office))
    pick = random.Random(s.tag)
    payload = dict(s.payload)
    if "patient_id" in payload:
        payload["patient_id"] = pick.choice(sorted(data.patients))
    if "provider_id" in payload:
        payload["provider_id"] = data.providers[0].provider_id
    if "operatory" in payload:
        payload["operatory"] = pick.choice(data.operatories)
    if "appointment_sr_no" in payload:
        seeded = sorted(a.appointment_sr_no for a in data.appointments.values() if a.source == "seed")
        payload["appointment_sr_no"] = pick.choice(seeded)
    return payload


# --- the run --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    seed: int
    score: dict[str, int]
    details: list[str]
    log_hash: str
    requests: int
    writebacks: int
    events: int
    simulated_s: float
    failures: dict[str, int]
    exercised: dict[str, int]  # how often the faults bit: injected counts and the events they led to

    @property
    def total(self) -> int:
        return sum(self.score.values())

    def report(self, verbose: bool = False) -> str:
        terms = ", ".join(f"{k}={v}" for k, v in self.score.items())
        lines = [
            f"seed {self.seed}: score {self.total} ({terms})",
            f"  {self.writebacks} writebacks, {self.requests} Sikka requests, {self.events} events,"
            f" {self.simulated_s / 3600:.1f} h simulated; failures by code {dict(sorted(self.failures.items()))}",
            f"  exercised: {', '.join(f'{k}={v}' for k, v in self.exercised.items())}",
            f"  log hash {self.log_hash}",
            f"  reproduce: python -m tests.faults.simulation --seed {self.seed} -v",
        ]
        shown = self.details if verbose else self.details[:20]
        lines += [f"  - {d}" for d in shown]
        if len(shown) < len(self.details):
            lines.append(f"  … {len(self.details) - len(shown)} more (-v)")
        return "\n".join(lines)


def run_seed(seed: int) -> Outcome:
    """Run one seed to its score (a fresh trio run on a MockClock)."""
    plan = draw_plan(seed)
    with deterministic_trio(seed), quiet_logs():
        return trio.run(_run, plan, clock=trio.testing.MockClock(autojump_threshold=0))


@contextmanager
def quiet_logs():
    """Only critical log lines while a seed runs (thousands of events otherwise)."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    try:
        yield
    finally:
        structlog.configure(**saved)


@contextmanager
def deterministic_trio(seed: int):
    """Trio's scheduler, deterministic and seeded for the run (as Hypothesis sets it up)."""
    from trio._core import _run as trio_run

    flag, state = trio_run._ALLOW_DETERMINISTIC_SCHEDULING, trio_run._r.getstate()
    trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True
    trio_run._r.seed(f"{seed}:trio")
    try:
        yield
    finally:
        trio_run._ALLOW_DETERMINISTIC_SCHEDULING = flag
        trio_run._r.setstate(state)


async def _run(plan: Plan) -> Outcome:
    seed = plan.seed
    holder: dict = {}

    def wrap_store(inner):
        holder["store"] = FaultyStore(inner, random.Random(f"{seed}:store"))
        return holder["store"]

    def wrap_transport(inner, settings):
        holder["transport"] = FlakyTransport(inner, settings.http_timeout, random.Random(f"{seed}:transport"))
        return holder["transport"]

    ids = random.Random(f"{seed}:ids")
    async with trio.open_nursery() as nursery:
        system = await start_system(
            nursery, sim_config=plan.sim_config, env=plan.env, wrap_store=wrap_store,
            wrap_transport=wrap_transport, rng=random.Random(f"{seed}:restarts"),
        )
        await system.credentials.rows.put_if_absent(
            *DIGEST_KEY, system.credentials.vault.encrypt(random.Random(f"{seed}:digest").randbytes(32).hex())
        )
        admin = Admin(system.deps, system.practices, system.app,
                      new_id=lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4)))
        store, transport = holder["store"], holder["transport"]
        faults = Faults(system, store, transport)
        ledger = Ledger()
        client = Client(admin, system, ledger, random.Random(f"{seed}:client"))
        start = trio.current_time()
        nursery.start_soon(system.app.run_onboarding)
        nursery.start_soon(client.webhooks, plan.webhook_every, [start + t for t in plan.forged_webhooks])
        submitted: list[Submission] = []
        async with trio.open_nursery() as work:
            work.start_soon(faults.run, [_shifted(e, start) for e in plan.episodes])
            for s in plan.submissions:
                await trio.sleep_until(start + s.at)
                if system.sim.requests >= WORKLOAD_STOP_AT:
                    break
                submitted.append(s)
                work.start_soon(client.submit, s)
            await trio.sleep_until(start + HORIZON_S)
            faults.lift()
            system.app.request_onboarding()  # re-authorized practices are found at the next onboarding anyway
        await _settle(system, ledger)
        outcome = await _score(seed, system, submitted, ledger, trio.current_time() - start)
        nursery.cancel_scope.cancel()
    return outcome


def _shifted(e: Episode, start: float) -> Episode:
    return Episode(e.at + start, e.kind, e.duration, e.params)


async def _settle(system: System, ledger: Ledger) -> None:
    with trio.move_on_after(SETTLE_S):
        while True:
            rows = [await system.store.writeback(w) for w in ledger.accepted.values()]
            practices = await system.store.practices()
            if all(r is not None and r.state in FINAL_STATES for r in rows) and all(
                row.practice.state == "active" for row in practices
            ):
                break
            await trio.sleep(60)
    await trio.sleep(120)  # late answers (webhooks, late finds) after the last one went final


async def _score(seed: int, system: System, submitted: list[Submission], ledger: Ledger, elapsed: float) -> Outcome:
    sim, store = system.sim, system.store.inner
    score = dict.fromkeys(SCORE_TERMS, 0)
    details: list[str] = []

    def fault(term: str, text: str) -> None:
        score[term] += 1
        details.append(f"{term}: {text}")

    done_at_sikka: dict[str, list] = {}
    for wb in sim.writebacks.values():
        tag = wb.body.get("description") or wb.body.get("status_changed_by") or wb.body.get("firstname")
        if wb.state == "completed":
            done_at_sikka.setdefault(tag, []).append(wb)
    records = await store.read_all()
    late_found = {r.event.writeback_id for r in records if isinstance(r.event, ev.LateOutcomeFound)}
    failures: Counter = Counter()
    for s in submitted:
        done = done_at_sikka.get(s.tag, [])
        if len(done) > 1:
            fault("duplicates", f"{s.key} ({s.operation}) completed {len(done)} times at Sikka: {[w.id for w in done]}")
        writeback_id = ledger.accepted.get(s.key)
        if writeback_id is None:
            fault("lost", f"{s.key} was never accepted")
            continue
        row = await store.writeback(writeback_id)
        if row is None:
            fault("lost", f"{s.key}: writeback {writeback_id} has no row")
            continue
        if row.state not in FINAL_STATES:
            fault("stuck", f"{s.key}: {row.state} ({row.last_result or row.deferred_reason or 'no reason'})")
        elif row.state == "completed":
            if not done:
                fault("lost", f"{s.key}: completed as Sikka {row.sikka_writeback_id}, which Sikka never completed")
            elif row.sikka_writeback_id not in {str(w.id) for w in done}:
                fault("misreported", f"{s.key}: completed as {row.sikka_writeback_id}, Sikka completed {done[0].id}")
            elif done[0].created_id and row.created_id != done[0].created_id:
                fault("misreported", f"{s.key}: created_id {row.created_id}, Sikka created {done[0].created_id}")
        else:
            code = row.error.code if row.error else "cancelled"
            failures[code] += 1
            if done and writeback_id not in late_found:
                fault("misreported", f"{s.key}: {row.state} ({code}) although Sikka completed {done[0].id}")
            if row.state == "failed" and code not in EXPLAINED_FAILURES:
                fault("unexplained_failures", f"{s.key}: failed {code}: {row.error.message if row.error else ''}")
    for row in await store.practices():  # every fault is lifted: each practice must be back at work
        if row.practice.state != "active":
            fault("stuck", f"practice {row.practice.office_id}: {row.practice.state} ({row.practice.last_error})")
    stats = sim.stats()
    for office, counts in stats["practices"].items():
        for term in ("status_429", "expired_key_calls"):
            if counts[term]:
                score[term] += counts[term]
                details.append(f"{term}: {office} {counts[term]} (max in any 60 s: {counts['max_in_any_60s']})")
    if stats["app"]["status_429"]:
        score["status_429"] += stats["app"]["status_429"]
        details.append(f"status_429: app level {stats['app']['status_429']}")
    for text in _replay_differences(records, store, system):
        fault("replay_mismatches", text)
    for text in ledger.violations:
        fault("contract_violations", text)
    return Outcome(
        seed=seed, score=score, details=details, log_hash=log_hash(records), requests=stats["requests"],
        writebacks=len(ledger.accepted), events=len(records), simulated_s=elapsed, failures=dict(failures),
        exercised=_exercised(system, records, ledger, stats),
    )


EXERCISED_EVENTS = ("OutcomeUnknown", "WritebackReconciled", "ProvenAbsent", "WritebackDeferred", "KeyRefused",
                    "SetupRequired", "PracticeDeauthorized", "PracticeReauthorized", "TokenRefreshFailed",
                    "PracticeParked", "DeleteAnswered", "LateOutcomeFound")


def _exercised(system: System, records, ledger: Ledger, stats: dict) -> dict[str, int]:
    store = system.store.statistics()
    practices = stats["practices"].values()
    types = Counter(type(r.event).__name__ for r in records)
    return {
        "forced_429": sum(p["forced_429"] for p in practices),
        "forced_expired": sum(p["forced_expired_calls"] for p in practices),
        "db_failed": store.failed_before_write,
        "db_lost_acks": store.lost_acks,
        "db_refused": store.refused_while_unreachable,
        "cuts": system.deps.client._http._transport.cuts,
        "restarts": system.practices.statistics().restarts,
        "webhooks": ledger.webhooks,
        "cancels": ledger.cancels,
        **{name: types[name] for name in EXERCISED_EVENTS},
    }


def _replay_differences(records, store, system: System) -> list[str]:
    out = []
    practices, writebacks = fold_log(records)
    live_practices = store._practices
    for office, (practice, version) in practices.items():
        row = live_practices.get(office)
        if row is None or row.practice != practice or row.version != version:
            out.append(f"practice {office}: the replayed row differs from the live projection")
    if set(live_practices) != set(practices):
        out.append(f"practices: live {sorted(live_practices)} vs replayed {sorted(practices)}")
    for writeback_id, wb in writebacks.items():
        if store._writebacks.get(writeback_id) != wb:
            out.append(f"writeback {writeback_id}: the replayed row differs from the live projection")
    if set(store._writebacks) != set(writebacks):
        out.append("writebacks: the live projection holds other rows than the replay")
    for office, actor in system.practices.actors.items():
        stream = [r.event for r in records if r.stream_id == actor.stream_id]
        if fold(empty(office), stream) != actor.state or len(stream) != actor.version:
            out.append(f"actor {office}: its live state differs from the fold of its stream")
    return out


def log_hash(records) -> str:
    """SHA-256 of the event log: positions, streams, versions, types, events (sealed payloads left
    out) and recording times."""
    digest = hashlib.sha256()
    for r in records:
        event = msgspec.to_builtins(r.event)
        if "payload" in event:
            event["payload"] = "<sealed>"
        digest.update(msgspec.json.encode([r.position, r.stream_id, r.version, r.type, event, r.recorded_at]))
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.simulation", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, action="append", required=True, help="a seed (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="every detail of the score")
    args = parser.parse_args(argv)
    worst = 0
    for seed in args.seed:
        outcome = run_seed(seed)
        print(outcome.report(args.verbose))
        worst = max(worst, outcome.total)
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
