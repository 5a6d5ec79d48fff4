"""When things happen: the one step a practice's actor takes next, and the timers behind it.

``next_step(practice, now, budget)`` picks, in order:

1. ``Record``: timer events due (``due_events``: deadlines, deferrals ending, late watches ending);
2. ``Offboard`` when an offboarding has nothing left at Sikka;
3. ``Refresh`` (TOKEN lane) when the key's refresh is due (``refresh_due_at``);
4. ``Cancel``: an app-level ``DELETE /writebacks?id=`` (not on the practice budget);
5. ``Poll`` (STATUS lane): ``writeback_status`` only for ``created_id``, error detail or after a
   DELETE;
6. ``Reconcile``: an app-level list the app-level task should have fetched is overdue by
   ``list_fallback_grace_s`` (``list_targets`` say what it serves): fetch it yourself;
7. ``KeyCheck`` (BACKGROUND lane) after ``key_check_interval`` without a keyed call;
8. ``Submit`` (SUBMIT lane): the queued writeback first requested, one at a time;
9. else ``Sleep(until)`` the earliest timer (``None``: until a message arrives).

Confirmation checks of pending writebacks and reconciliation of unknown ones are driven by the
app-level list task (``list_targets`` + ``actors.core.listplan``), which delivers ``ListOutcome``
messages; their ``next_check_at`` is the schedule it reads.

Pure: ``now`` is passed in; the budget answers ``allowed_at(lane, t)`` in POSIX seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from actors.core import duplicates
from actors.core import events as ev
from actors.core import policy
from actors.core.checks import record_checks
from actors.core.listplan import ListTarget, date_ranges, target_dates
from actors.core.messages import (
    AnyStep,
    Cancel,
    KeyCheck,
    Offboard,
    Poll,
    Reconcile,
    Record,
    Refresh,
    Sleep,
    Submit,
)
from actors.core.policy import DEFAULT_SETTINGS, CoreSettings, seconds
from actors.core.ratelimit import Lane, Unlimited
from actors.core.state import Practice, Writeback

EPOCH = datetime(1970, 1, 1, tzinfo=policy.UTC)  # "due at once"


def ordered(p: Practice) -> list[Writeback]:
    """The practice's writebacks in request order."""
    return sorted(p.writebacks.values(), key=lambda wb: wb.seq)


def key_usable(p: Practice, now: datetime) -> bool:
    """Whether the practice's request key may be used for a new call now."""
    return (
        p.token_expires_at is not None
        and not p.token_stale
        and not p.setup_required
        and p.authorized
        and now < p.token_expires_at - policy.key_safety(p.token_issued_at, p.token_expires_at)
    )


def refresh_grant(p: Practice) -> str:
    return p.refresh_grant or ("refresh_key" if p.token_issued_at is not None else "request_key")


def refresh_due_at(p: Practice, jitter: float | None = None) -> datetime | None:
    """When the next grant should be tried (the epoch: at once); ``None``: not now (no key can
    be had without an operator or a re-authorization, or the practice is leaving)."""
    if p.offboarded or p.offboarding:
        return None
    if p.refresh_requested:
        return EPOCH
    if p.setup_required or not p.authorized:
        return None
    if p.refresh_retry_at is not None:
        return p.refresh_retry_at
    if p.token_expires_at is None or p.token_stale:
        return EPOCH
    return planned_refresh_at(p, jitter)


def planned_refresh_at(p: Practice, jitter: float | None = None) -> datetime | None:
    """When the current request key is to be refreshed (TTL × 23/24, spread by ``jitter``);
    ``None`` without a key."""
    if p.token_expires_at is None:
        return None
    issued = p.token_issued_at or (p.token_expires_at - timedelta(days=1))
    return policy.token_refresh_at(
        issued, p.token_expires_at, policy.stable_jitter(p.office_id) if jitter is None else jitter
    )


def can_submit(p: Practice, now: datetime) -> bool:
    """Practice-level conditions for sending a new writeback."""
    return (
        p.state == "active"
        and not p.offboarding
        and (p.submit_hold_until is None or now >= p.submit_hold_until)
        and key_usable(p, now)
        and not any(wb.state == "submitting" for wb in p.writebacks.values())
    )


def anchor_of(wb: Writeback) -> datetime:
    """The time a writeback is searched around in Sikka's list: its attempt, else its acknowledgement."""
    return wb.attempted_at or wb.submitted_at or wb.requested_at


def list_targets(p: Practice) -> list[ListTarget]:
    """What this practice needs from the app-level ``GET /writebacks`` task."""
    out = []
    for wb in ordered(p):
        if wb.state == "pending" and wb.sikka_writeback_id and not wb.status_read_due:
            out.append(
                ListTarget(
                    office_id=p.office_id,
                    writeback_id=wb.writeback_id,
                    kind="pending",
                    anchor=anchor_of(wb),
                    next_check_at=wb.next_check_at,
                    sikka_writeback_id=wb.sikka_writeback_id,
                    missing=wb.last_result == "missing",
                )
            )
        elif wb.state == "unknown":
            out.append(
                ListTarget(
                    office_id=p.office_id,
                    writeback_id=wb.writeback_id,
                    kind="unknown",
                    anchor=anchor_of(wb),
                    next_check_at=wb.next_check_at,
                )
            )
    for watch in p.late_watch.values():
        if watch.writeback_id in p.payloads:
            out.append(
                ListTarget(
                    office_id=p.office_id,
                    writeback_id=watch.writeback_id,
                    kind="late",
                    anchor=watch.attempted_at,
                    next_check_at=watch.next_check_at,
                )
            )
    return out + duplicates.targets(p)


def bodies_needed(p: Practice) -> list[str]:
    """Writebacks whose plaintext payload a ``ListOutcome`` must carry (reconciliation)."""
    ids = [wb.writeback_id for wb in ordered(p) if wb.state == "unknown"]
    ids += [wid for _, _, _, wid in duplicates.unresolved(p) if wid not in ids]
    return ids + [w for w in p.late_watch if w in p.payloads and w not in ids]



def conditions(p: Practice, now: datetime) -> list[str]:
    """``PracticeStatus.conditions``."""
    out = []
    hold = p.submit_hold_until is not None and p.submit_hold_until > now
    if hold and p.submit_hold_reason == "spu_offline":
        out.append("spu_offline")
    if hold and p.submit_hold_reason == "daily_quota":
        out.append("quota_exhausted")
    if hold and p.submit_hold_reason == "rate_limited":
        out.append("rate_limited")
    return out



def due_events(p: Practice, now: datetime, settings: CoreSettings = DEFAULT_SETTINGS) -> list[ev.Event]:
    """Timer-driven events due at ``now`` (deadlines, deferrals ending, late watches ending)."""
    out: list[ev.Event] = []
    for wb in ordered(p):
        late = policy.past(wb.deadline_at, now)
        match wb.state:
            case "queued" | "deferred" if late:
                out.append(
                    ev.WritebackFailed(
                        at=now,
                        writeback_id=wb.writeback_id,
                        code="deadline_exceeded",
                        message="the deadline passed before Sikka accepted the writeback",
                        retryable=True,
                    )
                )
            case "deferred" if wb.retry_at is None or now >= wb.retry_at:
                out.append(ev.RetryScheduled(at=now, writeback_id=wb.writeback_id))
            case "unknown" if late:
                out.append(
                    ev.WritebackFailed(
                        at=now,
                        writeback_id=wb.writeback_id,
                        code="outcome_unknown",
                        message="the deadline passed while Sikka's answer was unknown; matching goes on for 7 days",
                        retryable=False,
                    )
                )
            case "pending" if late and not wb.cancel_requested:
                out.append(ev.CancelRequested(at=now, writeback_id=wb.writeback_id, reason="deadline"))
    for watch in p.late_watch.values():
        if now >= watch.failed_at + seconds(policy.LATE_WATCH_S) or watch.writeback_id not in p.payloads:
            out.append(ev.LateWatchEnded(at=now, writeback_id=watch.writeback_id, reason="expired"))
    return out + duplicates.due_events(p, now)



# --- next_step -------------------------------------------------------------------------------


def recovered_key_call_at(office_id: str, now: datetime, settings: CoreSettings) -> datetime:
    """What a recovering actor counts as its last keyed call: a stable share of
    ``key_check_interval`` before ``now``, so that after a restart the practices' idle key checks
    spread over one interval instead of all coming due at once (20,000 of them, one interval
    after the restart)."""
    return now - seconds(policy.stable_jitter(f"key-check:{office_id}") * settings.key_check_interval)


def next_step(
    p: Practice,
    now: datetime,
    budget=None,
    settings: CoreSettings = DEFAULT_SETTINGS,
    *,
    jitter: float | None = None,
    last_keyed_call_at: datetime | None = None,
) -> AnyStep:
    """The one thing the practice's actor should do next (see the module docstring).

    ``last_keyed_call_at``: when the shell last used the practice's key (any call); after
    ``key_check_interval`` of quiet it asks for a ``KeyCheck`` so a revoked key is noticed
    within that interval plus a call. ``None``: no idle checks.
    """
    if p.offboarded:
        return Sleep(until=None)
    due = due_events(p, now, settings)
    if due:
        return Record(events=tuple(record_checks(p, due)))
    writebacks = ordered(p)
    if p.offboarding and not any(wb.state in ("pending", "submitting", "unknown") for wb in writebacks):
        return Offboard()
    plan = _Plan(p, now, budget if budget is not None else Unlimited(), writebacks)
    step = (
        plan.refresh(jitter)
        or plan.cancel()
        or plan.poll()
        or plan.reconcile(settings)
        or plan.key_check(settings, last_keyed_call_at)
        or plan.submit()
    )
    return step or Sleep(until=plan.earliest_timer())


class _Plan:
    """The candidates of ``next_step`` in priority order; each returns its step or ``None`` and
    notes when it could next be due (a timer, or the budget's next slot) in ``wake``."""

    def __init__(self, p: Practice, now: datetime, budget, writebacks: list[Writeback]):
        self.p, self.now, self.budget, self.writebacks = p, now, budget, writebacks
        self.wake: list[datetime] = []
        self.key_ok = key_usable(p, now)

    def _at(self, when: datetime) -> bool:
        """Whether ``when`` has come; if not, it is a wake-up time."""
        if when <= self.now:
            return True
        self.wake.append(when)
        return False

    def _budget_allows(self, lane: Lane) -> bool:
        t = self.now.timestamp()
        at = self.budget.allowed_at(lane, t)
        if at <= t:
            return True
        self.wake.append(datetime.fromtimestamp(at, policy.UTC))
        return False

    def refresh(self, jitter: float | None) -> Refresh | None:
        refresh_at = refresh_due_at(self.p, jitter)
        if refresh_at is not None and self._at(refresh_at) and self._budget_allows(Lane.TOKEN):
            return Refresh(grant=refresh_grant(self.p))
        return None

    def cancel(self) -> Cancel | None:
        for wb in self.writebacks:
            if wb.state == "pending" and wb.cancel_requested and not wb.delete_answered and wb.sikka_writeback_id:
                if wb.delete_retry_at is None or self._at(wb.delete_retry_at):
                    return Cancel(
                        writeback_id=wb.writeback_id,
                        sikka_writeback_id=wb.sikka_writeback_id,
                        attempt=wb.delete_attempts + 1,
                    )
        for w in duplicates.deletes_due(self.p):  # a late original, named by its watch's key
            if w.delete_retry_at is None or self._at(w.delete_retry_at):
                return Cancel(writeback_id=w.key, sikka_writeback_id=w.found, attempt=w.delete_tries + 1)
        return None

    def poll(self) -> Poll | None:
        for wb in self.writebacks:
            if wb.state != "pending" or not wb.sikka_writeback_id:
                continue
            due = wb.status_check_planned or (wb.status_read_due and self._at(wb.next_check_at or self.now))
            if due and self.key_ok and self._budget_allows(Lane.STATUS):
                return Poll(writeback_id=wb.writeback_id, sikka_writeback_id=wb.sikka_writeback_id)
        return None

    def reconcile(self, settings: CoreSettings) -> Reconcile | None:
        grace = seconds(settings.list_fallback_grace_s)
        overdue = [t for t in list_targets(self.p) if self._at((t.next_check_at or self.now) + grace)]
        if not overdue:
            return None
        dates = set()
        for target in overdue:
            lo, hi = target_dates(target.anchor)
            dates.update(lo + timedelta(days=i) for i in range((hi - lo).days + 1))
        return Reconcile(writeback_ids=tuple(t.writeback_id for t in overdue), ranges=date_ranges(dates))

    def key_check(self, settings: CoreSettings, last_keyed_call_at: datetime | None) -> KeyCheck | None:
        if last_keyed_call_at is None or not self.key_ok or self.p.offboarding:
            return None
        if self._at(last_keyed_call_at + seconds(settings.key_check_interval)) and self._budget_allows(Lane.BACKGROUND):
            return KeyCheck()
        return None

    def submit(self) -> Submit | None:
        queued = [wb for wb in self.writebacks if wb.state == "queued"]
        if not queued:
            return None
        if not can_submit(self.p, self.now):
            hold = self.p.submit_hold_until
            if hold is not None:
                self._at(hold)
            return None
        if not self._budget_allows(Lane.SUBMIT):
            return None
        head = queued[0]
        attempt = head.attempts + 1
        return Submit(
            writeback_id=head.writeback_id,
            operation=head.operation,
            attempt=attempt,
            attempted=ev.SubmitAttempted(at=self.now, writeback_id=head.writeback_id, attempt=attempt),
        )

    def earliest_timer(self) -> datetime | None:
        """The earliest future wake-up: budget slots and timers noted above, deadlines, deferrals
        ending, late watches ending (``None``: none; wait for a message)."""
        for wb in self.writebacks:
            if wb.state in ("queued", "deferred", "unknown", "pending") and not (
                wb.state == "pending" and wb.cancel_requested
            ):
                self.wake.append(wb.deadline_at)
            if wb.state == "deferred" and wb.retry_at is not None:
                self.wake.append(wb.retry_at)
        for watch in self.p.late_watch.values():
            self.wake.append(watch.failed_at + seconds(policy.LATE_WATCH_S))
        self.wake.extend(duplicates.timers(self.p))
        future = [w for w in self.wake if w > self.now]
        return min(future) if future else None
