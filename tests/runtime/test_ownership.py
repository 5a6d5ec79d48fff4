"""Ownership in a running supervisor (real PostgreSQL, real clock): a lease taken away is noticed
at the next renewal and the actor stops (reads then answer 503 naming the new owner); once that
lease expires, the practice comes back."""

from __future__ import annotations

import time

import psycopg
import pytest
import trio

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
