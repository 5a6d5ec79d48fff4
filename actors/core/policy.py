"""Schedules, backoffs, quiet hours and deadlines. Pure: every function takes ``now``.

Times here are aware UTC ``datetime`` values (the events' clock); durations are float seconds.
The rate budget (``actors.core.ratelimit``) is the one exception: it works in float POSIX seconds.

Confirmation polling (pending writebacks)::

    ack ──2s──► check ──2s──► check ──2s──► … age 10 s … ──×1.2──► … ──► gap capped at 120 s
    next check = now + clamp(max(2 s, 0.2 × age), ≤ 120 s)       (age = now − acknowledgement)

  A completion at age ``c`` between checks at ages ``a`` < ``c`` ≤ ``b`` is recorded at ``b``;
  ``b − c < b − a = max(2, 0.2·a) ≤ max(2, 0.2·c)``: every completion is recorded within
  max(2 s, 20 % of its age) (and within 120 s once the cap applies, which the bound allows
  past age 600 s).

Batching of confirmation checks: ``actors.core.listplan``.

Deferral backoffs (a submission answered before Sikka accepted anything):

    412 SPU offline   15 s, 30 s, 60 s, … doubling to 15 min (practice-wide streak)
    429 window        the server's X-Rate-Limit-Reset (+1 s; 60 s when absent or absurd)
    429 daily quota   the first moment inside the practice-local quiet hours
                      (SIKKA_QUIET_HOURS, default 00:00–06:00) that is after the next UTC
                      midnight (Sikka counts the quota per UTC day; the sim does too)
    connect failure   5 s (nothing was sent)

Unknown outcomes: first reconciliation check 5 s after the outcome became unknown; "proven
absent" needs a complete list fetched at or after attempt + SIKKA_HTTP_TIMEOUT +
SIKKA_LEASE_TTL + SIKKA_ABSENCE_GRACE (30 s). The grace is what covers a request that reaches
Sikka later than our timeout (a proxy holding it): shorter re-sends sooner after a lost answer,
longer leaves less room for a late original; one that does land is found by the late watch. Ambiguous matches are re-checked every 60 s; failed ``outcome_unknown``
writebacks are matched every 15 min for 7 days.

Token refresh: at issue + TTL × 23/24 (an hour before a 24 h key expires), minus up to TTL/96
(15 min for 24 h) of jitter from a value in [0, 1) passed in; failures back off 10 s doubling to
10 min.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime, time, timedelta, timezone, tzinfo

import msgspec

from actors.core.timezones import zone_for

UTC = timezone.utc

POLL_FIRST_S = 2.0
POLL_GROWTH = 1.2
POLL_CAP_S = 120.0
SPU_BACKOFF_FIRST_S = 15.0
SPU_BACKOFF_CAP_S = 900.0
CONNECT_BACKOFF_S = 5.0
RATE_LIMIT_DEFAULT_RESET_S = 60.0
DELETE_BACKOFF_FIRST_S = 5.0
DELETE_BACKOFF_CAP_S = 300.0
DELETE_ALERT_AFTER = 5
REFRESH_BACKOFF_FIRST_S = 10.0
REFRESH_BACKOFF_CAP_S = 600.0
STATUS_ERROR_BACKOFF_S = 10.0
UNKNOWN_FIRST_CHECK_S = 5.0
ABSENCE_GRACE_S = 30.0  # SIKKA_ABSENCE_GRACE's default
AMBIGUOUS_RECHECK_S = 60.0
LATE_WATCH_S = 7 * 86400.0
LATE_WATCH_CHECK_S = 900.0
CHECK_RECORD_INTERVAL_S = 600.0  # a check that changed nothing is still recorded this long after the last
LIST_MAX_DAYS = 7
LIST_MIN_INTERVAL_S = 1.0  # between two app-level list rounds
LIST_FALLBACK_GRACE_S = 60.0  # a list-driven check this late means no app-level task serves us
KEY_SAFETY_S = 60.0  # a key this close to its expiry is not used for new calls …


def key_safety(issued_at: datetime | None, expires_at: datetime) -> timedelta:
    """… or TTL/48 when that is shorter, so a short-lived key (``--token-ttl 60``) stays usable
    until just after its refresh time (TTL × 23/24) instead of never."""
    ttl = (expires_at - issued_at).total_seconds() if issued_at is not None else 86400.0
    return seconds(min(KEY_SAFETY_S, max(ttl, 0.0) / 48.0))


class CoreSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The settings the pure core depends on (a subset of ``actors.process.config.Settings``)."""

    deadline_s: float = 21600.0
    http_timeout: float = 30.0
    lease_ttl: float = 30.0
    quiet_hours: tuple[str, str] = ("00:00", "06:00")
    key_check_interval: float = 60.0
    list_fallback_grace_s: float = LIST_FALLBACK_GRACE_S
    absence_grace: float = ABSENCE_GRACE_S

    @classmethod
    def from_settings(cls, settings) -> CoreSettings:
        return cls(
            deadline_s=settings.deadline_s,
            http_timeout=settings.http_timeout,
            lease_ttl=settings.lease_ttl,
            quiet_hours=tuple(settings.quiet_hours),
            key_check_interval=settings.key_check_interval,
            absence_grace=settings.absence_grace,
        )


DEFAULT_SETTINGS = CoreSettings()


def seconds(s: float) -> timedelta:
    return timedelta(seconds=s)


# --- deadlines -------------------------------------------------------------------------------


def deadline_at(requested_at: datetime, deadline_s: float | None, settings: CoreSettings = DEFAULT_SETTINGS) -> datetime:
    return requested_at + seconds(settings.deadline_s if deadline_s is None else deadline_s)


def past(deadline: datetime | None, now: datetime) -> bool:
    return deadline is not None and now >= deadline


# --- confirmation polling --------------------------------------------------------------------


def poll_gap(age_s: float) -> float:
    """Seconds to the next check of a writeback acknowledged ``age_s`` ago."""
    return min(POLL_CAP_S, max(POLL_FIRST_S, (POLL_GROWTH - 1.0) * max(0.0, age_s)))


def first_check_at(acknowledged_at: datetime) -> datetime:
    return acknowledged_at + seconds(POLL_FIRST_S)


def next_poll_at(acknowledged_at: datetime, now: datetime) -> datetime:
    """When to check a pending writeback next, having checked it at ``now``."""
    return now + seconds(poll_gap((now - acknowledged_at).total_seconds()))


def check_due(next_check_at: datetime | None, fetched_at: datetime, acknowledged_at: datetime) -> bool:
    """Whether a list fetched at ``fetched_at`` counts as the writeback's scheduled check.

    A check may come early (the bound only needs each gap ≤ max(2 s, 20 % of the age at the
    previous check, measured from when it really happened), so a check due within one gap
    (at least 1 s) after the fetch is taken now: neighbouring schedules coalesce into the same
    list calls instead of each triggering its own a moment later.
    """
    if next_check_at is None:
        return True
    age = (fetched_at - acknowledged_at).total_seconds()
    slack = max(LIST_MIN_INTERVAL_S, 1.0 * poll_gap(age))
    return next_check_at <= fetched_at + seconds(slack)


# --- unknown outcomes ------------------------------------------------------------------------


def proof_at(attempted_at: datetime, settings: CoreSettings = DEFAULT_SETTINGS) -> datetime:
    """The earliest list fetch that can prove an attempt absent (interface section 4)."""
    return attempted_at + seconds(settings.http_timeout + settings.lease_ttl + settings.absence_grace)


def unknown_first_check_at(now: datetime, attempted_at: datetime, settings: CoreSettings = DEFAULT_SETTINGS) -> datetime:
    return min(now + seconds(UNKNOWN_FIRST_CHECK_S), proof_at(attempted_at, settings))


def unknown_next_check_at(
    now: datetime, attempted_at: datetime, unknown_since: datetime, settings: CoreSettings = DEFAULT_SETTINGS
) -> datetime:
    """After a list that did not settle it: the proof time when that is still ahead, else a poll-like gap."""
    proof = proof_at(attempted_at, settings)
    if now < proof:
        return min(proof, next_poll_at(unknown_since, now))
    return now + seconds(AMBIGUOUS_RECHECK_S)


# --- deferral backoffs -----------------------------------------------------------------------


def spu_offline_backoff(streak: int) -> float:
    """Seconds to wait after a 412, ``streak`` being the consecutive 412s before this one."""
    return min(SPU_BACKOFF_CAP_S, SPU_BACKOFF_FIRST_S * 2.0 ** min(max(0, streak), 20))


def rate_limited_retry_at(now: datetime, reset_s: float | None) -> datetime:
    if reset_s is None or not (0 <= reset_s <= 3600):
        reset_s = RATE_LIMIT_DEFAULT_RESET_S
    return now + seconds(reset_s + 1.0)


def delete_backoff(attempt: int) -> float:
    """Seconds before DELETE try ``attempt + 1`` after try ``attempt`` (≥ 1) failed."""
    return min(DELETE_BACKOFF_CAP_S, DELETE_BACKOFF_FIRST_S * 2.0 ** min(max(0, attempt - 1), 20))


def refresh_backoff(failures: int) -> float:
    """Seconds before the next grant after ``failures`` (≥ 1) consecutive failures."""
    return min(REFRESH_BACKOFF_CAP_S, REFRESH_BACKOFF_FIRST_S * 2.0 ** min(max(0, failures - 1), 20))


# --- tokens ----------------------------------------------------------------------------------


def token_refresh_at(issued_at: datetime, expires_at: datetime, jitter: float = 0.0) -> datetime:
    """When to refresh a key issued at ``issued_at`` that expires at ``expires_at``.

    At TTL × 23/24 (one hour before a 24 h key expires, proportionally earlier for short TTLs),
    minus ``jitter`` (in [0, 1)) × TTL/96, so practices onboarded together spread out.
    """
    ttl = (expires_at - issued_at).total_seconds()
    if ttl <= 0:
        return issued_at
    jitter = min(max(jitter, 0.0), 1.0)
    return issued_at + seconds(ttl * 23.0 / 24.0 - jitter * ttl / 96.0)


def stable_jitter(key: str) -> float:
    """A value in [0, 1) derived from ``key`` (same on every replay and every node)."""
    return (zlib.crc32(key.encode()) & 0xFFFFFFFF) / 2.0**32


# --- quiet hours and days --------------------------------------------------------------------


def parse_quiet_hours(value: str | tuple[str, str]) -> tuple[time, time]:
    """``"00:00-06:00"`` or ``("00:00", "06:00")`` → (start, end); a window may cross midnight."""
    start, end = value.split("-") if isinstance(value, str) else value
    return time.fromisoformat(start), time.fromisoformat(end)


def _local(d: date, t: time, tz: tzinfo) -> datetime:
    """The UTC instant of wall time ``t`` on ``d`` in ``tz`` (a time skipped by DST moves later)."""
    wall = datetime.combine(d, t, tzinfo=tz)
    instant = wall.astimezone(UTC)
    back = instant.astimezone(tz)
    if back.replace(tzinfo=None) != wall.replace(tzinfo=None):  # nonexistent: spring-forward gap
        instant = datetime.combine(d, t, tzinfo=tz).replace(fold=1).astimezone(UTC)
        instant = max(instant, wall.replace(fold=0).astimezone(UTC))
    return instant


def quiet_windows(around: datetime, zone: str | None, window) -> list[tuple[datetime, datetime]]:
    """The quiet windows (UTC start, end) of the practice-local days around ``around``."""
    tz = zone_for(zone)
    start_t, end_t = parse_quiet_hours(window)
    today = around.astimezone(tz).date()
    out = []
    for delta in range(-2, 3):
        d = today + timedelta(days=delta)
        start = _local(d, start_t, tz)
        end = _local(d + timedelta(days=1) if end_t <= start_t else d, end_t, tz)
        if end > start:
            out.append((start, end))
    return out


def next_quiet_time(after: datetime, zone: str | None, window=("00:00", "06:00")) -> datetime:
    """The earliest instant at or after ``after`` inside the practice-local quiet hours."""
    probe = after
    for _ in range(4):
        windows = sorted(quiet_windows(probe, zone, window))
        for start, end in windows:
            if start <= after < end:
                return after
            if start >= after:
                return start
        probe = probe + timedelta(days=2)
    return after  # no usable window (start == end): do not wait for one


def next_utc_midnight(now: datetime) -> datetime:
    d = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(d, time(0), tzinfo=UTC)


def daily_quota_retry_at(now: datetime, zone: str | None, window=("00:00", "06:00")) -> datetime:
    """After a daily quota (429 API2011/API2012): quiet hours after the quota's UTC reset."""
    return next_quiet_time(next_utc_midnight(now), zone, window)
