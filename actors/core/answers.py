"""What single Sikka calls came to, as events: a submission's answer, a status read, a key
grant, a DELETE, an idle key check. ``actors.core.decide`` dispatches these inputs here; the
app-level list is ``actors.core.confirm``. Pure.
"""

from __future__ import annotations

from datetime import datetime

from msgspec.structs import replace

from actors.core import duplicates
from actors.core import events as ev
from actors.core import outcomes as oc
from actors.core import policy
from actors.core import reconcile as rc
from actors.core.messages import (
    CheckByStatus,
    DeleteOutcome,
    KeyCheckOutcome,
    RefreshOutcome,
    StatusOutcome,
    SubmitOutcome,
)
from actors.core.policy import CoreSettings, seconds
from actors.core.schedule import anchor_of
from actors.core.state import Practice, Writeback


def _code(outcome, default: str) -> str:
    return getattr(outcome, "code", "") or default


def submit_outcome(p: Practice, msg: SubmitOutcome, now: datetime, settings: CoreSettings) -> list[ev.Event]:
    wb = p.writebacks.get(msg.writeback_id)
    if wb is None or wb.state != "submitting":
        return []  # stale or duplicated answer
    wid = wb.writeback_id
    outcome = msg.result.outcome
    match outcome:
        case oc.Ok(value=oc.WritebackAck() as ack) if ack.sikka_writeback_id:
            return [
                ev.WritebackSubmitted(
                    at=now,
                    writeback_id=wid,
                    sikka_writeback_id=ack.sikka_writeback_id,
                    next_check_at=policy.first_check_at(now),
                )
            ]
        case oc.ExpiredKey() | oc.InvalidKey():
            return [ev.SubmitRefused(at=now, writeback_id=wid, code=outcome.code)]
        case oc.Unauthorized():
            return [
                ev.SubmitRefused(at=now, writeback_id=wid, code=outcome.code),
                ev.SetupRequired(at=now, code=outcome.code, message=outcome.message),
            ]
        case oc.Rejected():
            return [
                ev.WritebackRejected(
                    at=now,
                    writeback_id=wid,
                    code=outcome.code or f"http_{outcome.status}",
                    message=outcome.message,
                    http_status=outcome.status,
                )
            ]
        case oc.RateLimited():
            reset = outcome.reset_s if outcome.reset_s is not None else msg.result.rate.reset_s
            return [
                ev.WritebackDeferred(
                    at=now, writeback_id=wid, reason="rate_limited", retry_at=policy.rate_limited_retry_at(now, reset)
                )
            ]
        case oc.DailyQuota():
            retry_at = policy.daily_quota_retry_at(now, p.time_zone, settings.quiet_hours)
            return [ev.WritebackDeferred(at=now, writeback_id=wid, reason="daily_quota", retry_at=retry_at)]
        case oc.SpuOffline():
            retry_at = now + seconds(policy.spu_offline_backoff(p.spu_offline_streak))
            return [ev.WritebackDeferred(at=now, writeback_id=wid, reason="spu_offline", retry_at=retry_at)]
        case oc.TransportFailure(kind="connect"):
            retry_at = now + seconds(policy.CONNECT_BACKOFF_S)
            return [ev.WritebackDeferred(at=now, writeback_id=wid, reason="connect_failed", retry_at=retry_at)]
    # 5xx, timeout, cut connection, an unusable 2xx: it may have been created
    match outcome:
        case oc.ServerError():
            reason = f"http_{outcome.status}" + (f" {outcome.code}" if outcome.code else "")
        case oc.TransportFailure():
            reason = outcome.kind
        case oc.Unknown():
            reason = outcome.reason
        case _:
            reason = "unparseable_acknowledgement"
    return [
        ev.OutcomeUnknown(
            at=now,
            writeback_id=wid,
            reason=reason,
            next_check_at=policy.unknown_first_check_at(now, anchor_of(wb), settings),
        )
    ]


def apply_remote(wb: Writeback, remote: rc.Remote, now: datetime, *, due: bool) -> list[ev.Event]:
    """Events for a pending writeback given what Sikka says about it."""
    wid = wb.writeback_id
    match remote.kind:
        case "pending":
            if not due and not wb.status_read_due:
                return []
            return [
                ev.StatusChecked(
                    at=now,
                    writeback_id=wid,
                    result="pending",
                    next_check_at=policy.next_poll_at(wb.submitted_at or anchor_of(wb), now),
                )
            ]
        case "completed" | "failed" | "unclear" if rc.needs_status_read(wb.operation, remote) and (
            wb.last_result != "status_404" or remote.kind == "unclear"
        ):
            return [ev.StatusChecked(at=now, writeback_id=wid, result=remote.kind, read_status=True, next_check_at=now)]
        case "completed":
            return [
                ev.WritebackCompleted(
                    at=now, writeback_id=wid, created_id=remote.created_id, sikka_completed_time=remote.completed_time
                )
            ]
        case "failed":
            return [
                ev.WritebackFailed(
                    at=now,
                    writeback_id=wid,
                    code="sikka_error",
                    message=remote.message,
                    retryable=False,
                    sikka_completed_time=remote.completed_time,
                )
            ]
        case "deleted":
            if wb.cancel_requested and wb.cancel_reason == "deadline":
                return [
                    ev.WritebackFailed(
                        at=now,
                        writeback_id=wid,
                        code="deadline_exceeded",
                        message="deleted at Sikka after the deadline passed",
                        retryable=True,
                    )
                ]
            if wb.cancel_requested:
                return [ev.WritebackCancelled(at=now, writeback_id=wid)]
            return [
                ev.WritebackFailed(
                    at=now,
                    writeback_id=wid,
                    code="deleted_at_sikka",
                    message="deleted at Sikka without our asking; nothing was written",
                    retryable=True,
                )
            ]
    return [ev.StatusChecked(at=now, writeback_id=wid, result=remote.kind, read_status=True, next_check_at=now)]


def status_outcome(p: Practice, msg: StatusOutcome, now: datetime) -> list[ev.Event]:
    wb = p.writebacks.get(msg.writeback_id)
    if wb is None or wb.state != "pending":
        return []
    outcome = msg.result.outcome
    match outcome:
        case oc.Ok(value=oc.WritebackStatus() as item):
            events = apply_remote(wb, rc.decode_status(item), now, due=True)
            if wb.status_check_planned:  # the planner's check: one that finds the writeback ended counts too
                events = [replace(e, checks=wb.checks + 1) if isinstance(e, ev.ENDINGS) else e for e in events]
            return events
        case oc.Ok() | oc.Rejected(status=404):
            # unknown to writeback_status: stays pending; the list checks the id soon
            return [
                ev.StatusChecked(
                    at=now,
                    writeback_id=wb.writeback_id,
                    result="status_404",
                    next_check_at=policy.next_poll_at(wb.submitted_at or anchor_of(wb), now),
                )
            ]
        case oc.ExpiredKey() | oc.InvalidKey():
            return [ev.KeyRefused(at=now, code=outcome.code)]
        case oc.Unauthorized():
            return [ev.SetupRequired(at=now, code=outcome.code, message=outcome.message)]
    retry = now + seconds(policy.STATUS_ERROR_BACKOFF_S)
    if isinstance(outcome, oc.RateLimited):
        retry = policy.rate_limited_retry_at(now, outcome.reset_s)
    return [
        ev.StatusChecked(
            at=now, writeback_id=wb.writeback_id, result="error", read_status=wb.status_read_due, next_check_at=retry
        )
    ]


def plan_status_reads(p: Practice, msg: CheckByStatus, now: datetime) -> list[ev.Event]:
    """A ``writeback_status`` read as the next check of each pending writeback named (transient)."""
    return [
        ev.StatusReadPlanned(at=now, writeback_id=wid)
        for wid in msg.writeback_ids
        if (wb := p.writebacks.get(wid)) is not None
        and wb.state == "pending"
        and wb.sikka_writeback_id
        and not wb.status_read_due
        and not wb.status_check_planned
    ]


def refresh_outcome(p: Practice, msg: RefreshOutcome, now: datetime) -> list[ev.Event]:
    if p.offboarded:
        return []
    outcome = msg.result.outcome
    match outcome:
        case oc.Ok(value=oc.TokenGrant() as grant):
            return [ev.TokenRefreshed(at=now, expires_at=grant.expires_at, grant=msg.grant)]
        case oc.Ok() if msg.result.key_expires_at is not None:
            return [ev.TokenRefreshed(at=now, expires_at=msg.result.key_expires_at, grant=msg.grant)]
        case oc.Unauthorized() if msg.grant != "refresh_key" or outcome.code == "API2007":
            # the secret key refused, or the practice de-authorized the app (API2007)
            return [ev.SetupRequired(at=now, code=outcome.code, message=outcome.message)]
        case oc.Unauthorized() | oc.ExpiredKey() | oc.InvalidKey() | oc.Rejected():
            code = _code(outcome, "rejected")
            # a refresh key refused (401 API2003 "Refresh key is invalid or deleted", 4xx): try the secret key
            if msg.grant == "refresh_key":
                return [
                    ev.TokenRefreshFailed(
                        at=now, code=code, message=outcome.message, retry_at=now, next_grant="request_key"
                    )
                ]
            return [ev.SetupRequired(at=now, code=code, message=outcome.message)]
        case oc.RateLimited():
            retry = policy.rate_limited_retry_at(now, outcome.reset_s)
        case oc.DailyQuota():
            retry = policy.next_utc_midnight(now)
        case _:
            retry = now + seconds(policy.refresh_backoff(p.refresh_failures + 1))
    return [ev.TokenRefreshFailed(at=now, code=_code(outcome, type(outcome).__name__), retry_at=retry)]


def key_check_outcome(p: Practice, msg: KeyCheckOutcome, now: datetime) -> list[ev.Event]:
    if p.offboarded or p.setup_required:
        return []
    outcome = msg.result.outcome
    match outcome:
        case oc.Unauthorized():
            return [ev.SetupRequired(at=now, code=outcome.code, message=outcome.message)]
        case oc.ExpiredKey() | oc.InvalidKey():
            return [] if p.token_stale else [ev.KeyRefused(at=now, code=outcome.code)]
    return []


def delete_outcome(p: Practice, msg: DeleteOutcome, now: datetime) -> list[ev.Event]:
    if msg.writeback_id in p.resent_watch:  # the DELETE of a late original
        return duplicates.delete_outcome(p, msg, now)
    wb = p.writebacks.get(msg.writeback_id)
    if wb is None or wb.state != "pending" or not wb.cancel_requested or wb.delete_answered:
        return []
    outcome = msg.result.outcome
    match outcome:
        case oc.Ok():
            return [ev.DeleteAnswered(at=now, writeback_id=wb.writeback_id, deleted=True)]
        case oc.Rejected():
            return [ev.DeleteAnswered(at=now, writeback_id=wb.writeback_id, deleted=False, code=outcome.code)]
    attempt = wb.delete_attempts + 1
    return [
        ev.DeleteFailed(
            at=now,
            writeback_id=wb.writeback_id,
            code=_code(outcome, type(outcome).__name__),
            attempt=attempt,
            retry_at=now + seconds(policy.delete_backoff(attempt)),
        )
    ]

