"""Practice ownership across supervisors: the pure decisions (no I/O; time is passed in).

Several supervisors (nodes) share one database. Each practice is run by exactly one of them,
the holder of its lease row (``owner``, ``term``, ``expires_at``; ``store.leases``)::

    live nodes (heartbeat rows not expired)
        │  rendezvous hashing: the practice goes to the live node with the highest
        │  hash(node, office_id); a node joining or leaving moves only its own share
        ▼
    plan(me, practices, leases, held, nodes, now)
        ├─ acquire  practices that hash to me whose lease is free, expired, or a leftover of
        │           an earlier run of this node (same SIKKA_NODE_ID: that process is gone, the
        │           node's advisory lock proves it)
        ├─ renew    leases I hold that still hash to me (scoped to the term I was granted)
        ├─ release  leases I hold that hash elsewhere now (stop the actor first, then release)
        └─ recheck_at  when a lease or a peer's heartbeat I am waiting on expires

A lone node hashes every practice to itself and acquires them all in its first round (the
simple default). ``Timing`` fixes the local safety margins: renew every ``ttl/4``; a lease not
renewed for ``ttl/2`` has its actor stopped (it finishes its step); one not renewed for
``0.9 ttl`` has its actor cancelled, so it is gone before the lease can expire and another node
take over. Local times are monotonic seconds measured from when the last successful renewal was
sent (the database's expiry is at least that plus ``ttl``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec


class Lease(msgspec.Struct, frozen=True):
    office_id: str
    owner: str
    term: int
    expires_at: datetime


class Plan(msgspec.Struct, frozen=True):
    acquire: tuple[str, ...] = ()
    renew: tuple[str, ...] = ()
    release: tuple[str, ...] = ()
    recheck_at: datetime | None = None


def rank(node_id: str, office_id: str) -> int:
    """The rendezvous weight of ``node_id`` for ``office_id`` (stable across processes)."""
    digest = hashlib.blake2b(f"{node_id}\x00{office_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def desired_owner(office_id: str, nodes: Iterable[str]) -> str | None:
    """The live node that should run the practice (None when no node is live)."""
    return max(nodes, key=lambda n: (rank(n, office_id), n), default=None)


def live_nodes(me: str, nodes: Mapping[str, datetime], now: datetime) -> set[str]:
    """The nodes whose heartbeat has not expired, this one included (before its first is seen)."""
    return {n for n, expires_at in nodes.items() if expires_at > now} | {me}


def plan(
    me: str,
    practices: Iterable[str],
    leases: Mapping[str, Lease],
    held: Mapping[str, int],
    nodes: Mapping[str, datetime],
    now: datetime,
) -> Plan:
    """What node ``me`` does this round.

    ``practices``: the practices that should run somewhere (registered, not offboarded; empty
    while ``me`` shuts down); ``leases``: the lease rows of other owners (a row of ``me``'s own
    that ``held`` lacks is a leftover, taken as a free one); ``held``: office → term of the
    leases this process holds; ``nodes``: node → heartbeat expiry; ``now``: the database's time.
    """
    live = live_nodes(me, nodes, now)
    if live == {me}:  # alone: everything hashes to me (no hashing: tens of thousands each round)
        wanted = set(practices)
    else:
        wanted = {o for o in practices if desired_owner(o, live) == me}
    acquire, renew, release = [], [], []
    waits = [expires_at for n, expires_at in nodes.items() if n != me and expires_at > now]
    for office_id in sorted(wanted | set(held)):
        if office_id in held:
            (renew if office_id in wanted else release).append(office_id)
            continue
        lease = leases.get(office_id)
        if lease is None or lease.expires_at <= now or lease.owner == me:
            acquire.append(office_id)
        else:
            waits.append(lease.expires_at)
    return Plan(tuple(acquire), tuple(renew), tuple(release), min(waits, default=None))


# --- the app-level budget across nodes -------------------------------------------------------

APP_RESERVE = 0.1  # of the app-level limit: left for a node that starts, which uses only this at first


class AppShare(msgspec.Struct, frozen=True):
    """This node's share of the application's app-level limit (``fraction``), and a larger share
    it takes up at local time ``raise_at`` (``raise_to``)."""

    fraction: float
    raise_to: float | None = None
    raise_at: float | None = None


def app_share(prev: AppShare | None, live: int, now: float, started: float, ttl: float, window: float) -> AppShare:
    """This node's share of the app-level limit, with ``live`` nodes in the lease table.

    Sikka counts app-level calls for the whole application, so each node sends at most
    (1 − ``APP_RESERVE``) / ``live`` of the limit, each under its own sliding log (``window``:
    60 s + its margin). Changes never let the nodes together pass the limit in any window:

    - a share that shrinks (a node joined: the others see it within a lease round, at once
      through ``NOTIFY leases``) applies at once;
    - a share that grows (a node left) waits one ``window``, until the leaver's last sends have
      left every window;
    - a node that starts sends at most ``APP_RESERVE`` for one window plus a lease TTL (time for
      the others to see it and for their older sends to leave the window): the reserve is what
      the others leave unused. The same covers a restarted node whose earlier run just sent.

    ``now``, ``started`` (when this node joined): local monotonic seconds. Pure.
    """
    target = (1.0 - APP_RESERVE) / max(1, live)
    warm_until = started + window + ttl
    if now < warm_until:
        return AppShare(fraction=min(target, APP_RESERVE), raise_to=target, raise_at=warm_until)
    current = prev.fraction if prev is not None else APP_RESERVE
    if target <= current:
        return AppShare(fraction=target)
    if prev is not None and prev.raise_to == target and prev.raise_at is not None:
        return AppShare(fraction=target) if now >= prev.raise_at else prev
    return AppShare(fraction=current, raise_to=target, raise_at=now + window)


class Timing(msgspec.Struct, frozen=True):
    """Local safety margins for a lease of ``ttl`` seconds (see the module docstring)."""

    ttl: float

    @property
    def renew_every(self) -> float:
        return self.ttl / 4

    @property
    def stop_after(self) -> float:
        return self.ttl / 2

    @property
    def cancel_after(self) -> float:
        return self.ttl * 0.9


def guard(renewed_at: float, now: float, timing: Timing) -> str:
    """``"ok"``, ``"stop"`` (let the actor finish its step) or ``"cancel"`` (cancel it now) for
    an actor whose lease was last renewed (request sent) at local time ``renewed_at``."""
    age = now - renewed_at
    if age >= timing.cancel_after:
        return "cancel"
    if age >= timing.stop_after:
        return "stop"
    return "ok"
