"""``deploy/dashboards.sql``: every named query runs on a real database holding a scenario (two
practices; writebacks completed, failed, pending long and briefly, old failures) and returns the
rows an operator should see."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

SQL = Path(__file__).resolve().parents[2] / "deploy" / "dashboards.sql"


def queries() -> dict[str, str]:
    text = SQL.read_text()
    parts = re.split(r"^-- name: (\w+)\n", text, flags=re.M)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2])}


PRACTICES = [  # office, name, state, key expires in
    ("D1000", "Smile Dental", "active", "1 hour"),
    ("D1001", "Bright Teeth", "active", "20 hours"),
    ("D1002", "Gone Dental", "setup_required", "10 minutes"),
]
WRITEBACKS = [  # id, office, state, requested ago, submitted ago, completed ago, error code
    ("w-ok-1", "D1000", "completed", "50 minutes", "49 minutes", "40 minutes", None),
    ("w-ok-2", "D1000", "completed", "50 minutes", "49 minutes", "30 minutes", None),
    ("w-fail-1", "D1000", "failed", "50 minutes", "49 minutes", "20 minutes", "API1026"),
    ("w-fail-old", "D1001", "failed", "30 hours", "30 hours", "29 hours", "deadline_exceeded"),
    ("w-fail-day", "D1001", "failed", "5 hours", "5 hours", "4 hours", "outcome_unknown"),
    ("w-ok-3", "D1001", "completed", "50 minutes", "49 minutes", "10 minutes", None),
    ("w-stuck", "D1001", "pending", "2 hours", "1 hour", None, None),
    ("w-fresh", "D1001", "pending", "5 minutes", "4 minutes", None, None),
]


@pytest.fixture
def scenario(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        for office, name, state, expires in PRACTICES:
            conn.execute(
                "INSERT INTO practices (office_id, practice_name, state, token_expires_at, updated_at, version, fold)"
                " VALUES (%s, %s, %s, now() + %s::interval, now(), 1, '{}')",
                (office, name, state, expires),
            )
        for wid, office, state, requested, submitted, completed, code in WRITEBACKS:
            conn.execute(
                "INSERT INTO writebacks (writeback_id, office_id, operation, state, error, requested_at,"
                " submitted_at, completed_at, deadline_at, fold) VALUES (%s, %s, 'book_appointment', %s,"
                " %s::jsonb, now() - %s::interval, now() - %s::interval, now() - %s::interval, now() + interval '1 day', '{}')",
                (wid, office, state, None if code is None else f'{{"code": "{code}", "message": "m"}}',
                 requested, submitted, completed),
            )
        for version, (wid, office) in enumerate([("w-ok-1", "D1000"), ("w-ok-2", "D1000"), ("w-fail-1", "D1000")], 1):
            conn.execute(
                "INSERT INTO events (position, stream_id, version, type, data) VALUES (%s, %s, %s, 'submit_attempted', %s)",
                (version, f"practice-{office}", version, f'{{"writeback_id": "{wid}"}}'),
            )
    return database_url


def run(url: str, name: str) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(queries()[name])
        return cur.fetchall()


def test_every_guide_query_is_there():
    assert set(queries()) == {"tokens_expiring", "stuck_writebacks", "failed_writebacks", "failure_rate", "usage"}


def test_tokens_expiring(scenario):
    rows = run(scenario, "tokens_expiring")
    assert [r["office_id"] for r in rows] == ["D1000"]  # active, within 2 h; setup_required is its own alert
    assert 0.9 < rows[0]["hours_until_expiry"] <= 1


def test_stuck_writebacks(scenario):
    rows = run(scenario, "stuck_writebacks")
    assert [r["writeback_id"] for r in rows] == ["w-stuck"]
    assert 59 < rows[0]["minutes_pending"] < 61


def test_failed_writebacks(scenario):
    rows = run(scenario, "failed_writebacks")
    assert [(r["writeback_id"], r["error_code"]) for r in rows] == [("w-fail-1", "API1026"), ("w-fail-day", "outcome_unknown")]


def test_failure_rate(scenario):
    rows = run(scenario, "failure_rate")
    assert [(r["office_id"], r["completed"], r["failed"], float(r["failure_percent"])) for r in rows] == [
        ("D1000", 2, 1, 33.3)
    ]  # D1001's hour holds one completion and no failure


def test_usage(scenario):
    rows = {r["office_id"]: r for r in run(scenario, "usage")}
    assert set(rows) == {"D1000", "D1001", "D1002"}
    assert (rows["D1000"]["requested"], rows["D1000"]["completed"], rows["D1000"]["failed"]) == (3, 2, 1)
    assert rows["D1000"]["submit_attempts"] == 3
    assert (rows["D1001"]["requested"], rows["D1001"]["open"], rows["D1001"]["failed"]) == (4, 2, 1)  # not the 30 h one
    assert rows["D1002"]["requested"] == 0 and rows["D1002"]["practice_name"] == "Gone Dental"
