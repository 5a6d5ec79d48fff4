"""The pure alert evaluator: conditions from a snapshot, and the fold with the 2-minute clearing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actors.core import alerting
from actors.core.alerting import Condition, Outcomes, PracticeView, Snapshot
from actors.core.ratelimit import Budget, Lane
from actors.core.state import Practice

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def cond(kind: str, office: str | None = "D1000", message: str = "m") -> Condition:
    return Condition(kind=kind, office_id=office, message=message)


def test_onset_once_then_holds_silently():
    table, transitions = alerting.fold({}, [cond("spu_offline")], T0)
    assert [(t.phase, t.alert.kind, t.alert.office_id) for t in transitions] == [("onset", "spu_offline", "D1000")]
    assert table[("spu_offline", "D1000")].since == T0
    for s in range(5, 300, 5):
        table, transitions = alerting.fold(table, [cond("spu_offline", message=f"m{s}")], T0 + timedelta(seconds=s))
        assert transitions == []
    assert table[("spu_offline", "D1000")].message == "m295"  # the message follows the condition
    assert table[("spu_offline", "D1000")].since == T0


def test_clears_only_after_two_minutes_false():
    table, _ = alerting.fold({}, [cond("spu_offline")], T0)
    table, transitions = alerting.fold(table, [], T0 + timedelta(seconds=10))
    assert transitions == [] and ("spu_offline", "D1000") in table  # still listed while it may come back
    table, transitions = alerting.fold(table, [], T0 + timedelta(seconds=129))
    assert transitions == []
    table, transitions = alerting.fold(table, [], T0 + timedelta(seconds=130))
    assert [(t.phase, t.alert.kind) for t in transitions] == [("clear", "spu_offline")]
    assert table == {}


def test_a_flapping_condition_neither_clears_nor_raises_again():
    table, _ = alerting.fold({}, [cond("rate_limited_429")], T0)
    events = []
    for s in range(5, 600, 5):
        holding = [cond("rate_limited_429")] if (s // 60) % 2 == 0 else []  # a minute on, a minute off
        table, transitions = alerting.fold(table, holding, T0 + timedelta(seconds=s))
        events.extend(transitions)
    assert events == []


def test_keyed_by_kind_and_office():
    conditions = [cond("writeback_failed", "D1000"), cond("writeback_failed", "D1001"), cond("database_unreachable", None)]
    table, transitions = alerting.fold({}, conditions, T0)
    assert len(transitions) == 3 and len(table) == 3
    listing = alerting.listing(table)
    assert listing[0]["kind"] == "database_unreachable" and listing[0]["office_id"] is None  # critical first
    assert set(listing[0]) == {"kind", "severity", "office_id", "message", "since"}
    assert alerting.counts(table) == {("writeback_failed", "warning"): 2, ("database_unreachable", "critical"): 1}


def test_every_kind_has_the_interface_severity():
    assert alerting.SEVERITY == {
        "token_expiring": "warning", "token_refresh_failed": "critical", "setup_required": "critical",
        "parked": "critical", "restarting": "warning", "rate_warning": "warning", "rate_critical": "critical",
        "rate_exhausted": "critical", "rate_limited_429": "critical", "writeback_stuck": "warning",
        "writeback_unknown": "critical", "writeback_duplicate": "critical", "writeback_failed": "warning",
        "failure_rate": "critical",
        "spu_offline": "warning", "quota_exhausted": "critical", "database_unreachable": "critical",
        "webhook_silent": "warning",
    }


def busy_budget(limit: int, sends: int, *, wait_lane: Lane | None) -> Budget:
    b = Budget(limit)
    now = T0.timestamp()
    for i in range(sends):
        b.take(Lane.STATUS, now + i * 0.01)
    if wait_lane is not None:
        at = now + 1
        assert b.allowed_at(wait_lane, at) > at  # the lane has to wait …
        b.take(wait_lane, at + 61)  # … and goes once the window moved on
    return b


def kinds(snapshot: Snapshot) -> set[str]:
    return {c.kind for c in alerting.raised(snapshot)}


def view(**kw) -> PracticeView:
    return PracticeView(office_id="D1000", **kw)


def test_rate_alerts_only_when_interactive_work_waited():
    # the background lanes filled the window, nobody interactive waited: the limiter doing its job
    b = busy_budget(100, 97, wait_lane=Lane.BACKGROUND)
    stats = b.statistics(T0.timestamp() + 2)
    assert kinds(Snapshot(now=T0 + timedelta(seconds=2), practices=(view(budget=stats),))) == set()
    # a submission waited at 98 % (its cap): critical
    b = busy_budget(100, 98, wait_lane=None)
    assert b.allowed_at(Lane.SUBMIT, T0.timestamp() + 1) > T0.timestamp() + 1  # waiting now
    stats = b.statistics(T0.timestamp() + 1)
    assert kinds(Snapshot(now=T0 + timedelta(seconds=1), practices=(view(budget=stats),))) == {"rate_critical"}


def test_rate_thresholds():
    def rate_kind(used: int, blocked: bool = False) -> str | None:
        b = Budget(100)
        now = T0.timestamp()
        for i in range(used):
            b.take(Lane.STATUS, now + i * 0.01)
        if blocked:
            b.snooze(30, now + 1)
        b.allowed_at(Lane.READ, now + 1)
        b._waiting_since[Lane.READ] = now + 1  # the read lane is waiting (whatever the reason)
        found = alerting.rate_condition(b.statistics(now + 1), now + 1)
        return found and found[0]

    assert rate_kind(79) is None
    assert rate_kind(80) == "rate_warning"
    assert rate_kind(93) == "rate_critical"
    assert rate_kind(100) == "rate_exhausted"
    assert rate_kind(10, blocked=True) == "rate_exhausted"  # a 429 snooze: nothing may be sent


def test_failure_figures():
    def raised(o: Outcomes) -> set[str]:
        return kinds(Snapshot(now=T0, outcomes={"D1000": o}))

    assert raised(Outcomes()) == set()
    assert raised(Outcomes(failed_24h=1)) == {"writeback_failed"}
    assert raised(Outcomes(failed_24h=1, failed_1h=1, completed_1h=19)) == {"writeback_failed"}  # exactly 5 %
    assert raised(Outcomes(failed_24h=2, failed_1h=2, completed_1h=19)) == {"writeback_failed", "failure_rate"}
    assert raised(Outcomes(failed_24h=1, failed_1h=1, completed_1h=1)) == {"writeback_failed"}  # too few outcomes


def test_supervision_kinds():
    assert kinds(Snapshot(now=T0, practices=(view(crashes_in_period=2, last_error="RuntimeError: x"),))) == {"restarting"}
    assert kinds(Snapshot(now=T0, practices=(view(parked=True, crashes_in_period=6),))) == {"parked"}


def test_practice_kinds_are_grouped_per_office():
    p = Practice(office_id="D1000", registered=True, setup_required=True, last_error="revoked")
    conditions = alerting.raised(Snapshot(now=T0, practices=(view(practice=p, practice_name="Smile"),)))
    assert [(c.kind, c.office_id, c.practice_name, c.message) for c in conditions] == [
        ("setup_required", "D1000", "Smile", "revoked")
    ]


def test_database_and_webhook():
    assert kinds(Snapshot(now=T0, database_ok=False, database_error="down")) == {"database_unreachable"}
    configured = dict(webhook_configured=True, started_at=T0)
    assert kinds(Snapshot(now=T0 + timedelta(minutes=119), **configured)) == set()
    assert kinds(Snapshot(now=T0 + timedelta(hours=2), **configured)) == {"webhook_silent"}
    heard = T0 + timedelta(hours=1)
    assert kinds(Snapshot(now=T0 + timedelta(hours=2, minutes=30), webhook_last_at=heard, **configured)) == set()
    assert kinds(Snapshot(now=T0 + timedelta(hours=5), webhook_configured=False, started_at=T0)) == set()


# --- token_expiring: only when the key's renewal is in trouble ---------------------------------------


def keyed(ttl_s: float, **kw) -> Practice:
    """An active practice holding a key issued at T0 that lives ``ttl_s`` seconds."""
    return Practice(office_id="D1000", registered=True, token_issued_at=T0,
                    token_expires_at=T0 + timedelta(seconds=ttl_s), **kw)


def expiring(p: Practice, at: datetime) -> list[alerting.PracticeAlert]:
    return [a for a in alerting.practice_alerts(p, at, jitter=0.0) if a.kind == "token_expiring"]


def test_a_short_lived_key_refreshed_on_time_never_counts_as_expiring():
    """``sikka-sim --token-ttl 60``: the key always expires within 30 minutes, and that alone is no
    alert (it was: token_expiring held on every practice for good)."""
    p = keyed(60)
    for s in range(0, 58):  # up to its refresh time (57.5 s), the refresh planned before expiry
        assert expiring(p, T0 + timedelta(seconds=s)) == [], s


def test_token_expiring_when_the_planned_refresh_is_over_5_minutes_late():
    p = keyed(86400)
    planned = T0 + timedelta(hours=23)  # TTL × 23/24, no jitter
    assert expiring(p, planned + timedelta(minutes=5)) == []
    [alert] = expiring(p, planned + timedelta(minutes=7))
    assert alert.severity == "warning" and "7 min overdue" in alert.message
    assert alert.since == planned + timedelta(minutes=5)  # when it became true, not when first seen
    # a failed grant's retry does not hide the overdue plan
    retrying = keyed(86400, refresh_failures=2, refresh_retry_at=planned + timedelta(minutes=8))
    assert len(expiring(retrying, planned + timedelta(minutes=7))) == 1


def test_token_expiring_when_the_key_expires_before_the_next_refresh_can_run():
    short = keyed(600, refresh_failures=3, refresh_retry_at=T0 + timedelta(seconds=590))
    assert expiring(short, T0 + timedelta(seconds=100)) == []  # the retry comes before the expiry
    late = keyed(600, refresh_failures=4, refresh_retry_at=T0 + timedelta(seconds=600))
    [alert] = expiring(late, T0 + timedelta(seconds=100))
    assert "expires before its next refresh" in alert.message


def test_no_token_expiring_for_a_practice_in_setup_required_or_offboarded():
    planned_late = T0 + timedelta(hours=23, minutes=30)
    assert len(expiring(keyed(86400), planned_late)) == 1  # the same key on an active practice
    for p in (
        keyed(86400, setup_required=True, last_error="API2007"),
        keyed(86400, authorized=False),  # left authorized_practices: setup_required too
        keyed(86400, offboarding=True),
        keyed(86400, offboarded=True),
    ):
        assert expiring(p, planned_late) == [], p
    revoked = keyed(86400, setup_required=True, last_error="API2007")
    assert [a.kind for a in alerting.practice_alerts(revoked, planned_late)] == ["setup_required"]
