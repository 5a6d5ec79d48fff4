"""The production install of ``deploy/``: the systemd unit verifies; ``roles.sql`` gives the
program a role that cannot rewrite the log and that the whole supervisor runs under; payload
retention shreds old payloads and nothing else; the restore drill passes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pgserver
import pytest
import trio
from psycopg.conninfo import make_conninfo

from store import retention
from store.db import Database
from tests.support.supervisor import OFFICES, booking

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
PG_BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (.ci/run installs the systemd package)"
    unit = (DEPLOY / "sikka-supervisor.service").read_text()
    assert "ExecStart=/opt/sikka-supervisor/.venv/bin/sikka-supervisor run" in unit
    # verify also checks that ExecStart is executable: point it at this checkout's program
    (tmp_path / "sikka-supervisor.service").write_text(
        unit.replace("/opt/sikka-supervisor/.venv/bin/", f"{BIN}/")
    )
    result = subprocess.run([analyze, "verify", str(tmp_path / "sikka-supervisor.service")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_unit_matches_the_supervisor():
    unit = dict(
        line.split("=", 1) for line in (DEPLOY / "sikka-supervisor.service").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    from actors.process.limits import needed_open_files
    from supervisor import DRAIN_S, STOP_FORCED_S

    assert unit["Type"] == "notify"
    assert float(unit["TimeoutStopSec"]) == 30  # the contract's "exit 0 within 30 s"
    assert DRAIN_S + 5 < STOP_FORCED_S < float(unit["TimeoutStopSec"])  # drain, leases released, then the last resort
    assert int(unit["WatchdogSec"]) >= 10  # pinged every WatchdogSec/2 (actors.process.systemd)
    assert unit["EnvironmentFile"] == "/etc/sikka-supervisor/env"
    assert int(unit["LimitNOFILE"]) >= needed_open_files(256, 2)  # both listeners full, the pools


@pytest.fixture
def roles(database_url, pg_admin_url):
    """The database with ``deploy/roles.sql`` applied (as the superuser that migrated it)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute((DEPLOY / "roles.sql").read_text())
    return {
        "program": make_conninfo(database_url, user="sikka_supervisor"),
        "dashboard": make_conninfo(database_url, user="sikka_dashboard"),
    }


@pytest.fixture
def db(roles):
    """What the supervisor runs on in these tests: a pool connected as the program's role."""
    database = Database(roles["program"], max_size=8)
    database.open_sync()
    yield database
    database.close_sync()


def refused(conninfo: str, sql: str) -> bool:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            conn.execute(sql)
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


async def completed_booking(sup) -> dict:
    r = await sup.submit(OFFICES[0], {"operation": "book_appointment", "payload": booking(sup.sim, OFFICES[0])})
    assert r.status_code == 202, r.text
    wb = (await sup.writeback(r.json()["writeback_id"], wait=30)).json()
    assert wb["state"] == "completed", wb
    return wb


async def test_the_supervisor_runs_under_the_program_role_which_cannot_rewrite_the_log(start, roles):
    sup = await start()
    with sup.db._pool.connection() as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "sikka_supervisor"
    await completed_booking(sup)
    program, dashboard = roles["program"], roles["dashboard"]
    assert refused(program, "UPDATE events SET type = 'x'")
    assert refused(program, "DELETE FROM events")
    assert refused(program, "TRUNCATE events")
    assert refused(program, "CREATE TABLE sneaky (x int)")
    with psycopg.connect(dashboard) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM writebacks WHERE state = 'completed'").fetchone()[0] == 1
    assert refused(dashboard, "SELECT * FROM credentials")
    assert refused(dashboard, "INSERT INTO nodes (node_id, expires_at) VALUES ('x', now())")
    assert refused(dashboard, "UPDATE practices SET state = 'paused'")


def replayed_payloads(database_url: str, secrets_key: str) -> list[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "SIKKA_SECRETS_KEY": secrets_key}
    result = subprocess.run([str(BIN / "sikka-supervisor"), "replay", "--with-payloads", "--json"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    import json

    return [
        line["data"]["payload"] for line in map(json.loads, result.stdout.splitlines())
        if line["type"] == "writeback_requested"
    ]


async def test_retention_purges_old_payloads_and_keeps_rows_and_events(start, roles):
    sup = await start(env={"SIKKA_PAYLOAD_RETENTION_DAYS": "30"})
    wb = await completed_booking(sup)
    credentials = sup.deps.credentials
    count_events = "SELECT count(*) FROM events"
    with sup.db._pool.connection() as conn:
        events_before = conn.execute(count_events).fetchone()[0]
        completed_at = conn.execute(
            "SELECT completed_at FROM writebacks WHERE writeback_id = %s", (wb["writeback_id"],)
        ).fetchone()[0]
    secrets_key = sup.settings.secrets_key.reveal()
    shown = await trio.to_thread.run_sync(replayed_payloads, roles["program"], secrets_key)
    assert len(shown) == 1 and shown[0].startswith("{"), shown

    young = completed_at + timedelta(days=29)
    assert await retention.purge_expired(sup.db, credentials, 30, young) == 0
    old = completed_at + timedelta(days=30, seconds=1)
    assert await retention.purge_expired(sup.db, credentials, 30, old) == 1
    assert await retention.purge_expired(sup.db, credentials, 30, old) == 0  # once

    assert await trio.to_thread.run_sync(replayed_payloads, roles["program"], secrets_key) == ["[purged]"]
    with sup.db._pool.connection() as conn:
        assert conn.execute(count_events).fetchone()[0] == events_before
        row = conn.execute("SELECT state FROM writebacks WHERE writeback_id = %s", (wb["writeback_id"],)).fetchone()
    assert row == ("completed",)


def drill(pg_admin_url: str, source_url: str, scratch: str) -> subprocess.CompletedProcess:
    """``deploy/restore-drill.sh`` from ``source_url`` into a fresh database ``scratch``."""
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {scratch}")
        conn.execute(f"CREATE DATABASE {scratch}")
    env = {**os.environ, "PATH": f"{PG_BIN}:{BIN}:{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith(("SIKKA_", "DATABASE_URL"))}
    try:
        return subprocess.run(
            [str(DEPLOY / "restore-drill.sh"), source_url, make_conninfo(pg_admin_url, dbname=scratch)],
            capture_output=True, text=True, env=env, timeout=120,
        )
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")


async def test_restore_drill(start, pg_admin_url, database_url):
    sup = await start()
    await completed_booking(sup)  # the supervisor keeps running: the dump is a consistent snapshot
    result = await trio.to_thread.run_sync(drill, pg_admin_url, database_url, "sikka_restore_drill")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restore drill passed" in result.stdout
    # a projection that no longer follows from the log is caught
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE writebacks SET attempts = attempts + 1")
    result = await trio.to_thread.run_sync(drill, pg_admin_url, database_url, "sikka_restore_drill")
    assert result.returncode == 1 and "projections rebuilt from the restored log differ" in result.stderr, result.stderr


async def test_rotate_keys_re_encrypts_every_credential_under_the_new_key(db, roles, database_url):
    from cryptography.fernet import Fernet

    from actors.core.secret import Secret
    from store.credentials import Credentials, PgCredentialRows, Vault, parse_keys

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    await Credentials(Vault(parse_keys(old)), PgCredentialRows(db)).put_secret("D1", "secret_key", Secret("s3cret"))
    env = {**os.environ, "DATABASE_URL": roles["program"], "SIKKA_SECRETS_KEY": f"{new},{old}"}
    result = await trio.to_thread.run_sync(lambda: subprocess.run(
        [str(BIN / "sikka-supervisor"), "rotate-keys"], capture_output=True, text=True, env=env, timeout=60))
    assert result.returncode == 0 and "re-encrypted 1 credentials" in result.stdout, result.stderr
    shown = await trio.to_thread.run_sync(lambda: subprocess.run(
        [str(BIN / "sikka-supervisor"), "rotate-keys", "--json"], capture_output=True, text=True, env=env, timeout=60))
    assert shown.returncode == 0 and json.loads(shown.stdout) == {"re_encrypted": 1}, shown.stderr
    rotated = Credentials(Vault(parse_keys(new)), PgCredentialRows(db))
    assert await rotated.secret("D1", "secret_key") == Secret("s3cret")
