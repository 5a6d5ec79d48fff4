"""The simulator's shared state, and the records it is made of.

Design: ``SimState`` holds what every endpoint group of ``sim/simulator.py`` reads or counts: the
config, the injected clock and random source, the practices (``PracticeState``, created on first
use, their PMS data built lazily by ``sim/data.py``), the app-level meter, the request count and
the fault set. The groups own their own books (``Keys`` the keys in ``sim/keys.py``,
``Writebacks`` the writebacks in ``sim/writebacks.py``) and take this state in their constructor.
``Meter`` counts arrivals (a sliding 60 s maximum) and runs the fixed 60 s rate window that starts
at its first request; ``Req`` is one ``/v4`` request while it is processed.
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from collections.abc import Callable, Iterable

import msgspec

from sim.config import SimConfig
from sim.data import PracticeData, PracticeInfo, build_practice, practice_info
from sim.times import utc_day


class Meter:
    """Arrivals (sliding 60 s max), a fixed 60 s window that starts at its first request."""

    __slots__ = ("requests", "status_429", "max_in_any_60s", "_arrivals", "_start", "_count")

    def __init__(self):
        self.requests = self.status_429 = self.max_in_any_60s = 0
        self._arrivals: deque[float] = deque()
        self._start: float | None = None
        self._count = 0

    def arrive(self, now: float) -> None:
        self.requests += 1
        a = self._arrivals
        a.append(now)
        while a[0] <= now - 60:
            a.popleft()
        self.max_in_any_60s = max(self.max_in_any_60s, len(a))

    def take(self, now: float, limit: int) -> tuple[bool, list[tuple[str, str]]]:
        if self._start is None or now >= self._start + 60:
            self._start, self._count = now, 0
        self._count += 1
        reset = max(0, math.ceil(self._start + 60 - now))
        headers = [
            ("X-Rate-Limit-Limit", str(limit)),
            ("X-Rate-Limit-Remaining", str(max(0, limit - self._count))),
            ("X-Rate-Limit-Reset", str(reset)),
        ]
        return self._count <= limit, headers


class PracticeState(Meter):
    __slots__ = (
        "info", "data", "forced_429", "expired_key_calls", "forced_expired_calls", "writebacks_submitted",
        "writebacks_completed", "writebacks_failed", "writebacks_deleted", "timeline", "quota_day",
        "quota_count", "refresh_key", "blocked",
    )

    def __init__(self, info: PracticeInfo, timeline_limit: int):
        super().__init__()
        self.info = info
        self.data: PracticeData | None = None
        self.forced_429 = self.expired_key_calls = self.forced_expired_calls = 0
        self.writebacks_submitted = self.writebacks_completed = 0
        self.writebacks_failed = self.writebacks_deleted = 0
        self.timeline: deque[tuple] = deque(maxlen=timeline_limit)
        self.quota_day, self.quota_count = -1, 0
        self.refresh_key: str | None = None
        self.blocked: list[int] = []  # writebacks due while the SPU was offline

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "status_429": self.status_429,
            "forced_429": self.forced_429,
            "max_in_any_60s": self.max_in_any_60s,
            "expired_key_calls": self.expired_key_calls,
            "forced_expired_calls": self.forced_expired_calls,
            "writebacks_submitted": self.writebacks_submitted,
            "writebacks_completed": self.writebacks_completed,
            "writebacks_failed": self.writebacks_failed,
            "writebacks_deleted": self.writebacks_deleted,
        }


class Key:
    __slots__ = ("key", "office_id", "start", "end", "forced_at", "count", "deleted")

    def __init__(self, key: str, office_id: str, start: float, end: float):
        self.key, self.office_id, self.start, self.end = key, office_id, start, end
        self.forced_at: float | None = None  # set by the expire_tokens fault
        self.count = 1
        self.deleted = False

    @property
    def expires(self) -> float:
        return self.end if self.forced_at is None else min(self.end, self.forced_at)


class Req:
    """One /v4 request while it is processed."""

    __slots__ = ("method", "path", "segs", "query", "headers", "body", "now", "base", "ps", "key", "_json")

    def __init__(self, method, path, segs, query, headers, body, now, base):
        self.method, self.path, self.segs, self.query = method, path, segs, query
        self.headers, self.body, self.now, self.base = headers, body, now, base
        self.ps: PracticeState | None = None
        self.key: Key | None = None
        self._json = None

    def json(self):
        """The JSON body as a dict, or None if it is not a JSON object."""
        if self._json is None:
            try:
                obj = msgspec.json.decode(self.body) if self.body else {}
            except msgspec.DecodeError:
                obj = None
            self._json = obj if isinstance(obj, dict) else False
        return self._json if self._json is not False else None


class SimState:
    """What the endpoint groups share (see the module docstring)."""

    def __init__(self, config: SimConfig, clock: Callable[[], float], rng: random.Random):
        self.config, self.clock, self.rng = config, clock, rng
        self.today = utc_day(clock())  # seeded appointments lie before it
        self.practices: dict[str, PracticeState] = {}
        self.app_meter = Meter()
        self.requests = 0
        self.faults: dict = {}

    def practice(self, office_id: str) -> PracticeState | None:
        ps = self.practices.get(office_id)
        if ps is None:
            m = re.fullmatch(r"D(\d+)", office_id or "")
            if not m or not 0 <= int(m[1]) - 1000 < self.config.practices or m[1] != str(int(m[1])):
                return None
            info = practice_info(self.config.seed, int(m[1]) - 1000)
            ps = self.practices[office_id] = PracticeState(info, self.config.timeline_limit)
        return ps

    def office_ids(self) -> Iterable[str]:
        return (f"D{1000 + i}" for i in range(self.config.practices))

    def data(self, ps: PracticeState) -> PracticeData:
        if ps.data is None:
            c = self.config
            ps.data = build_practice(c.seed, ps.info, self.today, c.patients_per_practice, c.appointments_per_practice)
        return ps.data

    def authorized(self, office_id: str) -> bool:
        return office_id not in self.faults.get("revoke", ())

    def offline(self, office_id: str) -> bool:
        return office_id in self.faults.get("spu_offline", ())
