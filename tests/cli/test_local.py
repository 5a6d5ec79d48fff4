"""The foundation's commands as an operator runs them: migrate, replay, rebuild, bad settings,
and the embedded PostgreSQL's life cycle (fresh, existing, after kill -9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import trio
from cryptography.fernet import Fernet

from actors.core import events as ev
from actors.core.secret import Secret
from bench.workload import EPOCH, practice_streams
from store.credentials import Credentials, PgCredentialRows, Vault, parse_keys
from store.pglog import PgEventStore
from store.locks import RUN_LOCK

CANARY_SECRET = "canary-Zr8fK1wq"
CANARY_PATIENT = "Quentinella"
BIN = Path(sys.executable).parent


def cli(*args, env=None, timeout=60):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SIKKA_", "DATABASE_URL"))}
    full_env.update(env or {})
    return subprocess.run(
        [str(BIN / "sikka-supervisor"), *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def test_migrate_twice_is_a_no_op(database_url):
    env = {"DATABASE_URL": database_url}
    first = cli("migrate", env=env)
    assert first.returncode == 0 and first.stdout.strip() == "schema up to date"
    shown = cli("migrate", "--json", env=env)
    assert shown.returncode == 0 and json.loads(shown.stdout) == {"applied": []}, shown.stderr


@pytest.mark.parametrize(
    "url, says",
    [
        ("mysql://db/x", "DATABASE_URL: scheme 'mysql' is not postgresql://"),
        ("postgresql://u@127.0.0.1:99999/x", "DATABASE_URL: the port is not a number"),
        ("not a url at all", "DATABASE_URL is neither"),
        ("postgresql://nobody@127.0.0.1:1/x", "cannot connect to the database"),
    ],
)
def test_bad_database_url_is_one_clear_line_and_exit_2(url, says):
    result = cli("migrate", env={"DATABASE_URL": url})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and lines[0].startswith("sikka-supervisor: ")


async def seed_log(db, key: str):
    """Two practices' lifecycles; one writeback carries the canary patient name in its payload."""
    creds = Credentials(Vault(parse_keys(key)), PgCredentialRows(db))
    await creds.put_secret("D1000", "refresh_key", Secret(CANARY_SECRET))
    store = PgEventStore(db)
    sealed = await creds.seal_payload("wb-canary", json.dumps({"firstname": CANARY_PATIENT}).encode())
    purged = await creds.seal_payload("wb-purged", b'{"firstname":"Gone"}')
    await creds.purge_payloads(["wb-purged"])
    for stream, events in practice_streams(seed=3, practices=2, writebacks_per_practice=3):
        version = await store.append(stream, 0, events)
    for wid, payload in (("wb-canary", sealed), ("wb-purged", purged)):
        version = await store.append(
            "practice-D1001",
            version,
            [
                ev.WritebackRequested(
                    at=EPOCH, writeback_id=wid, operation="create_patient", payload=payload, deadline_at=EPOCH
                )
            ],
        )
    return store


async def test_replay_json_redacts_and_decrypts_on_request(db, database_url):
    key = Fernet.generate_key().decode()
    await seed_log(db, key)
    env = {"DATABASE_URL": database_url, "SIKKA_SECRETS_KEY": key}
    plain = await trio.to_thread.run_sync(lambda: cli("replay", "--json", env=env))
    assert plain.returncode == 0, plain.stderr
    lines = [json.loads(line) for line in plain.stdout.splitlines()]
    total = db.call(lambda c: c.execute("SELECT count(*) FROM events").fetchone()[0])
    assert len(lines) == total
    assert set(lines[0]) == {"position", "stream_id", "version", "type", "recorded_at", "data", "state"}
    assert [line["position"] for line in lines] == list(range(1, total + 1))
    assert lines[-1]["state"]["writebacks"]["wb-purged"]["state"] == "queued"
    assert CANARY_PATIENT not in plain.stdout and CANARY_SECRET not in plain.stdout + plain.stderr
    requested = [line for line in lines if line["type"] == "writeback_requested"]
    assert {line["data"]["payload"] for line in requested} == {"[redacted]"}

    shown = await trio.to_thread.run_sync(lambda: cli("replay", "D1001", "--json", "--with-payloads", env=env))
    payloads = {
        json.loads(line)["data"]["writeback_id"]: json.loads(line)["data"]["payload"]
        for line in shown.stdout.splitlines()
        if json.loads(line)["type"] == "writeback_requested"
    }
    assert json.loads(payloads["wb-canary"]) == {"firstname": CANARY_PATIENT}
    assert payloads["wb-purged"] == "[purged]"
    assert all(json.loads(line)["stream_id"] == "practice-D1001" for line in shown.stdout.splitlines())

    until = await trio.to_thread.run_sync(lambda: cli("replay", "--until", "5", env=env))
    events = [line for line in until.stdout.splitlines() if not line.lstrip().startswith("→")]
    assert len(events) == 5 and "practice-D1000 v1 practice_registered" in until.stdout
    # regression: lines ran to 125 characters; the state after an event moves under it instead
    assert max(map(len, until.stdout.splitlines())) <= 80 and until.stdout.count("→") == 5, until.stdout
    wide = await trio.to_thread.run_sync(lambda: cli("replay", "--until", "5", "--wide", env=env))
    assert len(wide.stdout.splitlines()) == 5 and all(" → " in line for line in wide.stdout.splitlines())

    # regression: `replay D9999` printed nothing and exited 0
    for args in (["D9999"], ["D9999", "--json"], ["D1/0"]):
        unknown = await trio.to_thread.run_sync(lambda: cli("replay", *args, env=env))  # noqa: B023
        assert unknown.returncode == 2 and unknown.stdout == "", (args, unknown.stderr)
        assert len(unknown.stderr.strip().splitlines()) == 1 and "D" in unknown.stderr


async def test_canary_secret_never_reaches_events_or_projections(db):
    await seed_log(db, Fernet.generate_key().decode())
    dump = db.call(
        lambda c: " ".join(
            str(row)
            for table in ("events", "practices", "writebacks")
            for row in c.execute(f"SELECT * FROM {table}").fetchall()
        )
    )
    assert CANARY_SECRET not in dump and CANARY_PATIENT not in dump


async def test_rebuild_projections_command_and_refusal_while_running(db, database_url):
    await seed_log(db, Fernet.generate_key().decode())
    env = {"DATABASE_URL": database_url}
    result = await trio.to_thread.run_sync(lambda: cli("replay", "--rebuild-projections", env=env))
    assert result.returncode == 0, result.stderr
    assert "0 rows differed" in result.stdout
    shown = await trio.to_thread.run_sync(lambda: cli("replay", "--rebuild-projections", "--json", env=env))
    assert shown.returncode == 0 and json.loads(shown.stdout)["differences"] == 0, shown.stderr
    with psycopg.connect(database_url, autocommit=True) as running:
        running.execute("SELECT pg_advisory_lock(%s, %s)", RUN_LOCK)
        refused = await trio.to_thread.run_sync(lambda: cli("replay", "--rebuild-projections", env=env))
    assert refused.returncode == 2 and "a supervisor is running" in refused.stderr


def embedded_pids(data_dir: Path) -> list[int]:
    pid_file = data_dir / "pg" / "postmaster.pid"
    return [int(pid_file.read_text().split()[0])] if pid_file.exists() else []


def server_running(data_dir: Path) -> bool:
    pids = embedded_pids(data_dir)
    if not pids:
        return False
    try:
        os.kill(pids[0], 0)
    except ProcessLookupError:
        return False
    return True


def test_embedded_server_fresh_existing_and_after_kill_9(tmp_path):
    env = {"SIKKA_DATA_DIR": str(tmp_path)}
    fresh = cli("migrate", env=env)
    assert fresh.returncode == 0 and "0001_initial" in fresh.stdout, fresh.stderr
    assert not server_running(tmp_path)  # stopped on exit
    existing = cli("migrate", env=env)
    assert existing.returncode == 0 and existing.stdout.strip() == "schema up to date"

    holder = subprocess.Popen(
        [sys.executable, "-c", "from pathlib import Path; import sys, time; from store import embedded;"
         " embedded.start(Path(sys.argv[1])); print('up', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "up"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert server_running(tmp_path)  # left behind by the killed owner, its pid still recorded
    assert json.loads((tmp_path / "pg" / ".handle_pids.json").read_text()) == [holder.pid]

    adopted = cli("migrate", env=env)  # adopts the running server rather than starting another
    assert adopted.returncode == 0, adopted.stderr
    assert adopted.stdout.strip() == "schema up to date"
    deadline = time.monotonic() + 10
    while server_running(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not server_running(tmp_path)  # the killed owner's pid was pruned, so the last user stopped it
    pid_list = json.loads((tmp_path / "pg" / ".handle_pids.json").read_text())
    assert pid_list == []
