"""``sikka-supervisor demo`` (interface section 3): the installed command as a subprocess, with
no ``SIKKA_*`` or ``DATABASE_URL`` in its environment.

The default suite runs a five-writeback demo on two practices (about 25 s: writebacks take 2–20 s
at the simulator and one practice's SPU is offline for 15 s) and a few pure checks of the
helpers; the ``slow`` marker holds the full default demo (3 practices, 30 writebacks) for the
``CI=true`` stage, bound to two minutes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from actors.cli import demo, demoprogress

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


def summary_json(stdout: str) -> dict:
    """The same figures from ``demo --json``'s one JSON object."""
    shown = json.loads(stdout)
    return {
        "p50": shown["latency_s"]["p50"], "p95": shown["latency_s"]["p95"],
        "per_writeback": shown["sikka_requests"]["per_writeback"], "429s": shown["status_429"]["total"],
        **shown["final_states"], "not_final": shown["not_final"],
    }


def check_run(proc: subprocess.CompletedProcess, writebacks: int, as_json: bool = False) -> dict:
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-4000:])
    figures = summary_json(proc.stdout) if as_json else summary(proc.stdout)
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
    # the same counts are not printed again and again: while they stand still the demo says why
    timed = [(float(m[1]), m[2]) for m in (re.match(r"\[\s*([\d.]+)s\] (queued .*)", line) for line in progress)]
    for (at, counts), (later, again) in zip(timed, timed[1:]):
        assert counts != again or later - at >= demoprogress.REPEAT_S - 0.5, (at, later, counts)
    assert re.search(r"^\[\s*[\d.]+s\] waiting: D10\d\d", proc.stderr, re.M), proc.stderr
    # the faults were applied, and the temporary data dir is gone after a success
    assert "SPU offline" in proc.stderr and "rate limit lowered" in proc.stderr
    made = re.search(r"^demo: data dir (\S+) \(temporary\)", proc.stderr, re.M)
    assert made and not Path(made[1]).exists(), proc.stderr
    assert "SIKKA_SECRETS_KEY is not set; created the key file" in proc.stderr
    return figures


def test_demo_five_writebacks():
    """With ``--json``: the summary's figures as one JSON object (the slow full demo reads the text)."""
    proc, took = run_demo("--practices", "2", "--writebacks", "5", "--json", timeout=120)
    check_run(proc, 5, as_json=True)
    assert took < 60, took


@pytest.mark.slow
def test_full_default_demo_under_two_minutes():
    proc, took = run_demo(timeout=180)
    figures = check_run(proc, 30)
    assert took < 120, (took, proc.stdout)
    # why it waited: the SPU spell, and the practice held to 20 requests a minute
    assert re.search(r"waiting: D1000's SPU is offline \(the demo's fault, back in \d+ s\)", proc.stderr), proc.stderr
    assert re.search(r"D1002 is held to 20 requests a minute \(\d+ sent in the last 60 s\)", proc.stderr), proc.stderr
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


def practice(office: str, limit: int = 250, used: int = 0, conditions=()) -> dict:
    return {"office_id": office, "rate": {"limit": limit, "used_last_60s": used, "remaining": limit - used},
            "conditions": list(conditions)}


def wb(office: str, state: str) -> dict:
    return {"office_id": office, "state": state}


def test_wait_reasons_name_what_holds_each_practice():
    views = [wb("D1000", "pending"), wb("D1000", "deferred"), wb("D1001", "queued"), wb("D1001", "pending"),
             wb("D1002", "pending"), wb("D1003", "deferred"), wb("D1004", "queued"), wb("D1005", "completed")]
    practices = [practice("D1000"), practice("D1001", limit=20, used=17), practice("D1002"), practice("D1003"),
                 practice("D1004"), practice("D1005")]
    reasons = demoprogress.wait_reasons(views, practices, spu_offline="D1000", spu_back_in_s=8.2,
                                        completes_in=(2.0, 20.0))
    assert [(r.office_id, r.kind) for r in reasons] == [
        ("D1000", "spu_offline"), ("D1001", "rate"), ("D1002", "pending"), ("D1003", "deferred"), ("D1004", "queued")]
    text = {r.office_id: r.text for r in reasons}
    assert text["D1000"] == "D1000's SPU is offline (the demo's fault, back in 9 s): 2 writebacks wait for it"
    assert text["D1001"] == ("D1001 is held to 20 requests a minute (17 sent in the last 60 s): "
                             "2 writebacks wait for its budget")
    assert text["D1002"] == "D1002: 1 writeback accepted by Sikka (it completes each 2–20 s after accepting it)"
    after = demoprogress.wait_reasons(views, practices, spu_offline=None, spu_back_in_s=None, completes_in=(2.0, 20.0))
    assert after[0].kind == "deferred"  # the spell is over: the deferred one waits for its retry
    throttled = [practice("D1001", limit=250, used=3, conditions=["rate_limited"])]
    assert demoprogress.wait_reasons([wb("D1001", "queued")], throttled, spu_offline=None, spu_back_in_s=None,
                                     completes_in=(2.0, 20.0))[0].kind == "rate"


def test_progress_says_why_instead_of_repeating_the_same_line():
    counts = {s: 0 for s in demo.STATES} | {"pending": 4, "completed": 26}
    held = [demoprogress.Reason("D1002", "rate", "D1002 is held to 20 requests a minute")]
    progress = demoprogress.Progress()
    assert progress.lines(40.0, counts, 30, 30, held) == [  # new counts, a new reason: both
        "[  40.0s] queued 0 · pending 4 · completed 26 · failed 0",
        "[  40.0s] waiting: D1002 is held to 20 requests a minute"]
    assert progress.lines(41.0, counts, 30, 30, held) == []  # nothing new: nothing printed
    assert progress.lines(44.9, counts, 30, 30, held) == []
    assert progress.lines(45.0, counts, 30, 30, held) == ["[  45.0s] waiting: D1002 is held to 20 requests a minute"]
    two = held + [demoprogress.Reason("D1000", "pending", "D1000: 1 writeback accepted by Sikka")]
    assert progress.lines(46.0, counts, 30, 30, two) == [  # a new reason at once, one line each
        "[  46.0s] waiting: D1002 is held to 20 requests a minute",
        "                   D1000: 1 writeback accepted by Sikka"]
    fewer = counts | {"pending": 3, "completed": 27}
    assert progress.lines(47.0, fewer, 30, 30, two) == ["[  47.0s] queued 0 · pending 3 · completed 27 · failed 0"]
    done = counts | {"pending": 0, "completed": 30}
    assert progress.lines(48.0, done, 30, 30, []) == ["[  48.0s] queued 0 · pending 0 · completed 30 · failed 0"]
    assert progress.lines(49.0, done, 30, 30, []) == []
    assert progress.lines(53.0, done, 30, 30, []) == ["[  53.0s] queued 0 · pending 0 · completed 30 · failed 0"]


def test_the_summary_lines_say_the_figures():
    stats = {"requests": 40, "app": {"status_429": 1, "requests": 6, "max_in_any_60s": 4},
             "practices": {"D1000": {"status_429": 2, "requests": 20, "max_in_any_60s": 18}}}
    figures = demo.summary(
        practices=1, writebacks={"a": {"state": "completed", "requested_at": "2026-03-10T09:00:00Z",
                                       "completed_at": "2026-03-10T09:00:04.5Z"}, "b": {"state": "queued"}},
        total=2, refused=0, elapsed=30.04, writeback_phase=20.0, stats_before={"requests": 10}, stats_after=stats,
        faults=["D1000: SPU offline 15 s"], limits={"D1000": 20}, default_limit=250, app_limit=100,
    )
    assert figures["final_states"]["completed"] == 1 and figures["not_final"] == 1
    assert figures["latency_s"] == {"p50": 4.5, "p95": 4.5, "max": 4.5} and figures["status_429"]["total"] == 3
    assert json.loads(json.dumps(figures)) == figures
    assert demo.summary_lines(figures) == [
        "demo: 1 practice, 2 booking writebacks; 30.0 s in all, 20.0 s from the first submission until every "
        "writeback was final",
        "final states: completed 1, failed 0, cancelled 0; not final 1",
        "confirmation latency (request → recorded outcome): p50 4.5 s, p95 4.5 s, max 4.5 s",
        "Sikka requests per writeback: 15.00 (30 requests from the first submission on; 40 in all, onboarding "
        "included)",
        "429s: 3 (app level 1; D1000 2)",
        "Sikka requests by caller (most in any 60 s / limit): app 6 (4/100); D1000 20 (18/20)",
        "fault: D1000: SPU offline 15 s",
    ]
