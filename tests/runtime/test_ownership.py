"""Ownership in a running supervisor (real PostgreSQL, real clock): a lease taken away is noticed
at the next renewal and the actor stops (reads then answer 503 naming the new owner); once that
lease expires, the practice comes back."""

from __future__ import annotations

import time

import psycopg
import trio

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
