"""Alerts (interface section 4): which conditions hold, folded into the table of alerts that hold.

Pure: no clock is read, no I/O. The shell (``actors.monitoring.monitor``) gathers a ``Snapshot`` every few
seconds from the actors' statistics, the supervision records and the projections, and calls::

    conditions = raised(snapshot)                       # what is true at snapshot.now
    table, transitions = fold(table, conditions, now)   # onsets and clearings

An alert is keyed by ``(kind, office_id)`` (``office_id`` is ``None`` for global kinds), so a
practice with three unknown writebacks has one ``writeback_unknown`` alert naming the count.
An alert starts the first time its condition is raised (``onset``); it clears once its condition
has been false for ``CLEAR_AFTER`` (2 minutes, ``clear``): a flapping condition neither clears
nor re-raises. Each transition goes to Slack once.

Kinds and what raises them::

    token_expiring, token_refresh_failed, setup_required, spu_offline, quota_exhausted,
    writeback_unknown, writeback_stuck,
    writeback_duplicate                    practice_alerts(practice, now)
    parked                                 the supervisor parked the actor (too many crashes)
    restarting                             the actor crashed within the restart period
    rate_warning / _critical / _exhausted  ≥ 80 / 93 / 100 % of the limit used in the window
                                           while reads or submissions waited for budget in
                                           the last window (demand outran the budget)
    rate_limited_429                       Sikka answered 429: the budget is snoozed
    writeback_failed                       failures recorded in the last 24 h
    failure_rate                           over 5 % of the outcomes of the last hour failed
                                           (at least FAILURE_RATE_MIN_OUTCOMES outcomes)
    database_unreachable                   the store did not answer the monitor's read
    webhook_silent                         the webhook is configured and nothing came for 2 h
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from actors.core import policy
from actors.core.ratelimit import Lane
from actors.core.schedule import EPOCH, conditions, ordered, planned_refresh_at, refresh_due_at
from actors.core.state import Practice

CLEAR_AFTER = timedelta(minutes=2)
TOKEN_OVERDUE = timedelta(minutes=5)
WEBHOOK_SILENT_AFTER = timedelta(hours=2)
DUPLICATE_ALERT_FOR = timedelta(hours=24)  # a late duplicate found alerts this long (a person removes one)
FAILURE_RATE = 0.05
FAILURE_RATE_MIN_OUTCOMES = 5  # a single failure out of two is not a "rate"
RATE_THRESHOLDS = (("rate_exhausted", "critical", 1.0), ("rate_critical", "critical", 0.93), ("rate_warning", "warning", 0.80))
INTERACTIVE = (Lane.READ, Lane.SUBMIT)

SEVERITY = {
    "token_expiring": "warning",
    "token_refresh_failed": "critical",
    "setup_required": "critical",
    "parked": "critical",
    "restarting": "warning",
    "rate_warning": "warning",
    "rate_critical": "critical",
    "rate_exhausted": "critical",
    "rate_limited_429": "critical",
    "writeback_stuck": "warning",
    "writeback_unknown": "critical",
    "writeback_duplicate": "critical",
    "writeback_failed": "warning",
    "failure_rate": "critical",
    "spu_offline": "warning",
    "quota_exhausted": "critical",
    "database_unreachable": "critical",
    "webhook_silent": "warning",
}
KINDS = tuple(SEVERITY)


class PracticeAlert(msgspec.Struct, frozen=True, kw_only=True):
    """One practice-level alert (several of a kind are grouped into one ``Condition``)."""

    kind: str
    severity: str
    message: str
    since: datetime | None = None
    writeback_id: str | None = None


def token_expiring(p: Practice, now: datetime, jitter: float | None = None) -> tuple[str, datetime | None] | None:
    """(message, since) when the practice's request key counts as expiring at ``now``, else None.

    Only when something is wrong with the key's renewal, whatever the key's lifetime (a 60 s key
    refreshed on time never alerts): the refresh planned for this key (TTL × 23/24) is more than
    ``TOKEN_OVERDUE`` late (the key is still the current one), or the next refresh the actor will
    try (its plan, or the retry after a failed grant) comes only after the key has expired. Never
    for a practice in ``setup_required`` or ``offboarded`` (or leaving): no refresh is planned
    there, and ``setup_required`` is the alert that says so."""
    if p.token_expires_at is None or p.offboarding or p.state in ("setup_required", "offboarded"):
        return None
    next_try = refresh_due_at(p, jitter)
    if next_try is None:
        return None
    planned = planned_refresh_at(p, jitter)
    if now - planned > TOKEN_OVERDUE:
        minutes = int((now - planned).total_seconds() // 60)
        return f"the request key's refresh is {minutes} min overdue", planned + TOKEN_OVERDUE
    if next_try != EPOCH and next_try >= p.token_expires_at:
        return "the request key expires before its next refresh can run", None
    return None


def practice_alerts(p: Practice, now: datetime, *, jitter: float | None = None) -> list[PracticeAlert]:
    """The writeback and token alerts that hold for this practice at ``now`` (interface §4)."""
    out: list[PracticeAlert] = []
    if p.state == "setup_required":
        out.append(PracticeAlert(kind="setup_required", severity="critical", message=p.last_error or "setup required"))
    expiring = token_expiring(p, now, jitter)
    if expiring is not None:
        message, since = expiring
        out.append(PracticeAlert(kind="token_expiring", severity="warning", message=message, since=since))
    if p.refresh_failures:
        out.append(
            PracticeAlert(kind="token_refresh_failed", severity="critical", message=p.last_error or "token refresh failed")
        )
    for c, kind, severity in (("spu_offline", "spu_offline", "warning"), ("quota_exhausted", "quota_exhausted", "critical")):
        if c in conditions(p, now):
            out.append(PracticeAlert(kind=kind, severity=severity, message=c.replace("_", " ")))
    for wb in ordered(p):
        if wb.state == "unknown" and (
            wb.ambiguous or (wb.unknown_since is not None and now - wb.unknown_since > timedelta(minutes=10))
        ):
            out.append(
                PracticeAlert(
                    kind="writeback_unknown",
                    severity="critical",
                    message="ambiguous match at Sikka" if wb.ambiguous else "outcome unknown for over 10 minutes",
                    since=wb.unknown_since,
                    writeback_id=wb.writeback_id,
                )
            )
        if wb.state == "pending" and wb.submitted_at is not None and now - wb.submitted_at > timedelta(minutes=30):
            out.append(
                PracticeAlert(
                    kind="writeback_stuck",
                    severity="warning",
                    message="pending at Sikka for over 30 minutes",
                    since=wb.submitted_at,
                    writeback_id=wb.writeback_id,
                )
            )
        if wb.delete_attempts >= policy.DELETE_ALERT_AFTER:
            out.append(
                PracticeAlert(
                    kind="writeback_stuck",
                    severity="warning",
                    message=f"DELETE at Sikka failed {wb.delete_attempts} times",
                    writeback_id=wb.writeback_id,
                )
            )
    for d in p.duplicates:
        if now - d.found_at < DUPLICATE_ALERT_FOR:
            out.append(
                PracticeAlert(
                    kind="writeback_duplicate",
                    severity="critical",
                    message=(
                        f"written twice at Sikka (a request proven absent landed late): Sikka ids "
                        f"{d.kept_sikka_writeback_id or '(none kept)'} and {d.late_sikka_writeback_id}; remove one"
                    ),
                    since=d.found_at,
                    writeback_id=d.writeback_id,
                )
            )
    return out



class Condition(msgspec.Struct, frozen=True, kw_only=True):
    """A condition that holds now."""

    kind: str
    office_id: str | None
    message: str
    practice_name: str = ""
    since: datetime | None = None  # when it began, if known earlier than its first sighting

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.kind, self.office_id)

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """An alert that holds (``GET /alerts``); ``false_since`` is set while its condition is
    false but the clearing period has not passed."""

    kind: str
    severity: str
    office_id: str | None
    message: str
    since: datetime
    practice_name: str = ""
    false_since: datetime | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.kind, self.office_id)

    def view(self) -> dict:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "office_id": self.office_id,
            "message": self.message,
            "since": self.since,
        }


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    phase: str  # "onset" | "clear"
    alert: Alert
    at: datetime


Table = dict[tuple[str, str | None], Alert]


class Outcomes(msgspec.Struct, frozen=True, kw_only=True):
    """A practice's recorded outcomes (from the ``writebacks`` projection)."""

    failed_24h: int = 0
    failed_1h: int = 0
    completed_1h: int = 0


class PracticeView(msgspec.Struct, frozen=True, kw_only=True):
    """What the monitor knows of one supervised practice at ``now``."""

    office_id: str
    practice_name: str = ""
    practice: Practice | None = None  # the running actor's state (None: not running now)
    budget: object | None = None  # ratelimit.BudgetStats of the running actor
    crashes_in_period: int = 0
    parked: bool = False
    last_error: str | None = None


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    now: datetime
    practices: tuple[PracticeView, ...] = ()
    outcomes: dict[str, Outcomes] = {}
    database_ok: bool = True
    database_error: str = ""
    webhook_configured: bool = False
    webhook_last_at: datetime | None = None  # last accepted webhook call, or None
    started_at: datetime | None = None  # the silence of a webhook that never called counts from here


# --- what holds -----------------------------------------------------------------------------------


def rate_condition(budget, now: float) -> tuple[str, str] | None:
    """(kind, message) of the rate alert that holds for ``budget`` (``BudgetStats`` at ``now``):
    only while interactive work waited for budget within the last window."""
    waited = any(budget.waiting[lane] for lane in INTERACTIVE) or any(
        at is not None and now - at <= 60.0 for at in (budget.last_waited_at[lane] for lane in INTERACTIVE)
    )
    if not waited or budget.limit <= 0:
        return None
    used = budget.used_last_60s
    if budget.server_remaining is not None:
        used = max(used, budget.limit - budget.server_remaining)
    fraction = 1.0 if budget.block_reason == "rate_limited" else used / budget.limit
    for kind, _, threshold in RATE_THRESHOLDS:
        if fraction >= threshold:
            return kind, f"{used} of {budget.limit} requests used in the window while work waited for budget"
    return None


def practice_conditions(view: PracticeView, now: datetime, outcomes: Outcomes) -> list[Condition]:
    name = view.practice_name
    out: list[Condition] = []

    def add(kind: str, message: str, since: datetime | None = None) -> None:
        out.append(Condition(kind=kind, office_id=view.office_id, message=message, practice_name=name, since=since))

    if view.parked:
        add("parked", f"stopped after repeated crashes: {view.last_error or 'unknown error'}")
    elif view.crashes_in_period:
        add("restarting", f"{view.crashes_in_period} crash(es) recently: {view.last_error or 'unknown error'}")
    if view.practice is not None:
        grouped: dict[str, list[PracticeAlert]] = {}
        for alert in practice_alerts(view.practice, now):
            grouped.setdefault(alert.kind, []).append(alert)
        for kind, alerts in grouped.items():
            since = min((a.since for a in alerts if a.since is not None), default=None)
            message = alerts[0].message if len(alerts) == 1 else f"{len(alerts)} writebacks: {alerts[0].message}"
            add(kind, message, since)
    if view.budget is not None:
        rate = rate_condition(view.budget, now.timestamp())
        if rate is not None:
            add(*rate)
        if view.budget.block_reason == "rate_limited":
            add("rate_limited_429", "Sikka answered 429 Too Many Requests; sending waits for its reset")
    if outcomes.failed_24h:
        add("writeback_failed", f"{outcomes.failed_24h} writeback(s) failed in the last 24 h")
    decided = outcomes.failed_1h + outcomes.completed_1h
    if decided >= FAILURE_RATE_MIN_OUTCOMES and outcomes.failed_1h / decided > FAILURE_RATE:
        add("failure_rate", f"{outcomes.failed_1h} of {decided} writebacks failed in the last hour")
    return out


def raised(snapshot: Snapshot) -> list[Condition]:
    """Every condition that holds at ``snapshot.now``."""
    now = snapshot.now
    out: list[Condition] = []
    seen = set()
    for view in snapshot.practices:
        seen.add(view.office_id)
        out.extend(practice_conditions(view, now, snapshot.outcomes.get(view.office_id, Outcomes())))
    for office_id, outcomes in snapshot.outcomes.items():  # practices without a supervised actor here
        if office_id not in seen:
            out.extend(practice_conditions(PracticeView(office_id=office_id), now, outcomes))
    if not snapshot.database_ok:
        out.append(
            Condition(kind="database_unreachable", office_id=None, message=snapshot.database_error or "no answer")
        )
    if snapshot.webhook_configured:
        quiet_since = snapshot.webhook_last_at or snapshot.started_at
        if quiet_since is not None and now - quiet_since >= WEBHOOK_SILENT_AFTER:
            out.append(
                Condition(
                    kind="webhook_silent",
                    office_id=None,
                    message="no webhook call from Sikka for over 2 hours",
                    since=quiet_since + WEBHOOK_SILENT_AFTER,
                )
            )
    return out


# --- the table ------------------------------------------------------------------------------------


def fold(table: Table, conditions: list[Condition], now: datetime) -> tuple[Table, list[Transition]]:
    """The alert table at ``now`` and the onsets and clearings on the way there."""
    holding = {c.key: c for c in conditions}
    out: Table = {}
    transitions: list[Transition] = []
    for key, c in holding.items():
        previous = table.get(key)
        if previous is None:
            alert = Alert(
                kind=c.kind,
                severity=c.severity,
                office_id=c.office_id,
                message=c.message,
                since=min(c.since, now) if c.since is not None else now,
                practice_name=c.practice_name,
            )
            transitions.append(Transition(phase="onset", alert=alert, at=now))
        else:
            alert = msgspec.structs.replace(
                previous, message=c.message, practice_name=c.practice_name or previous.practice_name, false_since=None
            )
        out[key] = alert
    for key, alert in table.items():
        if key in holding:
            continue
        false_since = alert.false_since or now
        if now - false_since >= CLEAR_AFTER:
            transitions.append(Transition(phase="clear", alert=alert, at=now))
        else:
            out[key] = msgspec.structs.replace(alert, false_since=false_since)
    return out, transitions


def listing(table: Table) -> list[dict]:
    """``GET /alerts``: critical first, then by kind and practice."""
    rank = {"critical": 0, "warning": 1}
    ordered = sorted(table.values(), key=lambda a: (rank.get(a.severity, 2), a.kind, a.office_id or ""))
    return [a.view() for a in ordered]


def counts(table: Table) -> dict[tuple[str, str], int]:
    """Alerts holding per (kind, severity): the ``sikka_alerts`` gauge."""
    out: dict[tuple[str, str], int] = {}
    for a in table.values():
        out[(a.kind, a.severity)] = out.get((a.kind, a.severity), 0) + 1
    return out
