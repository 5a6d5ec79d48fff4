"""Lease rows and process locks on real PostgreSQL (``store.leases``, migration 0003)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from store import leases
from store.nodelock import AlreadyRunning, NodeLock
from store.replay import supervisor_running

BIN = Path(sys.executable).parent


def run(database_url: str, fn, *args, **kw):
    with psycopg.connect(database_url, autocommit=True) as conn:
        return fn(conn, *args, **kw)


def expire(database_url: str, office_id: str) -> None:
    run(database_url, lambda c: c.execute("UPDATE leases SET expires_at = now() WHERE office_id = %s", (office_id,)))


def test_acquire_when_free_or_expired_renew_scoped_to_the_term_release_at_once(database_url):
    assert run(database_url, leases.acquire, "a", ["D1", "D2"], 30) == {"D1": 1, "D2": 1}
    assert run(database_url, leases.acquire, "b", ["D1"], 30) == {}  # held by a live lease
    assert run(database_url, leases.owner_of, "D1") == "a"
    expire(database_url, "D1")
    assert run(database_url, leases.owner_of, "D1") is None
    assert run(database_url, leases.acquire, "b", ["D1"], 30) == {"D1": 2}  # expired: taken, next term
    # a's renewal at its old term cannot revive D1; D2 is renewed
    assert run(database_url, leases.renew, "a", {"D1": 1, "D2": 1}, 30) == {"D1"}  # lost
    assert run(database_url, leases.holds, "b", "D1", 2) and not run(database_url, leases.holds, "a", "D1", 1)
    run(database_url, leases.release, "b", {"D1": 2})
    assert run(database_url, leases.owner_of, "D1") is None
    assert run(database_url, leases.acquire, "a", ["D1"], 30) == {"D1": 3}


def test_a_node_reclaims_its_own_leases_after_a_restart(database_url):
    run(database_url, leases.acquire, "a", ["D1"], 30)
    assert run(database_url, leases.acquire, "a", ["D1"], 30) == {"D1": 2}


def test_the_snapshot_heartbeats_and_lists_nodes_leases_and_practices(database_url):
    run(database_url, leases.join, "a", 30)
    run(database_url, leases.acquire, "a", ["D1"], 30)
    snap = run(database_url, leases.snapshot, "a", 30, heartbeat=True)
    assert set(snap.nodes) == {"a"} and snap.nodes["a"] > snap.now
    assert snap.leases == {} and snap.practices == []  # its own lease is in its hands, not the plan's
    assert run(database_url, leases.snapshot, "b", 30, heartbeat=False).leases["D1"].owner == "a"
    run(database_url, leases.leave, "a")
    assert run(database_url, leases.snapshot, "a", 30, heartbeat=False).nodes == {}  # leaving: no heartbeat
    assert set(run(database_url, leases.snapshot, "a", 30, heartbeat=True).nodes) == {"a"}  # a lost row comes back


def held_lock(url: str, node_id: str) -> NodeLock:
    lock = NodeLock(url, node_id)
    lock.take()
    return lock


def test_one_run_per_node_id_many_nodes_per_database_and_no_rebuild_while_any_runs(database_url):
    a = held_lock(database_url, "a")
    try:
        with pytest.raises(AlreadyRunning, match="SIKKA_NODE_ID='a' is already running"):
            held_lock(database_url, "a")
        b = held_lock(database_url, "b")
        assert run(database_url, supervisor_running)
        a.close()
        assert run(database_url, supervisor_running)  # b still runs
        b.close()
        # the server drops a session's locks when its backend exits, just after the client's close
        deadline = time.monotonic() + 10
        while run(database_url, supervisor_running):
            assert time.monotonic() < deadline, "the run lock outlived the sessions that held it"
            time.sleep(0.05)
    finally:
        a.close()


def test_a_second_run_with_the_same_node_id_exits_2_with_one_line(database_url, tmp_path):
    held = held_lock(database_url, "twin")
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SIKKA_")},
            "DATABASE_URL": database_url, "SIKKA_NODE_ID": "twin", "SIKKA_APP_ID": "x", "SIKKA_APP_KEY": "y",
            "SIKKA_DATA_DIR": str(tmp_path), "SIKKA_LOG_FORMAT": "json",
        }
        started = time.monotonic()
        result = subprocess.run([str(BIN / "sikka-supervisor"), "run"], env=env, capture_output=True, text=True,
                                timeout=60)
    finally:
        held.close()
    assert result.returncode == 2, result.stderr
    assert "SIKKA_NODE_ID='twin' is already running on this database" in result.stderr
    assert time.monotonic() - started < 30
