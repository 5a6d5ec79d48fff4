"""Ownership in a running supervisor (real PostgreSQL, real clock): a lease taken away is noticed
at the next renewal and the actor stops (reads then answer 503 naming the new owner); once that
lease expires, the practice comes back. And the app-level budget split between the live nodes
of the lease table as a node joins and leaves."""

from __future__ import annotations

import time

import psycopg
import pytest
import trio

from actors.core.leases import APP_RESERVE
from actors.core.ratelimit import Budget
from actors.runtime.ownership import ROUND_GAP_S, Ownership
from actors.runtime.practices import PracticeSupervisor
from tests.support.supervisor import OFFICES

TTL = 4.0


async def test_a_lost_lease_stops_the_actor_and_an_expired_one_is_taken_back(start, database_url):
    sup = await start(env={"SIKKA_LEASE_TTL": str(TTL)})
    office = OFFICES[0]
    assert (await sup.client.get(f"/practices/{office}/providers")).status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:  # another node took it (as after a partition)
        conn.execute(
            "UPDATE leases SET owner = 'thief', term = term + 1, expires_at = now() + interval '3 seconds'"
            " WHERE office_id = %s",
            (office,),
        )
    taken = time.monotonic()
    with trio.fail_after(TTL):
        while (r := await sup.client.get(f"/practices/{office}/providers")).status_code == 200:
            await trio.sleep(0.05)
    assert time.monotonic() - taken <= TTL / 4 + 1  # noticed at the next renewal
    assert r.status_code == 503 and "thief" in r.json()["detail"], r.text
    with trio.fail_after(3 + TTL):  # the thief's lease expires; this node is the only live one
        while (await sup.client.get(f"/practices/{office}/providers")).status_code != 200:
            await trio.sleep(0.1)
    status = (await sup.client.get(f"/practices/{office}")).json()
    assert status["owner"] == "test-node" and status["state"] == "active"
    assert status["restarts"] == 0


class NoPractices:
    """A practice supervisor with nothing to run: only the nodes table matters here."""

    allows = None

    def running(self) -> list[str]:
        return []

    def start(self, office_id: str) -> bool:
        return False

    def stop(self, office_id: str) -> None:
        pass

    def cancel(self, office_id: str) -> None:
        pass


async def wait_for(condition, timeout: float) -> float:
    began = trio.current_time()
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.02)
    return trio.current_time() - began


async def test_nodes_share_the_app_budget_as_a_node_joins_and_leaves(db):
    """200 a window for the application: a lone node takes 90 % (after its first window on the
    10 % reserve); a second node joining halves the first's share at once (its join NOTIFYs)
    and starts on the reserve; when it leaves, the first takes its share back one window later."""
    ttl, window = 1.0, 2.0  # budgets with a 2 s window (2.5 s with the margin), a 1 s lease TTL
    whole = 200
    alone, half, reserve = int(whole * (1 - APP_RESERVE)), int(whole * (1 - APP_RESERVE) / 2), int(whole * APP_RESERVE)
    a_budget, b_budget = Budget(whole, window=window), Budget(whole, window=window)
    a = Ownership(db, "node-a", ttl, NoPractices(), a_budget)
    b = Ownership(db, "node-b", ttl, NoPractices(), b_budget)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        assert a_budget.limit == reserve  # a node starting up: the reserve only
        await wait_for(lambda: a_budget.limit == alone, timeout=a_budget.span + ttl + 1)
        b_scope = trio.CancelScope()

        async def run_b(task_status=trio.TASK_STATUS_IGNORED):
            with b_scope:
                await b.run(task_status=task_status)

        await nursery.start(run_b)
        assert b_budget.limit == reserve
        assert await wait_for(lambda: a_budget.limit == half, timeout=ttl) < ttl / 2  # at once: NOTIFY
        await wait_for(lambda: b_budget.limit == half, timeout=b_budget.span + ttl + 1)
        await b.begin_close()  # leaves the live set (NOTIFY)
        b_scope.cancel()
        raised = await wait_for(lambda: a_budget.limit == alone, timeout=a_budget.span + ttl + 1)
        assert raised >= a_budget.span - ttl / 4  # not before the leaver's sends left the window
        nursery.cancel_scope.cancel()


class _CountedRounds(Ownership):
    """Ownership whose rounds only count (no database, no LISTEN, no guard)."""

    def __init__(self):
        super().__init__(_NoDatabase(), "n1", ttl=400.0, practices=PracticeSupervisor(None))
        self.rounds: list[float] = []

    async def _round(self) -> float:
        self.rounds.append(trio.current_time())
        return 100.0

    async def _listen(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def _guard(self) -> None:
        pass


class _NoDatabase:
    async def run(self, fn, *args):
        return None


async def test_pokes_in_quick_succession_share_one_round(autojump_clock):
    """Regression: onboarding 20,000 practices poked a full round (every lease read and renewed)
    for each practice; pokes within ROUND_GAP_S of a round now wait for one round together."""
    ownership = _CountedRounds()
    async with trio.open_nursery() as nursery:
        await nursery.start(ownership.run)
        for _ in range(20):
            ownership.poke()
            await trio.sleep(0.02)
        await trio.sleep(ROUND_GAP_S * 3)
        ownership.poke()
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    # the round at start; the first poke: a round at once; the 19 pokes of the next 0.4 s: one
    # round, ROUND_GAP_S after that one; a poke long after: a round at once
    assert ownership.rounds == pytest.approx([0.0, 0.0, ROUND_GAP_S, 0.4 + ROUND_GAP_S * 3])
