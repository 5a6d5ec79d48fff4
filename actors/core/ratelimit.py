"""The per-practice rate budget: a sliding log with a margin, lowered by the server's hints.

Pure logic in a small mutable object: no clock is read inside; every method takes ``now`` as
float POSIX seconds (``datetime.timestamp()``; a monotonic clock works too, except that the
daily-quota stop computes the next UTC midnight from it: pass ``until`` then).

Gates, all of which must pass (``allowed_at`` returns the earliest time they all do)::

    local log      fewer than cap(lane) sends in the last 60 s + margin        (the guarantee)
    server hint    X-Rate-Limit-Remaining minus sends since, until Reset + 1 s  (only lowers)
    snooze         a 429: nothing until its Reset + 1 s (60 s when absent)
    day stop       daily quota (API2011/API2012): nothing until the next UTC midnight

    cap(lane) = effective limit − RESERVE[lane],  effective = min(SIKKA_RATE_LIMIT, header Limit)

Why a sliding log: a send at ``t`` is allowed only if fewer than L sends happened in
``(t − 60 − margin, t]``, so any L + 1 consecutive sends span more than 60 s + margin and no
60 s window (wherever the server puts it, with up to ``margin`` of latency or clock skew
between our send time and its arrival time) ever holds more than L. A token bucket would allow
2L in some 60 s span. With a margin of 0.5 s the steady throughput is L × 60/60.5 ≈ 99.2 % of L.

Lanes, highest first: TOKEN (refresh), READ (interactive reads), SUBMIT (writebacks), STATUS
(writeback_status reads), BACKGROUND (key checks, anything deferrable). A lower lane may not
take the last few slots of the window: RESERVE = 0, 1, 2, 3, 4 slots, so with L = 200 the
background lane stops at 196, submissions at 198, and a token refresh always finds a slot.

The hint gates sends only while the server counts more than our own sends of the last 60 s +
margin (someone else spends the same budget, or it saw sends we no longer log): when it counts
only ours, the local log already bounds its window, and waiting for each Reset would idle us at
every window's end (``bench.ratelimit``: 96.6 % of the limit instead of 99.5 %). The hint is kept
either way for ``statistics`` (``GET /usage``).

Header sanity: a Remaining above its own Limit (the docs show Limit 20 / Remaining 60), a
negative value or a Reset beyond an hour makes the whole response's hints ignored (counted in
``ignored_hints``); the stricter local log still holds. Hints from responses older than the
current hint's are ignored (out-of-order answers). Sends after the answered request was sent
are subtracted from its Remaining: the server may not have counted them yet.

Shares: the app-level budget (App-Id/App-Key calls) is the application's, whatever the number
of supervisors; each node sends at most its share of it (``set_share``, from the live nodes of the
lease table: ``actors.core.leases.app_share``). The server's Remaining counts every node's sends, so
its hint binds (see above) whenever the others spend the same budget.

Memory: the log is an ``array('d')`` ring that grows with the sends up to the configured limit
(8 bytes per slot: 1.6 KiB for L = 200 once a practice has been that busy; an idle practice's
few key checks take a few dozen bytes) plus a few scalars in ``__slots__``.
"""

from __future__ import annotations

import math
from array import array
from enum import IntEnum

import msgspec

WINDOW_S = 60.0
DEFAULT_MARGIN_S = 0.5
MIN_MARGIN_S = 0.001
DAY_S = 86400.0


class Lane(IntEnum):
    TOKEN = 0
    READ = 1
    SUBMIT = 2
    STATUS = 3
    BACKGROUND = 4


RESERVE = (0, 1, 2, 3, 4)  # slots each lane must leave free for the lanes above it
N_LANES = len(Lane)


class BudgetStats(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GET /usage`` and the rate alerts need (``statistics(now)``)."""

    limit: int  # effective limit (configured, lowered by the server's Limit header)
    configured_limit: int
    used_last_60s: int
    remaining: int
    window_start: float | None  # oldest send still counted, or None
    server_limit: int | None
    server_remaining: int | None  # the live hint (Remaining minus sends since), None when none
    server_reset_s: float | None  # seconds until the hint expires
    blocked_until: float | None
    block_reason: str | None  # "rate_limited" | "daily_quota"
    requests_today: int  # sends in the current UTC day
    waited: tuple[int, ...]  # per lane: sends that had to wait for budget
    waiting: tuple[bool, ...]  # per lane: waiting right now
    last_waited_at: tuple[float | None, ...]  # per lane: when a send that had to wait last went out
    ignored_hints: int


class Budget:
    """A practice's (or the app's) request budget. See the module docstring."""

    __slots__ = (
        "configured_limit",
        "margin",
        "window",
        "_ring",
        "_head",
        "_count",
        "_server_limit",
        "_hint_remaining",
        "_hint_until",
        "_hint_binds",
        "_hint_sent_at",
        "_blocked_until",
        "_block_reason",
        "_day",
        "_today",
        "_waited",
        "_waiting_since",
        "_last_waited",
        "_ignored",
        "_share",
    )

    def __init__(self, limit: int = 200, *, margin: float = DEFAULT_MARGIN_S, window: float = WINDOW_S) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.configured_limit = int(limit)
        self.margin = max(float(margin), MIN_MARGIN_S)  # > 0: a closed 60 s window holds ≤ L too
        self.window = float(window)
        self._ring = array("d")  # grows with the sends up to the limit, then wraps (see take)
        self._head = 0  # index of the oldest entry
        self._count = 0
        self._server_limit: int | None = None
        self._hint_remaining = 0
        self._hint_until = -math.inf
        self._hint_binds = False  # the hint gates sends only when the server counts others' too
        self._hint_sent_at = -math.inf
        self._blocked_until = -math.inf
        self._block_reason: str | None = None
        self._day = -1
        self._today = 0
        self._waited = array("L", [0] * N_LANES)
        self._waiting_since = array("d", [math.nan] * N_LANES)
        self._last_waited = array("d", [math.nan] * N_LANES)
        self._ignored = 0
        self._share = 1.0

    # --- the log -----------------------------------------------------------------------------

    @property
    def span(self) -> float:
        return self.window + self.margin

    @property
    def whole_limit(self) -> int:
        """The limit of the whole budget: configured, lowered by the server's Limit header."""
        if self._server_limit is None:
            return self.configured_limit
        return min(self.configured_limit, self._server_limit)

    @property
    def limit(self) -> int:
        """What this process may send in a window: its ``share`` of ``whole_limit`` (at least 1)."""
        if self._share >= 1.0:
            return self.whole_limit
        return max(1, math.floor(self.whole_limit * self._share))

    def set_share(self, share: float) -> None:
        """Send at most ``share`` (0 < share ≤ 1) of the limit: the app-level budget, which every
        node of the application draws on, split between the live nodes (``actors.core.leases.app_share``)."""
        self._share = min(1.0, max(float(share), 0.0))

    def _at(self, i: int) -> float:
        return self._ring[(self._head + i) % self.configured_limit]

    def _first_in_window(self, now: float) -> int:
        """Index (0 = oldest) of the oldest logged send still in the window at ``now``."""
        lo, hi = 0, self._count
        span = self.span
        while lo < hi:
            mid = (lo + hi) // 2
            if self._at(mid) + span > now:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def used(self, now: float) -> int:
        """Sends in the window ending at ``now`` (60 s + margin)."""
        return self._count - self._first_in_window(now)

    def cap(self, lane: int) -> int:
        return max(1, self.limit - RESERVE[lane])

    # --- queries -----------------------------------------------------------------------------

    def allowed_at(self, lane: int, now: float) -> float:
        """The earliest time ≥ ``now`` at which ``lane`` may send (``now`` when it may now)."""
        at = self._earliest(lane, now)
        if at > now and math.isnan(self._waiting_since[lane]):
            self._waiting_since[lane] = now  # bookkeeping for "demand outran the budget"
        return at

    def _earliest(self, lane: int, now: float) -> float:
        at = now
        if self._blocked_until > at:
            at = self._blocked_until
        hint_gates = self._hint_binds and now < self._hint_until and self._hint_remaining <= RESERVE[lane]
        if hint_gates and self._hint_until > at:
            at = self._hint_until
        first = self._first_in_window(at)
        in_window = self._count - first
        cap = self.cap(lane)
        if in_window >= cap:
            # the (in_window - cap + 1)-th oldest send in the window must leave it
            at = max(at, self._at(first + in_window - cap) + self.span)
        return at

    def free_at(self, lane: int, now: float) -> float:
        """``allowed_at`` as a question only (no "waited for budget" bookkeeping): planners."""
        return self._earliest(lane, now)

    # --- updates -----------------------------------------------------------------------------

    def take(self, lane: int, now: float) -> bool:
        """Record a send at ``now``; returns whether the budget allowed it (it is recorded anyway:
        a send that happened counts, and the log keeps the limit's worth of the newest)."""
        allowed = self._earliest(lane, now) <= now
        if self._count and now < self._at(self._count - 1):
            now = self._at(self._count - 1)  # a clock that stepped back: keep the log sorted
        if self._count < self.configured_limit:
            self._ring.append(now)  # the head stays at 0 until the log is full
            self._count += 1
        else:
            self._ring[self._head] = now
            self._head = (self._head + 1) % self.configured_limit
        if now < self._hint_until:
            self._hint_remaining -= 1
        day = int(now // DAY_S)
        if day != self._day:
            self._day, self._today = day, 0
        self._today += 1
        if not math.isnan(self._waiting_since[lane]):
            self._waited[lane] += 1
            self._waiting_since[lane] = math.nan
            self._last_waited[lane] = now
        return allowed

    def observe(self, headers, now: float, sent_at: float) -> None:
        """Apply a response's ``X-Rate-Limit-*`` (``outcomes.RateHeaders``) received at ``now``
        for a request sent at ``sent_at``. Hints only ever lower the budget."""
        limit, remaining, reset_s = headers.limit, headers.remaining, headers.reset_s
        if limit is None and remaining is None:
            return
        if (
            (limit is not None and limit < 1)
            or (remaining is not None and remaining < 0)
            or (limit is not None and remaining is not None and remaining > limit)
            or (reset_s is not None and not (0 <= reset_s <= 3600))
        ):
            self._ignored += 1
            return
        if limit is not None:
            self._server_limit = min(self.configured_limit, int(limit))
        if remaining is None or sent_at < self._hint_sent_at:
            return
        if remaining > self.whole_limit:  # the server counts the whole budget, not our share of it
            self._ignored += 1
            return
        reset = WINDOW_S if reset_s is None else reset_s
        since = self._count - self._first_after(sent_at)  # our sends the server may not have counted
        own = self._count - since - self._first_in_window(sent_at)  # our sends it may have counted
        # Counting no more than our own sends, the server tells us nothing the local log (at the
        # effective limit) does not already enforce; gating on it would only idle us until its
        # Reset (+1 s) at every window's end. The hint is still kept for ``statistics``.
        self._hint_binds = limit is None or int(limit) - int(remaining) > own
        self._hint_remaining = int(remaining) - since
        self._hint_until = now + reset + 1.0  # Reset has 1 s granularity
        self._hint_sent_at = sent_at

    def _first_after(self, t: float) -> int:
        lo, hi = 0, self._count
        while lo < hi:
            mid = (lo + hi) // 2
            if self._at(mid) > t:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def snooze(self, reset_s: float | None, now: float) -> None:
        """A 429 for the window: nothing until its reset (+1 s; 60 s when absent or absurd)."""
        if reset_s is None or not (0 <= reset_s <= 3600):
            reset_s = WINDOW_S
        until = now + reset_s + 1.0
        if until > self._blocked_until:
            self._blocked_until = until
            self._block_reason = "rate_limited"
        self._hint_remaining = 0
        self._hint_until = max(self._hint_until, until)
        self._hint_binds = True

    def exhaust_day(self, now: float, until: float | None = None) -> None:
        """A daily quota (429 API2011/API2012): stop until ``until``, by default the next UTC
        midnight (``now`` must then be POSIX seconds). Sikka and the simulator count the quota
        per UTC day; writebacks deferred by it are retried in practice-local quiet hours
        (``policy.daily_quota_retry_at``), which never comes before this."""
        if until is None:
            until = (math.floor(now / DAY_S) + 1) * DAY_S
        if until > self._blocked_until:
            self._blocked_until = until
            self._block_reason = "daily_quota"

    # --- statistics --------------------------------------------------------------------------

    def statistics(self, now: float) -> BudgetStats:
        first = self._first_in_window(now)
        used = self._count - first
        hint_live = now < self._hint_until
        day = int(now // DAY_S)
        return BudgetStats(
            limit=self.limit,
            configured_limit=self.configured_limit,
            used_last_60s=used,
            remaining=max(0, self.limit - used),
            window_start=self._at(first) if used else None,
            server_limit=self._server_limit,
            server_remaining=max(0, self._hint_remaining) if hint_live else None,
            server_reset_s=(self._hint_until - now) if hint_live else None,
            blocked_until=self._blocked_until if self._blocked_until > now else None,
            block_reason=self._block_reason if self._blocked_until > now else None,
            requests_today=self._today if day == self._day else 0,
            waited=tuple(self._waited),
            waiting=tuple(not math.isnan(x) for x in self._waiting_since),
            last_waited_at=tuple(None if math.isnan(x) else x for x in self._last_waited),
            ignored_hints=self._ignored,
        )


class Unlimited:
    """A budget that always allows (tests, and callers that gate elsewhere)."""

    def allowed_at(self, lane: int, now: float) -> float:
        return now

    def take(self, lane: int, now: float) -> bool:
        return True
