"""Properties of the writeback state machine, driven through the core against a fake Sikka.

A random mix of commands, elapsed time, Sikka answers (acks, 4xx, 429, 412, quota, connect
failures, 5xx before processing, connections cut after Sikka accepted, crashes before and after
sending), completions at Sikka, app-level list rounds and status reads. Then:

- terminal states are absorbing (no event changes a final writeback, in the actor's fold or in
  the projection's per-row fold);
- at most one send per writeback unless its absence was proven (a second ``SubmitAttempted``
  only after ``ProvenAbsent`` or an answer that Sikka accepted nothing), and Sikka never holds
  two writes for one of our writebacks;
- folding all events at once equals the state built step by step; replaying only the recorded
  events (what the log keeps: noted checks are transient) gives the same practice up to the
  open writebacks' schedule (``checks``, ``next_check_at``, a planned status read) and the same
  final writebacks, ``checks`` included, and survives a JSON round trip.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from actors.core.decide import decide, recover
from actors.core import messages, listplan
from actors.core.schedule import list_targets, bodies_needed, next_step
from actors.core import events as ev
from actors.core import outcomes as oc
from actors.core.state import FINAL_STATES, evolve_writeback, fold
from actors.core.state import step as fold_step
from store.eventlog import RecordedEvent
from store.projections import fold_log

from tests.support.core import OFFICE, PAYLOADS, at, base, list_item, without_schedule

OPS = ["book_appointment", "update_appointment_status", "create_patient", "update_patient"]
VARIANT_FIELD = {
    "book_appointment": ("time", ["09:30", "10:00", "10:30"]),
    "update_appointment_status": ("value", ["Confirmed", "Cancelled", "Arrived"]),
    "create_patient": ("lastname", ["Lee", "Kim", "Ray"]),
    "update_patient": ("cell", ["5551", "5552", "5553"]),
}
SUBMIT_ANSWERS = [
    "ack",
    "ack",
    "ack",
    "rejected",
    "rate_limited",
    "spu_offline",
    "daily_quota",
    "connect",
    "server_error_before",
    "cut_after_accept",
    "expired_key",
    "crash_after_send",
    "crash_before_send",
]
ACTIONS = ["request"] * 4 + ["step"] * 8 + ["advance"] * 3 + [
    "sikka", "list", "list", "status", "cancel", "pause", "resume", "retry"
]


class FakeSikka:
    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.next_id = 1000
        self.writes_for: dict[str, int] = defaultdict(int)

    def create(self, wid: str, op: str, payload: dict, now: float, lag: float = 0.0) -> str:
        """``lag``: seconds before the write shows in GET /writebacks and writeback_status (less
        than SIKKA_HTTP_TIMEOUT + SIKKA_LEASE_TTL + 30 s, the assumption the proof rests on)."""
        sid = str(self.next_id)
        self.next_id += 1
        self.items[sid] = {"wid": wid, "op": op, "payload": payload, "result": "pending", "at": now, "visible": now + lag}
        self.writes_for[wid] += 1
        return sid

    def list_items(self, now: float):
        return [
            list_item(sid, it["op"], result=it["result"], body=it["payload"], when=at(it["at"]))
            for sid, it in self.items.items()
            if it["visible"] <= now
        ]

    def status(self, sid: str, now: float) -> oc.Result:
        it = self.items.get(sid)
        if it is None or it["visible"] > now:
            return oc.Result(oc.Rejected(status=404, code="API1005"))
        r = it["result"]
        return oc.Result(
            oc.Ok(
                oc.WritebackStatus(
                    id=sid,
                    is_completed=r in ("completed", "failed"),
                    has_error=r == "failed",
                    result="Deleted" if r == "deleted" else ("Bad provider" if r == "failed" else "ok"),
                    status="Deleted" if r == "deleted" else "",
                    created_id="C" + sid if r == "completed" else "",
                )
            )
        )


class Driver:
    def __init__(self, data) -> None:
        self.data = data
        self.p0 = base()
        self.p = self.p0
        self.log: list[ev.Event] = []
        self.now = 0.0
        self.sikka = FakeSikka()
        self.plain: dict[str, dict] = {}
        self.n = 0

    def draw(self, strategy):
        return self.data.draw(strategy)

    def apply(self, decision) -> None:
        if not isinstance(decision, list):
            return
        self.log.extend(decision)
        self.p = fold(self.p, decision)
        for e in decision:  # a retry carries its original's plaintext payload
            if isinstance(e, ev.WritebackRequested) and e.retry_of is not None:
                self.plain[e.writeback_id] = self.plain[e.retry_of]

    def decide(self, msg) -> None:
        self.apply(decide(self.p, msg, at(self.now)))

    # --- actions ---

    def request(self) -> None:
        op = self.draw(st.sampled_from(OPS))
        field, values = VARIANT_FIELD[op]
        payload = {**PAYLOADS[op], field: self.draw(st.sampled_from(values))}
        self.n += 1
        wid = f"w{self.n}"
        self.plain[wid] = payload
        deadline = self.draw(st.sampled_from([None, 120.0, 900.0, 3600.0]))
        self.decide(messages.RequestWriteback(writeback_id=wid, operation=op, deadline_s=deadline))

    def cancel(self) -> None:
        if self.p.writebacks:
            wid = self.draw(st.sampled_from(sorted(self.p.writebacks)))
            self.decide(messages.CancelWriteback(writeback_id=wid))

    def sikka_progress(self) -> None:
        pending = sorted(sid for sid, it in self.sikka.items.items() if it["result"] == "pending")
        if pending:
            sid = self.draw(st.sampled_from(pending))
            self.sikka.items[sid]["result"] = self.draw(st.sampled_from(["completed", "completed", "failed"]))

    def list_round(self) -> None:
        """What the planner chose: a list round (Sikka's whole list, as the reader sees it when
        it must read every page) or status reads."""
        targets = list_targets(self.p)
        plan = listplan.plan_round(targets, at(self.now))
        if plan is None:
            return
        if plan.method == "status":
            self.decide(messages.CheckByStatus(writeback_ids=tuple(t.writeback_id for t in plan.status)))
        else:
            self.deliver_list(plan.ranges, targets)

    def status_round(self) -> None:
        """The planner chose status reads for the pending writebacks due (``CheckByStatus``)."""
        due = [t.writeback_id for t in list_targets(self.p) if t.kind == "pending" and t.next_check_at <= at(self.now)]
        if due:
            self.decide(messages.CheckByStatus(writeback_ids=tuple(due)))

    def deliver_list(self, ranges, targets=None) -> None:
        targets = list_targets(self.p) if targets is None else targets
        out = listplan.fan_out(targets, self.sikka.list_items(self.now), ranges, at(self.now))
        outcome = out.get(OFFICE)
        if outcome is None:
            return
        bodies = {w: self.plain[w] for w in bodies_needed(self.p)}
        self.decide(replace(outcome, bodies=bodies))

    def run_step(self) -> None:
        s = next_step(self.p, at(self.now))
        match s:
            case messages.Record(events=events):
                self.apply(list(events))
            case messages.Refresh(grant=grant):
                g = oc.TokenGrant(request_key="k", refresh_key="r", expires_at=at(self.now + 86400))
                self.decide(messages.RefreshOutcome(result=oc.Result(oc.Ok(g)), grant=grant))
            case messages.Submit():
                self.submit(s)
            case messages.Poll(writeback_id=wid, sikka_writeback_id=sid):
                self.decide(messages.StatusOutcome(writeback_id=wid, result=self.sikka.status(sid, self.now)))
            case messages.Cancel(writeback_id=wid, sikka_writeback_id=sid):
                it = self.sikka.items.get(sid)
                if self.draw(st.booleans()):
                    res = oc.Result(oc.ServerError(status=503))
                elif it is not None and it["result"] == "pending":
                    it["result"] = "deleted"
                    res = oc.Result(oc.Ok({"error_code": "API4006"}))
                else:
                    res = oc.Result(oc.Rejected(status=400, code="API4007"))
                self.decide(messages.DeleteOutcome(writeback_id=wid, result=res))
            case messages.Reconcile(ranges=ranges):
                self.deliver_list(ranges)
            case messages.Offboard():
                self.decide(messages.OffboardOutcome())
            case messages.Sleep(until=until):
                if until is not None:
                    self.now = max(self.now, min((until - at(0)).total_seconds(), self.now + 3600))

    def submit(self, s: messages.Submit) -> None:
        self.apply([s.attempted])
        wid = s.writeback_id
        wb = self.p.writebacks[wid]
        answer = self.draw(st.sampled_from(SUBMIT_ANSWERS))
        self.now += self.draw(st.sampled_from([0.1, 1.0, 30.0]))

        # at most 30 s (answer latency) + 55 s: visible before attempt + 30 + 30 + 30 s
        lag = self.draw(st.sampled_from([0.0, 0.0, 5.0, 30.0, 55.0]))

        def create() -> str:
            return self.sikka.create(wid, wb.operation, self.plain[wid], self.now, lag)

        outcome = {
            "rejected": oc.Rejected(status=400, code="API1026"),
            "rate_limited": oc.RateLimited(reset_s=20),
            "spu_offline": oc.SpuOffline(),
            "daily_quota": oc.DailyQuota(),
            "connect": oc.TransportFailure(kind="connect"),
            "server_error_before": oc.ServerError(status=503, code="API2002"),
            "expired_key": oc.ExpiredKey(),
        }.get(answer)
        if answer == "ack":
            outcome = oc.Ok(oc.WritebackAck(sikka_writeback_id=create()))
        elif answer == "cut_after_accept":
            create()
            outcome = oc.Unknown(reason="connection cut")
        elif answer in ("crash_after_send", "crash_before_send"):
            if answer == "crash_after_send":
                create()
            self.now += 5
            self.apply(recover(self.p, at(self.now)))
            return
        self.decide(messages.SubmitOutcome(writeback_id=wid, result=oc.Result(outcome)))

    def act(self, action: str) -> None:
        match action:
            case "request":
                self.request()
            case "step":
                self.run_step()
            case "advance":
                self.now += self.draw(st.sampled_from([0.5, 2.0, 10.0, 60.0, 300.0, 3600.0]))
            case "sikka":
                self.sikka_progress()
            case "list":
                self.list_round()
            case "status":
                self.status_round()
            case "cancel":
                self.cancel()
            case "pause":
                self.decide(messages.Pause())
            case "resume":
                self.decide(messages.Resume())
            case "retry":
                self.decide(messages.RetryFailed())


def dump(d: Driver) -> str:
    lines = []
    for e in d.log:
        t = (e.at - at(0)).total_seconds()
        fields = {k: getattr(e, k) for k in e.__struct_fields__ if k not in ("at", "payload")}
        lines.append(f"{t:9.1f} {type(e).__name__} {fields}")
    lines.append(repr({k: (v["wid"], v["result"], v["at"], v["visible"]) for k, v in d.sikka.items.items()}))
    return "\n".join(lines)


def check_invariants(d: Driver) -> None:
    try:
        _check_invariants(d)
    except AssertionError:
        import os
        if os.environ.get("CORE_DUMP"):
            print(dump(d))
        raise


def _check_invariants(d: Driver) -> None:
    # folding all events at once equals the state built step by step; the recorded log replays
    # to it up to the open writebacks' schedule, also after a JSON trip
    assert fold(d.p0, d.log) == d.p
    recorded = [e for e in d.log if ev.recorded(e)]
    replayed = fold(d.p0, [ev.decode(ev.encode(e)) for e in recorded])
    assert without_schedule(replayed) == without_schedule(d.p)
    assert all(wb.state not in FINAL_STATES for wb in d.p.writebacks.values())

    # terminal states are absorbing: per-writeback fold and the projection's row fold
    rows: dict[str, object] = {}
    summary = d.p0
    for e in d.log:
        wid = getattr(e, "writeback_id", None)
        if wid is None:
            summary, _ = fold_step(summary, e, None)
            continue
        row = rows.get(wid)
        if row is not None and row.state in FINAL_STATES:
            assert evolve_writeback(row, e, OFFICE) is row
        summary, new_row = fold_step(summary, e, row)
        if row is not None and row.state in FINAL_STATES:
            assert new_row is row
        if new_row is not None:
            rows[wid] = new_row
    for wid, wb in d.p.writebacks.items():
        assert rows[wid] == wb
    # the projection's rows from the recorded log: final ones exactly as the actor had them
    recorded_rows = fold_log(RecordedEvent(n, ev.stream_id(OFFICE), n, e, at(0)) for n, e in enumerate(recorded, 1))[1]
    for wid, row in rows.items():
        if row.state in FINAL_STATES:
            assert recorded_rows[wid] == row, wid

    # at most one send per writeback unless its absence was proven
    may_send: dict[str, bool] = {}
    for e in d.log:
        match e:
            case ev.WritebackRequested():
                may_send[e.writeback_id] = True
            case ev.SubmitAttempted():
                assert may_send[e.writeback_id], f"second send of {e.writeback_id} without proof"
                may_send[e.writeback_id] = False
            case ev.ProvenAbsent() | ev.WritebackDeferred() | ev.SubmitRefused():
                may_send[e.writeback_id] = True
    assert all(n <= 1 for n in d.sikka.writes_for.values()), dict(d.sikka.writes_for)

    # every Sikka write that one of our writebacks ended up owning is the right one
    owned = {wb.sikka_writeback_id: wid for wid, wb in rows.items() if wb.sikka_writeback_id}
    for sid, wid in owned.items():
        assert d.sikka.items[sid]["wid"] == wid


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_state_machine_properties(data):
    d = Driver(data)
    for action in data.draw(st.lists(st.sampled_from(ACTIONS), min_size=30, max_size=120)):
        d.act(action)
    # let it run to quiescence: Sikka finishes everything, time passes, lists keep coming
    d.decide(messages.Resume())
    for _ in range(60):
        d.sikka_progress()
        d.run_step()
        d.list_round()
        d.now += 120
    check_invariants(d)


def test_terminal_states_absorb_every_event_type():
    """Every event variant applied to every final state leaves it unchanged."""
    from tests.support.core import pending

    p = fold(base(), pending())
    wb = p.writebacks["wb1"]
    finals = [
        evolve_writeback(wb, ev.WritebackCompleted(at=at(9), writeback_id="wb1", created_id="1"), OFFICE),
        evolve_writeback(wb, ev.WritebackFailed(at=at(9), writeback_id="wb1", code="x", retryable=True), OFFICE),
        evolve_writeback(wb, ev.WritebackCancelled(at=at(9), writeback_id="wb1"), OFFICE),
    ]
    samples = [
        ev.SubmitAttempted(at=at(10), writeback_id="wb1", attempt=2),
        ev.WritebackSubmitted(at=at(10), writeback_id="wb1", sikka_writeback_id="2"),
        ev.SubmitRefused(at=at(10), writeback_id="wb1", code="API1025"),
        ev.WritebackRejected(at=at(10), writeback_id="wb1", code="x"),
        ev.WritebackDeferred(at=at(10), writeback_id="wb1", reason="r", retry_at=at(20)),
        ev.OutcomeUnknown(at=at(10), writeback_id="wb1", reason="r"),
        ev.WritebackReconciled(at=at(10), writeback_id="wb1", sikka_writeback_id="3"),
        ev.ProvenAbsent(at=at(10), writeback_id="wb1"),
        ev.RetryScheduled(at=at(10), writeback_id="wb1"),
        ev.StatusChecked(at=at(10), writeback_id="wb1", result="pending"),
        ev.CancelRequested(at=at(10), writeback_id="wb1"),
        ev.DeleteAnswered(at=at(10), writeback_id="wb1"),
        ev.DeleteFailed(at=at(10), writeback_id="wb1", code="x", attempt=1, retry_at=at(20)),
        ev.WritebackCompleted(at=at(10), writeback_id="wb1"),
        ev.WritebackFailed(at=at(10), writeback_id="wb1", code="y"),
        ev.WritebackCancelled(at=at(10), writeback_id="wb1"),
        ev.WritebackRequested(at=at(10), writeback_id="wb1", operation="x", payload="", deadline_at=at(99)),
        ev.DuplicateFound(at=at(10), writeback_id="wb1", attempt=1, sikka_writeback_id="4", result="pending"),
        ev.DuplicateDeleteTried(at=at(10), writeback_id="wb1", attempt=1, code="ok", tries=1),
        ev.DuplicateSettled(at=at(10), writeback_id="wb1", attempt=1, outcome="written", sikka_writeback_id="4"),
    ]
    covered = {type(e) for e in samples}
    writeback_events = {t for t in ev.EVENT_TYPES if "writeback_id" in t.__struct_fields__}
    assert writeback_events - covered <= {ev.LateOutcomeFound, ev.LateWatchEnded, ev.PayloadPurged}
    for final in finals:
        for e in samples:
            assert evolve_writeback(final, e, OFFICE) is final
