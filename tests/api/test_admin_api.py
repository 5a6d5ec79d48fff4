"""The admin API (interface section 4) through a real Unix socket.

A whole supervisor (``supervisor.serve``) runs in-process on the real clock against real
PostgreSQL (the ``db`` fixture), talking over real HTTP to the simulator served on a local TCP
port; the tests talk to the admin socket with httpx. Each test gets a fresh database, a fresh
socket directory and a fresh simulator; the supervisor is stopped through ``serve``'s ``stop``
event (the same shutdown path as SIGTERM), which also removes the socket file.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st

from actors.process.config import ConfigError
from sim import Simulator
from supervisor import serve
from tests.support.supervisor import (
    COUNT_KEYS,
    FINAL,
    OFFICES,
    check_error,
    check_practice,
    check_writeback,
    submission,
    utc,
)

async def test_health(sup):
    r = await sup.client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"status", "practices", "version", "node"}
    assert body["status"] == "ok" and body["practices"] == 2 and body["node"] == "test-node"
    assert isinstance(body["version"], str) and body["version"]
    assert r.headers["content-type"] == "application/json"


async def test_practices_shapes(sup):
    r = await sup.client.get("/practices")
    assert r.status_code == 200 and set(r.json()) == {"practices"}
    listed = r.json()["practices"]
    assert sorted(p["office_id"] for p in listed) == list(OFFICES)
    for p in listed:
        check_practice(p)
        assert p["state"] == "active" and p["token_expires_at"] is not None
        assert p["practice_name"] == sup.sim.practice(p["office_id"]).info.name
        assert p["writebacks"] == dict.fromkeys(COUNT_KEYS, 0)
        assert p["last_error"] is None and p["conditions"] == []
        assert utc(p["token_expires_at"]) > datetime.now(UTC)
    for p in listed:
        r = await sup.client.get(f"/practices/{p['office_id']}")
        assert r.status_code == 200
        check_practice(r.json())
        one, other = dict(r.json()), dict(p)
        one.pop("rate"), other.pop("rate")  # the budget moves with background calls
        assert one == other


async def test_unknown_practice_and_endpoint(sup):
    for office_id in ("D9999", "d1000", "D1000%2F..", "x" * 100, "D1000;DROP"):
        check_error(await sup.client.get(f"/practices/{office_id}"), 404, "unknown_practice", what=office_id)
    r = await sup.client.get("/no/such/endpoint")
    assert r.status_code == 404 and r.json()["field"] is None
    r = await sup.client.delete("/health")
    assert r.status_code == 405 and set(r.json()) == {"error", "detail", "field"}


# --- writeback submission and waiting ---------------------------------------------------------


async def test_submit_then_wait_until_completed(sup):
    before = datetime.now(UTC)
    r = await sup.submit("D1000", submission(sup.sim, deadline_s=900))
    assert r.status_code == 202, r.text
    wb = r.json()
    check_writeback(wb)
    # committed before the answer; the actor may already have sent it (Sikka acknowledges at once)
    assert wb["state"] in ("queued", "submitting", "pending"), wb
    assert wb["office_id"] == "D1000" and wb["operation"] == "book_appointment"
    assert wb["idempotency_key"] is None and wb["retry_of"] is None and wb["error"] is None
    assert wb["completed_at"] is None and wb["created_id"] is None
    requested = utc(wb["requested_at"])
    assert before.timestamp() - 1 <= requested.timestamp() <= time.time() + 1
    assert (utc(wb["deadline_at"]) - requested).total_seconds() == pytest.approx(900)

    t0 = time.monotonic()
    r = await sup.writeback(wb["writeback_id"], 0)  # wait=0: the current state at once
    assert r.status_code == 200 and time.monotonic() - t0 < 1.0
    check_writeback(r.json())
    assert r.json()["writeback_id"] == wb["writeback_id"]

    t0 = time.monotonic()
    r = await sup.writeback(wb["writeback_id"], 30)  # the simulator completes it 1-2 s after acceptance
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    done = r.json()
    check_writeback(done)
    assert done["state"] == "completed" and elapsed < 15, (done, elapsed)
    assert done["created_id"] and done["sikka_writeback_id"] and done["sikka_completed_time"]
    assert done["error"] is None and done["attempts"] == 1 and done["checks"] >= 1
    assert done["next_check_at"] is None
    assert requested <= utc(done["submitted_at"]) <= utc(done["completed_at"])
    assert sup.sim.writebacks[int(done["sikka_writeback_id"])] is not None

    t0 = time.monotonic()
    r = await sup.writeback(wb["writeback_id"], 60)  # final: wait=60 answers at once
    assert r.status_code == 200 and r.json() == done and time.monotonic() - t0 < 1.0

    # the practice's counts come from its actor, which folds the outcome a moment after the
    # commit that the writeback read above already sees
    with trio.fail_after(5):
        while (practice := (await sup.client.get("/practices/D1000")).json())["writebacks"]["completed"] != 1:
            await trio.sleep(0.05)
    assert sum(practice["writebacks"].values()) == 1


async def test_operations_with_a_path_id_are_sent_as_submitted(sup):
    """Regression (found by the fault suite): the admin API stored the Sikka body (the path id
    moved into the path, ``op``/``path`` added), so reschedules, status updates and patient
    updates always failed when sent (``missing_field``/``unknown_field``)."""
    data = sup.sim.data(sup.sim.practice("D1000"))
    appointment = sorted(data.appointments)[0]
    patient = sorted(data.patients)[0]
    bodies = [
        {"operation": "reschedule_appointment",
         "payload": {"appointment_sr_no": appointment, "practice_id": "1", "time": "15:10"}},
        {"operation": "update_appointment_status",
         "payload": {"appointment_sr_no": appointment, "practice_id": "1", "value": "Confirmed"}},
        {"operation": "update_patient", "payload": {"patient_id": patient, "practice_id": 1, "email": "a@b.example"}},
    ]
    for body in bodies:
        r = await sup.submit("D1000", body)
        assert r.status_code == 202, r.text
        done = (await sup.writeback(r.json()["writeback_id"], 30)).json()
        assert done["state"] == "completed", (body["operation"], done)
    assert data.appointments[appointment].time == "15:10"
    assert data.appointments[appointment].status == "Confirmed"
    assert data.patients[patient].email == "a@b.example"


async def test_wait_is_bounded_for_a_writeback_that_does_not_finish(sup):
    await sup.faults({"spu_offline": ["D1001"]})  # Sikka answers 412: deferred, 15 s backoff
    r = await sup.submit("D1001", submission(sup.sim, "D1001"))
    assert r.status_code == 202, r.text
    writeback_id = r.json()["writeback_id"]

    t0 = time.monotonic()
    r = await sup.writeback(writeback_id, 0)
    assert r.status_code == 200 and time.monotonic() - t0 < 0.5
    assert r.json()["state"] not in FINAL

    t0 = time.monotonic()
    r = await sup.writeback(writeback_id, 2)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200 and r.json()["state"] not in FINAL, r.json()
    assert 1.9 <= elapsed <= 2.5, elapsed

    t0 = time.monotonic()
    r = await sup.writeback(writeback_id, "0.5")
    assert r.status_code == 200 and 0.45 <= time.monotonic() - t0 <= 1.0


async def test_wait_parameter_out_of_range_is_400(sup):
    r = await sup.submit("D1000", submission(sup.sim))
    writeback_id = r.json()["writeback_id"]
    for wait in ("61", "60.01", "-1", "abc", "", "nan", "inf", "-inf", "1e3"):
        r = await sup.writeback(writeback_id, wait)
        check_error(r, 400, "bad_parameter", "wait", what=f"wait={wait!r}")
    r = await sup.client.get(f"/writebacks/{writeback_id}?wait=abc&wait=1")  # the last value counts
    assert r.status_code == 200


async def test_unknown_writeback_is_404(sup):
    ids = [str(uuid.uuid4()), "abc", "1", "'%3B%20DROP%20TABLE%20events%3B--", "x" * 300, "%00", "%2e%2e"]
    for writeback_id in ids:
        t0 = time.monotonic()
        r = await sup.writeback(writeback_id, 5)  # never waits for an id that is not ours
        check_error(r, 404, "unknown_writeback", what=writeback_id)
        assert time.monotonic() - t0 < 1.0
        check_error(await sup.writeback(writeback_id), 404, "unknown_writeback", what=writeback_id)


# --- idempotency ------------------------------------------------------------------------------


async def test_idempotency_key(sup):
    first = submission(sup.sim, idempotency_key="visit-42")
    r = await sup.submit("D1000", first)
    assert r.status_code == 202, r.text
    original = r.json()
    assert original["idempotency_key"] == "visit-42"
    r = await sup.writeback(original["writeback_id"], 30)  # let it finish: nothing moves in the background
    assert r.json()["state"] == "completed"

    counts = sup.counts()
    # the same request with numbers as strings (what they convert to), keys in another order
    payload = {k: str(v) for k, v in reversed(first["payload"].items())}
    r = await sup.submit("D1000", {"idempotency_key": "visit-42", "payload": payload, "operation": "book_appointment"})
    assert r.status_code == 200, r.text
    check_writeback(r.json())
    assert r.json()["writeback_id"] == original["writeback_id"] and r.json()["state"] == "completed"
    # 30.0 is the number 30 too
    r = await sup.submit("D1000", {**first, "payload": {**first["payload"], "length": 30.0}})
    assert r.status_code == 200 and r.json()["writeback_id"] == original["writeback_id"]

    other_time = {**first, "payload": {**first["payload"], "time": "16:45"}}
    check_error(await sup.submit("D1000", other_time), 409, "idempotency_conflict", "idempotency_key")
    other_op = {
        "operation": "update_appointment_status",
        "payload": {"appointment_sr_no": "123", "practice_id": "1", "value": "Confirmed"},
        "idempotency_key": "visit-42",
    }
    check_error(await sup.submit("D1000", other_op), 409, "idempotency_conflict", "idempotency_key")
    assert sup.counts() == counts  # neither the replays nor the conflicts stored anything

    # the same key in another practice is a different request
    r = await sup.submit("D1001", submission(sup.sim, "D1001", idempotency_key="visit-42"))
    assert r.status_code == 202, r.text
    assert r.json()["writeback_id"] != original["writeback_id"] and r.json()["office_id"] == "D1001"

    # without a key, the same payload is a new writeback every time
    a = await sup.submit("D1000", submission(sup.sim, n=3))
    b = await sup.submit("D1000", submission(sup.sim, n=3))
    assert a.status_code == b.status_code == 202 and a.json()["writeback_id"] != b.json()["writeback_id"]


async def test_concurrent_submissions_with_one_key_make_one_writeback(sup):
    """Regression: the payload digest key was created lazily by the first submissions, each of
    the concurrent ones its own, so their digests differed and all but one got 409."""
    body = submission(sup.sim, idempotency_key="race")
    results: list[httpx.Response] = []

    async def post():
        results.append(await sup.submit("D1000", body))

    async with trio.open_nursery() as n:
        for _ in range(6):
            n.start_soon(post)
    assert sorted(r.status_code for r in results) == [200] * 5 + [202], [r.text for r in results]
    assert len({r.json()["writeback_id"] for r in results}) == 1
    with sup.db._pool.connection() as conn:
        (writebacks,) = conn.execute("SELECT count(*) FROM writebacks").fetchone()
        (payload_keys,) = conn.execute("SELECT count(*) FROM credentials WHERE kind = 'payload_key'").fetchone()
    assert writebacks == 1 and payload_keys == 1  # the losers' sealed payloads were destroyed
    r = await sup.submit("D1000", body)  # and a later replay still matches
    assert r.status_code == 200 and r.json()["writeback_id"] == results[0].json()["writeback_id"]


# --- bad input --------------------------------------------------------------------------------


def bad_submissions(sim: Simulator) -> list[tuple[str, str, object, int, str, str | None]]:
    """(what, office_id, body, status, error, field): each must be refused and store nothing."""
    ok = submission(sim)
    pay = ok["payload"]

    def with_payload(**fields):
        return {**ok, "payload": {k: v for k, v in {**pay, **fields}.items() if v is not ...}}

    def status_change(sr_no):
        return {"operation": "update_appointment_status",
                "payload": {"appointment_sr_no": sr_no, "practice_id": "1", "value": "Confirmed"}}

    cases = [
        ("malformed JSON", "D1000", b'{"operation": "book_appointment", ', 400, "bad_json", None),
        ("empty body", "D1000", b"", 400, "bad_json", None),
        ("not UTF-8", "D1000", b'\xff\xfe{"operation": 1}', 400, "bad_json", None),
        ("lone surrogate", "D1000", rb'{"operation": "\ud800", "payload": {}}', 400, "bad_json", None),
        ("trailing garbage", "D1000", json.dumps(ok).encode() + b" x", 400, "bad_json", None),
        ("body is an array", "D1000", b"[]", 400, "invalid_field", None),
        ("body is a string", "D1000", b'"book_appointment"', 400, "invalid_field", None),
        ("body is null", "D1000", b"null", 400, "invalid_field", None),
        ("operation a number", "D1000", {**ok, "operation": 5}, 400, "invalid_field", "operation"),
        ("payload a list", "D1000", {**ok, "payload": ["a"]}, 400, "invalid_field", "payload"),
        ("payload null", "D1000", {**ok, "payload": None}, 400, "invalid_field", "payload"),
        ("idempotency_key a number", "D1000", {**ok, "idempotency_key": 5}, 400, "invalid_field", "idempotency_key"),
        ("idempotency_key empty", "D1000", {**ok, "idempotency_key": ""}, 400, "invalid_field", "idempotency_key"),
        ("idempotency_key too long", "D1000", {**ok, "idempotency_key": "k" * 201}, 400, "invalid_field",
         "idempotency_key"),
        ("deadline_s a string", "D1000", {**ok, "deadline_s": "soon"}, 400, "invalid_field", "deadline_s"),
        ("deadline_s zero", "D1000", {**ok, "deadline_s": 0}, 400, "invalid_field", "deadline_s"),
        ("deadline_s negative", "D1000", {**ok, "deadline_s": -60}, 400, "invalid_field", "deadline_s"),
        # regression: this overflowed the deadline arithmetic inside the actor, which crashed and
        # restarted while the request hung for ever
        ("deadline_s huge", "D1000", {**ok, "deadline_s": 1e300}, 400, "invalid_field", "deadline_s"),
        ("deadline_s past the datetime range", "D1000", {**ok, "deadline_s": 3e11}, 400, "invalid_field",
         "deadline_s"),
        ("unknown top-level field", "D1000", {**ok, "priority": "high"}, 400, "unknown_field", "priority"),
        ("missing operation", "D1000", {"payload": pay}, 400, "missing_field", "operation"),
        ("missing payload", "D1000", {"operation": "book_appointment"}, 400, "missing_field", "payload"),
        ("unknown operation", "D1000", {**ok, "operation": "book_dinner"}, 400, "unknown_operation", "operation"),
        ("payments are out of scope", "D1000", {**ok, "operation": "create_transaction"}, 400, "unknown_operation",
         "operation"),
        ("missing payload field", "D1000", with_payload(patient_id=...), 400, "missing_field", "patient_id"),
        ("blank payload field", "D1000", with_payload(provider_id="  "), 400, "missing_field", "provider_id"),
        ("unknown payload field", "D1000", with_payload(colour="blue"), 400, "unknown_field", "colour"),
        ("payload value a bool", "D1000", with_payload(patient_id=True), 400, "invalid_field", "patient_id"),
        ("payload value null", "D1000", with_payload(operatory=None), 400, "invalid_field", "operatory"),
        ("payload value a list", "D1000", with_payload(note=["a"]), 400, "invalid_field", "note"),
        ("payload value an object", "D1000", with_payload(note={"a": 1}), 400, "invalid_field", "note"),
        ("date d/m/y", "D1000", with_payload(date="10/03/2026"), 400, "invalid_field", "date"),
        ("date unpadded", "D1000", with_payload(date="2026-3-10"), 400, "invalid_field", "date"),
        ("date not real", "D1000", with_payload(date="2026-02-30"), 400, "invalid_field", "date"),
        ("date with a time", "D1000", with_payload(date="2026-03-10T09:00"), 400, "invalid_field", "date"),
        ("date a number", "D1000", with_payload(date=20260310), 400, "invalid_field", "date"),
        ("time unpadded", "D1000", with_payload(time="9:00"), 400, "invalid_field", "time"),
        ("time 24:00", "D1000", with_payload(time="24:00"), 400, "invalid_field", "time"),
        ("time 12:60", "D1000", with_payload(time="12:60"), 400, "invalid_field", "time"),
        ("time with seconds", "D1000", with_payload(time="09:00:00"), 400, "invalid_field", "time"),
        ("length zero", "D1000", with_payload(length=0), 400, "invalid_field", "length"),
        ("length negative", "D1000", with_payload(length="-30"), 400, "invalid_field", "length"),
        ("length fractional", "D1000", with_payload(length=30.5), 400, "invalid_field", "length"),
        ("length words", "D1000", with_payload(length="thirty"), 400, "invalid_field", "length"),
        *[(f"appointment_sr_no with {c!r}", "D1000", status_change(f"12{c}34"), 400, "invalid_field",
           "appointment_sr_no") for c in ":#?/\\%+="],
        ("appointment_sr_no '..'", "D1000", status_change(".."), 400, "invalid_field", "appointment_sr_no"),
        ("appointment_sr_no with a space", "D1000", status_change("12 34"), 400, "invalid_field",
         "appointment_sr_no"),
        ("patient_id path with '/'", "D1000",
         {"operation": "update_patient", "payload": {"patient_id": "1/../2", "practice_id": "1", "city": "X"}},
         400, "invalid_field", "patient_id"),
        ("reschedule without a change", "D1000",
         {"operation": "reschedule_appointment", "payload": {"appointment_sr_no": "1", "practice_id": "1"}},
         400, "missing_field", None),
        ("unknown practice", "D9999", ok, 404, "unknown_practice", None),
        ("malformed practice id", "D1000%3A1", ok, 404, "unknown_practice", None),
    ]
    return cases


async def test_bad_submissions_are_refused_and_store_nothing(sup):
    before = sup.counts()
    for what, office_id, body, status, code, field in bad_submissions(sup.sim):
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        with trio.move_on_after(5) as waited:
            r = await sup.submit(office_id, content, headers={"Content-Type": "application/json"})
        assert not waited.cancelled_caught, f"{what}: no answer within 5 s"
        check_error(r, status, code, field, what=what)
    assert sup.counts() == before
    practices = (await sup.client.get("/practices")).json()["practices"]
    assert all(sum(p["writebacks"].values()) == 0 and p["restarts"] == 0 for p in practices)
    assert (await sup.client.get("/health")).status_code == 200


async def test_nul_in_idempotency_key_is_refused(sup):
    """Regression: PostgreSQL text cannot hold NUL; such a key was a 500 from the database."""
    before = sup.counts()
    for key in ("a\x00b", "\x00"):
        r = await sup.submit("D1000", submission(sup.sim, idempotency_key=key))
        check_error(r, 400, "invalid_field", "idempotency_key", what=repr(key))
    assert sup.counts() == before


async def test_body_size_limit(sup):
    before = sup.counts()
    big = json.dumps({**submission(sup.sim), "padding": "x" * (1024 * 1024)}).encode()
    check_error(await sup.submit("D1000", big), 413, "too_large")

    async def chunks():  # no Content-Length: the limit holds on the bytes received
        for _ in range(40):
            yield b" " * 65536

    check_error(await sup.submit("D1000", chunks()), 413, "too_large")
    assert sup.counts() == before
    assert (await sup.client.get("/health")).status_code == 200

    # exactly 1 MiB is not over the limit
    body = json.dumps(submission(sup.sim)).encode()
    exact = body + b" " * (1024 * 1024 - len(body))
    r = await sup.submit("D1000", exact)
    assert len(exact) == 1024 * 1024 and r.status_code == 202, r.text


# --- onboarding -------------------------------------------------------------------------------


async def test_onboard(start):
    # every Sikka call fails at first, so the start-up onboarding registers nothing
    sup = await start(sim_faults={"error_rate": 1.0}, wait_active=False)
    check_error(await sup.client.post("/onboard"), 502, "upstream_error")
    assert (await sup.client.get("/practices")).json() == {"practices": []}
    assert (await sup.client.get("/health")).json()["practices"] == 0

    await sup.faults({})
    names = {o: sup.sim.practice(o).info.name for o in OFFICES}
    r = await sup.client.post("/onboard")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "practices": [{"office_id": o, "practice_name": names[o], "action": "registered"} for o in OFFICES]
    }
    await sup.until_active()

    r = await sup.client.post("/onboard")
    assert r.json() == {
        "practices": [{"office_id": o, "practice_name": names[o], "action": "unchanged"} for o in OFFICES]
    }

    await sup.faults({"revoke": ["D1001"]})
    r = await sup.client.post("/onboard")
    assert r.status_code == 200
    assert r.json() == {
        "practices": [
            {"office_id": "D1000", "practice_name": names["D1000"], "action": "unchanged"},
            {"office_id": "D1001", "practice_name": names["D1001"], "action": "deauthorized"},
        ]
    }
    r = await sup.client.get("/practices/D1001")
    assert r.status_code == 200 and r.json()["state"] == "setup_required", r.text


# --- the socket -------------------------------------------------------------------------------


async def test_socket_mode_stale_file_and_removal(start, socket_dir, db):
    path = socket_dir / "admin.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a killed run leaves the file behind with nobody listening
    assert stat.S_ISSOCK(path.stat().st_mode)

    sup = await start()
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert path.stat().st_uid == os.getuid()
    assert (await sup.client.get("/health")).status_code == 200

    # a live socket is not taken over by a second supervisor
    with pytest.raises(ConfigError, match="another process is serving"):
        with trio.fail_after(10):
            await serve(sup.settings, db)
    assert (await sup.client.get("/health")).status_code == 200

    sup.stop.set()  # the SIGTERM path
    with trio.fail_after(30):
        await sup.done.wait()
    assert not path.exists()


async def test_socket_group_mode(start, socket_dir):
    import grp

    group = grp.getgrgid(os.getgid()).gr_name
    sup = await start(env={"SIKKA_ADMIN_GROUP": group})
    st_ = sup.socket.stat()
    assert stat.S_IMODE(st_.st_mode) == 0o660 and st_.st_gid == os.getgid()
    assert (await sup.client.get("/health")).status_code == 200


async def raw_exchange(path: Path, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection to the socket; everything received until it closes."""
    stream = await trio.open_unix_socket(str(path))
    received = b""
    async with stream:
        await stream.send_all(data)
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


async def test_raw_http_on_the_socket(sup):
    # curl-style: keep-alive, two pipelined requests, then Connection: close
    got = await raw_exchange(
        sup.socket,
        b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
        b"GET /practices/D1000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    assert got.count(b"HTTP/1.1 200 ") == 2, got
    # malformed HTTP gets a 400 with the error shape, never a 500, and the server carries on
    for junk in (b"NOT HTTP AT ALL\r\n\r\n", b"POST /onboard HTTP/1.1\r\nContent-Length: abc\r\n\r\n"):
        got = await raw_exchange(sup.socket, junk)
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), got
        assert set(json.loads(body)) == {"error", "detail", "field"}
    # a declared length over 1 MiB is refused before the body is read
    got = await raw_exchange(
        sup.socket, b"POST /practices/D1000/writebacks HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"
    )
    assert got.startswith(b"HTTP/1.1 413 ") and b'"too_large"' in got, got
    assert (await sup.client.get("/health")).status_code == 200


# --- arbitrary bodies -------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    ["patient_id", "date", "time", "length", "provider_id", "operatory", "practice_id", "appointment_sr_no",
     "value", "firstname", "lastname", "text", "type"]
)
OPERATION_NAMES = st.sampled_from(
    ["book_appointment", "reschedule_appointment", "update_appointment_status", "create_patient",
     "update_patient", "add_medical_note"]
)
BODIES = JSON | st.fixed_dictionaries(
    {"operation": OPERATION_NAMES | JSON, "payload": st.dictionaries(FIELD_NAMES | st.text(max_size=8), JSON)},
    optional={"idempotency_key": st.text(max_size=6) | JSON, "deadline_s": JSON, "extra": JSON},
)


async def test_arbitrary_json_bodies_never_get_a_500(sup):
    seen: list[int] = []

    async def post(body) -> None:
        r = await sup.submit("D1000", json.dumps(body).encode())
        assert r.status_code in (200, 202, 400, 404, 409), (body, r.status_code, r.text)
        if r.status_code >= 400:
            assert set(r.json()) == {"error", "detail", "field"}, r.text
        seen.append(r.status_code)

    @hsettings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(BODIES)
    def examples(body):
        trio.from_thread.run(post, body)

    with trio.fail_after(40):
        await trio.to_thread.run_sync(examples)
    assert seen and 400 in seen
