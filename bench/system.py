"""A whole supervisor in one trio run on MockClock, for ``bench.confirm``, ``bench.peer`` and the
tests: the in-memory store and credentials, the simulator's in-process transport, the practice
supervisor and the app-level tasks. No real I/O runs, so autojump time is safe.

``start_system`` starts it in a nursery (``wrap_store``/``wrap_transport`` inject faults);
``System`` requests writebacks and waits for their outcomes; ``booking``, ``appointment_status``,
``reschedule``, ``new_patient`` are valid payloads for the simulator's seeded data; ``EPOCH`` is
where its clock starts.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

import httpx
import trio
from cryptography.fernet import Fernet

from actors.core import messages
from actors.core.ratelimit import Budget
from actors.process import config
from actors.runtime.deps import Deps, mock_clock
from actors.runtime.applevel import AppLevel
from actors.runtime.practices import PracticeSupervisor
from actors.runtime.sikka import SikkaClient
from actors.runtime.supervision import RestartPolicy
from sim import SimConfig, Simulator
from store.credentials import Credentials, MemoryCredentialRows, Vault, parse_keys
from store.memory import MemoryEventStore

EPOCH = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # a Monday, 09:00 in New York


class System:
    def __init__(self, sim: Simulator, deps: Deps, practices: PracticeSupervisor, app: AppLevel):
        self.sim = sim
        self.deps = deps
        self.practices = practices
        self.app = app
        self.store = deps.store
        self.credentials = deps.credentials

    @property
    def clock(self):
        return self.deps.clock

    def offices(self) -> list[str]:
        return [f"D{1000 + n}" for n in range(self.sim.config.practices)]

    async def keys_granted(self, timeout: float = 60) -> None:
        """Until every running actor has recorded its first key grant (an actor starts before its
        grant: a fault injected meanwhile would hold that grant's record, not what a test asks)."""
        with trio.fail_after(timeout):
            while any(a.state.token_expires_at is None for a in self.practices.actors.values()):
                await trio.sleep(1)

    async def request(self, office_id: str, operation: str, payload: dict, **kw) -> str:
        writeback_id = str(uuid.uuid4())
        decision = await self.practices.actors[office_id].ask(
            messages.RequestWriteback(writeback_id=writeback_id, operation=operation, **kw),
            {writeback_id: json.dumps(payload).encode()},
        )
        assert isinstance(decision, list), decision
        return writeback_id

    async def wait_final(self, writeback_ids, timeout: float = 3600, step: float = 1) -> dict:
        with trio.fail_after(timeout):
            while True:
                rows = {w: await self.store.writeback(w) for w in writeback_ids}
                if all(r is not None and r.state in ("completed", "failed", "cancelled") for r in rows.values()):
                    return rows
                await trio.sleep(step)


def booking(sim: Simulator, office_id: str, n: int) -> dict:
    """A valid booking payload for the simulator's seeded data of ``office_id``."""
    data = sim.data(sim.practice(office_id))
    patients = sorted(data.patients)
    return {
        "patient_id": patients[n % len(patients)],
        "date": "2026-03-10",
        "time": f"{9 + n % 8:02d}:{(n * 10) % 60:02d}",
        "length": 30,
        "provider_id": data.providers[0].provider_id,
        "operatory": data.operatories[n % len(data.operatories)],
        "practice_id": "1",
    }


def appointment_status(sim: Simulator, office_id: str, n: int) -> dict:
    """A valid ``update_appointment_status`` payload: one of the practice's seeded appointments."""
    data = sim.data(sim.practice(office_id))
    sr_nos = sorted(data.appointments)
    return {"appointment_sr_no": sr_nos[n % len(sr_nos)], "practice_id": "1", "value": "Confirmed"}


def reschedule(sim: Simulator, office_id: str, n: int) -> dict:
    """A valid ``reschedule_appointment`` payload: a seeded appointment moved to another time."""
    sr_no = appointment_status(sim, office_id, n)["appointment_sr_no"]
    return {"appointment_sr_no": sr_no, "practice_id": "1", "time": f"{9 + n % 8:02d}:{(n * 10) % 60:02d}"}


def new_patient(sim: Simulator, office_id: str, n: int) -> dict:
    """A valid ``create_patient`` payload for the practice's seeded providers."""
    data = sim.data(sim.practice(office_id))
    provider = data.providers[0].provider_id
    return {"firstname": f"Pat{n}", "lastname": "Fleet", "provider_id": provider, "practice_id": "1"}


async def start_system(nursery: trio.Nursery, *, sim_config: SimConfig | None = None, env: dict | None = None,
                       policy: RestartPolicy = RestartPolicy(), onboard: bool = True, wrap_store=None,
                       wrap_transport=None, rng: random.Random | None = None, app_level=AppLevel) -> System:
    """``wrap_store``/``wrap_transport`` wrap the memory store and the simulator's transport (fault
    injection); ``rng`` seeds the restart jitter (deterministic simulations); ``app_level``: the
    app-level task's class (``bench.fleet`` runs the strategy before issue 21 beside ours)."""
    clock = mock_clock(EPOCH)
    sim_config = sim_config or SimConfig(practices=2, writeback_delay=(5.0, 20.0))
    sim = Simulator(sim_config, clock=lambda: clock().timestamp(), rng=random.Random(sim_config.seed))
    settings = config.load(
        {
            "SIKKA_APP_ID": sim_config.app_id,
            "SIKKA_APP_KEY": sim_config.app_key,
            "SIKKA_API_URL": "http://sikka.test/v4",
            "SIKKA_NODE_ID": "test-node",
            **(env or {}),
        }
    )
    transport = sim.transport() if wrap_transport is None else wrap_transport(sim.transport(), settings)
    http = httpx.AsyncClient(transport=transport, timeout=settings.http_timeout)
    client = SikkaClient(http, settings.api_url, settings.app_id, settings.app_key, settings.node_id)
    deps = Deps(
        store=MemoryEventStore(clock=clock) if wrap_store is None else wrap_store(MemoryEventStore(clock=clock)),
        credentials=Credentials(Vault(parse_keys(Fernet.generate_key().decode())), MemoryCredentialRows()),
        client=client,
        settings=settings,
        clock=clock,
        app_budget=Budget(settings.app_rate_limit),
    )
    practices = PracticeSupervisor(deps, policy, rng)
    app = app_level(deps, practices)
    deps.on_targets_changed = app.targets_changed
    await nursery.start(practices.run)
    nursery.start_soon(app.run_lists)
    system = System(sim, deps, practices, app)
    if onboard:
        await app.onboard()
        for office in system.offices():
            await practices.wait_started(office)
    return system
