"""``sikka-supervisor demo`` (interface section 3): the installed command as a subprocess, with
no ``SIKKA_*`` or ``DATABASE_URL`` in its environment.

The default suite runs a five-writeback demo on two practices (about 25 s: writebacks take 2–20 s
at the simulator and one practice's SPU is offline for 15 s) and a few pure checks of the
helpers; the ``slow`` marker holds the full default demo (3 practices, 30 writebacks) for the
``CI=true`` stage, bound to two minutes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from actors.cli import demo

BIN = Path(sys.executable).parent


def clean_env() -> dict[str, str]:
    """The caller's environment without any setting the demo might read: it needs none."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SIKKA_") and k != "DATABASE_URL"}


def run_demo(*args: str, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    began = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "sikka-supervisor"), "demo", *args],
        env=clean_env(), capture_output=True, text=True, timeout=timeout, cwd="/tmp",
    )
    return proc, time.monotonic() - began


def summary(stdout: str) -> dict:
    """The figures of the summary on stdout."""
    m = re.search(r"p50 ([\d.]+) s, p95 ([\d.]+) s", stdout)
    assert m, stdout
    per = re.search(r"^Sikka requests per writeback: ([\d.]+) \(", stdout, re.M)
    assert per, stdout
    n429 = re.search(r"^429s: (\d+) ", stdout, re.M)
    assert n429, stdout
    states = re.search(r"^final states: completed (\d+), failed (\d+), cancelled (\d+); not final (\d+)", stdout, re.M)
    assert states, stdout
    return {
        "p50": float(m[1]), "p95": float(m[2]), "per_writeback": float(per[1]), "429s": int(n429[1]),
        "completed": int(states[1]), "failed": int(states[2]), "cancelled": int(states[3]), "not_final": int(states[4]),
    }


def check_run(proc: subprocess.CompletedProcess, writebacks: int) -> dict:
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-4000:])
    figures = summary(proc.stdout)
    assert figures["completed"] == writebacks and figures["not_final"] == 0, proc.stdout
    assert figures["failed"] == 0 and figures["cancelled"] == 0, proc.stdout
    assert figures["429s"] == 0, proc.stdout
    # request → recorded outcome: at least the simulator's 2 s, and p50 ≤ p95
    assert 2.0 <= figures["p50"] <= figures["p95"], proc.stdout
    assert figures["per_writeback"] >= 1.0, proc.stdout  # at least the submission itself
    # live progress on stderr, a line every second or so, the last one with everything completed
    progress = [line for line in proc.stderr.splitlines() if re.match(r"\[\s*[\d.]+s\] queued \d+ · pending", line)]
    assert len(progress) >= 3, proc.stderr
    assert re.search(rf"pending 0 · completed {writebacks} · failed 0$", progress[-1]), progress[-1]
    # the faults were applied, and the temporary data dir is gone after a success
    assert "SPU offline" in proc.stderr and "rate limit lowered" in proc.stderr
    made = re.search(r"^demo: data dir (\S+) \(temporary\)", proc.stderr, re.M)
    assert made and not Path(made[1]).exists(), proc.stderr
    assert "SIKKA_SECRETS_KEY is not set; created the key file" in proc.stderr
    return figures


def test_demo_five_writebacks():
    proc, took = run_demo("--practices", "2", "--writebacks", "5", timeout=120)
    check_run(proc, 5)
    assert took < 60, took


@pytest.mark.slow
def test_full_default_demo_under_two_minutes():
    proc, took = run_demo(timeout=180)
    figures = check_run(proc, 30)
    assert took < 120, (took, proc.stdout)
    assert figures["429s"] == 0


def test_bad_arguments_exit_2():
    for args in (["--writebacks", "0"], ["--practices", "x"], ["--timeout", "-1"]):
        proc = subprocess.run([str(BIN / "sikka-supervisor"), "demo", *args], env=clean_env(),
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == ""


# --- helpers ---------------------------------------------------------------------------------


def test_percentile_nearest_rank():
    from actors.core.figures import percentile

    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    values = [float(i) for i in range(1, 21)]  # 1 … 20
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile(list(reversed(values)), 100) == 20.0


def test_latency_is_request_to_recorded_outcome():
    wb = {"state": "completed", "requested_at": "2026-01-01T10:00:00.000Z", "completed_at": "2026-01-01T10:00:12.500Z"}
    assert demo.latency_s(wb) == 12.5
    assert demo.latency_s({**wb, "state": "pending"}) is None


def test_bookings_are_valid_and_take_distinct_slots():
    truth = {
        office: {
            "patients": [{"patient_id": str(10000 + i), "status": "Active"} for i in range(5)],
            "appointments": [{"provider_id": "DOC1", "operatory": "OP1", "date": "2020-01-01", "time": "09:00"},
                             {"provider_id": "DOC2", "operatory": "OP2", "date": "2020-01-02", "time": "10:00"}],
        }
        for office in ("D1000", "D1001")
    }
    plans = demo.plan_bookings(["D1000", "D1001"], 41, truth, date(2030, 5, 1), "run1")
    assert len(plans) == 41
    assert [o for o, _ in plans[:4]] == ["D1000", "D1001", "D1000", "D1001"]  # round-robin
    keys = [body["idempotency_key"] for _, body in plans]
    assert len(set(keys)) == len(keys)
    for office in ("D1000", "D1001"):
        mine = [body["payload"] for o, body in plans if o == office]
        assert len({(p["date"], p["time"]) for p in mine}) == len(mine)  # distinct slots
        assert {p["date"] for p in mine} == {"2030-05-01", "2030-05-02"}  # 18 slots a day
    for _, body in plans:
        p = body["payload"]
        assert body["operation"] == "book_appointment"
        assert set(p) >= {"patient_id", "date", "time", "length", "provider_id", "operatory", "practice_id"}
        assert p["provider_id"] in ("DOC1", "DOC2") and p["operatory"] in ("OP1", "OP2")
        assert re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", p["time"]) and p["length"] == "30"
