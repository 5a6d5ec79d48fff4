"""A fault-injecting wrapper for either event store: database errors, slow commits, an unreachable
database. Faults are drawn from the caller's ``random.Random``, so a seed reproduces a run.

- ``unreachable``: every call raises ``DatabaseUnavailable`` before touching the store;
- ``crashing``: reading a stream raises ``RuntimeError`` (a bug, not an outage: its actor crashes);
- ``error_rate``: share of appends that fail with ``DatabaseUnavailable`` before writing;
- ``lost_ack_rate``: share of appends that are written but whose caller gets
  ``DatabaseUnavailable`` anyway (the commit happened; the answer was lost);
- ``commit_delay``: seconds each append sleeps before returning (``trio.sleep``, so MockClock
  jumps it).

Reads fail only while ``unreachable``. ``statistics()`` counts what was injected.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgspec
import trio

from actors.core import events as ev
from store.db import DatabaseUnavailable


class FaultStatistics(msgspec.Struct, frozen=True):
    appends: int
    failed_before_write: int
    lost_acks: int
    refused_while_unreachable: int


class FaultyStore:
    def __init__(self, inner, rng: random.Random | None = None):
        self.inner = inner
        self.rng = rng or random.Random(0)
        self.unreachable = False
        self.crashing = False
        self.error_rate = 0.0
        self.lost_ack_rate = 0.0
        self.commit_delay = 0.0
        self._appends = self._failed = self._lost = self._refused = 0

    def _gate(self) -> None:
        if self.unreachable:
            self._refused += 1
            raise DatabaseUnavailable("database unavailable: injected outage")

    async def append(self, stream_id: str, expected_version: int, events: Sequence[ev.Event]) -> int:
        self._gate()
        self._appends += 1
        if self.error_rate and self.rng.random() < self.error_rate:
            self._failed += 1
            await trio.lowlevel.checkpoint()
            raise DatabaseUnavailable("database unavailable: injected error before the commit")
        version = await self.inner.append(stream_id, expected_version, events)
        if self.commit_delay:
            await trio.sleep(self.commit_delay)
        if self.lost_ack_rate and self.rng.random() < self.lost_ack_rate:
            self._lost += 1
            raise DatabaseUnavailable("database unavailable: injected loss of the commit's answer")
        return version

    async def read_stream(self, *args, **kwargs):
        self._crash_reading()
        return await self.inner.read_stream(*args, **kwargs)

    async def load_streams(self, *args, **kwargs):  # (a starting actor's read of its stream)
        self._crash_reading()
        return await self.inner.load_streams(*args, **kwargs)

    def _crash_reading(self) -> None:
        self._gate()
        if self.crashing:
            raise RuntimeError("injected crash reading the stream")

    def statistics(self) -> FaultStatistics:
        return FaultStatistics(self._appends, self._failed, self._lost, self._refused)

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        async def gated(*args, **kwargs):
            self._gate()
            return await attr(*args, **kwargs)

        return gated
