"""The pure lease decisions: which practices a node acquires, renews and releases, given the
lease rows, the live nodes and the database's time; the local safety margins; and each node's
share of the app-level budget as nodes join, leave and restart."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.leases import APP_RESERVE, AppShare, Lease, Plan, Timing, app_share, desired_owner, guard, plan
from actors.core.ratelimit import RESERVE, Budget, Lane

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=20)
OFFICES = [f"D{n}" for n in range(300)]


def live(*names: str) -> dict[str, datetime]:
    return {n: LATER for n in names}


def lease(office_id: str, owner: str, term: int = 1, expires_at: datetime = LATER) -> Lease:
    return Lease(office_id, owner, term, expires_at)


def test_a_lone_node_acquires_every_free_practice_at_once():
    assert plan("a", OFFICES, {}, {}, live("a"), NOW) == Plan(acquire=tuple(sorted(OFFICES)))


def test_a_lone_node_plans_without_hashing(monkeypatch):
    """Regression: every round hashed each practice against the one live node (20,000 hashes
    every 7.5 s in a worker thread, holding the GIL the event loop waits for)."""
    import actors.core.leases as module

    monkeypatch.setattr(module, "rank", lambda node_id, office_id: pytest.fail("hashed"))
    held = {"D1": 3}
    assert plan("a", OFFICES, {}, held, live("a"), NOW) == Plan(
        acquire=tuple(sorted(set(OFFICES) - {"D1"})), renew=("D1",)
    )


def test_a_lone_node_counts_itself_live_before_its_heartbeat_is_seen():
    assert plan("a", ["D1"], {}, {}, {}, NOW).acquire == ("D1",)


def test_rendezvous_spreads_practices_evenly_and_moves_only_a_leaving_nodes_share():
    three = {o: desired_owner(o, ["a", "b", "c"]) for o in OFFICES}
    counts = Counter(three.values())
    assert set(counts) == {"a", "b", "c"} and min(counts.values()) >= 70, counts
    two = {o: desired_owner(o, ["a", "c"]) for o in OFFICES}
    assert all(two[o] == three[o] for o in OFFICES if three[o] != "b")


def test_renews_what_it_holds_and_releases_what_hashes_to_a_new_node():
    ours = [o for o in OFFICES if desired_owner(o, ["a"]) == "a"]
    held = {o: 1 for o in ours}
    leases = {o: lease(o, "a") for o in ours}
    alone = plan("a", OFFICES, leases, held, live("a"), NOW)
    assert alone.renew == tuple(sorted(ours)) and alone.release == () and alone.acquire == ()
    joined = plan("a", OFFICES, leases, held, live("a", "b"), NOW)
    moving = {o for o in ours if desired_owner(o, ["a", "b"]) == "b"}
    assert set(joined.release) == moving and moving
    assert set(joined.renew) == set(ours) - moving


def test_waits_for_a_live_lease_held_by_another_node_until_it_expires():
    office = next(o for o in OFFICES if desired_owner(o, ["a", "b"]) == "a")
    expiry = NOW + timedelta(seconds=3)
    p = plan("a", [office], {office: lease(office, "b", expires_at=expiry)}, {}, live("a", "b"), NOW)
    assert p.acquire == () and p.recheck_at == expiry


def test_takes_over_an_expired_lease_and_a_dead_nodes_share():
    office = next(o for o in OFFICES if desired_owner(o, ["a", "b"]) == "b")
    dead = {"a": LATER, "b": NOW - timedelta(seconds=1)}
    expired = {office: lease(office, "b", expires_at=NOW - timedelta(seconds=1))}
    assert plan("a", [office], expired, {}, dead, NOW).acquire == (office,)


def test_rechecks_when_a_peers_heartbeat_would_expire():
    office = next(o for o in OFFICES if desired_owner(o, ["a", "b"]) == "b")
    peer_expiry = NOW + timedelta(seconds=4)
    p = plan("a", [office], {office: lease(office, "b", expires_at=LATER)}, {}, {"a": LATER, "b": peer_expiry}, NOW)
    assert p.acquire == () and p.recheck_at == peer_expiry


def test_reclaims_a_lease_left_by_an_earlier_run_of_the_same_node():
    p = plan("a", ["D1"], {"D1": lease("D1", "a", term=7)}, {}, live("a"), NOW)
    assert p.acquire == ("D1",)


def test_a_closing_node_releases_everything():
    held = {"D1": 3, "D2": 1}
    p = plan("a", [], {o: lease(o, "a", t) for o, t in held.items()}, held, live("a", "b"), NOW)
    assert p == Plan(release=("D1", "D2"), recheck_at=LATER)


def test_an_offboarded_practice_held_is_released():
    assert plan("a", [], {"D1": lease("D1", "a")}, {"D1": 1}, live("a"), NOW).release == ("D1",)


@given(
    st.sets(st.sampled_from(["a", "b", "c", "d"]), min_size=1),
    st.lists(st.sampled_from(OFFICES[:40]), unique=True, max_size=40),
)
def test_nodes_with_one_view_never_both_take_a_practice(nodes, offices):
    """With every lease free, nodes that see the same live set acquire disjoint shares covering all."""
    view = live(*nodes)
    plans = {n: plan(n, offices, {}, {}, view, NOW) for n in nodes}
    taken = [o for p in plans.values() for o in p.acquire]
    assert sorted(taken) == sorted(offices)


def test_safety_margins_stop_then_cancel_before_the_lease_can_expire():
    timing = Timing(5.0)
    assert timing.renew_every == 1.25
    assert guard(100.0, 101.2, timing) == "ok"  # renewed at most one period ago
    assert guard(100.0, 102.5, timing) == "stop"  # two renewals missed: finish the step
    assert guard(100.0, 104.5, timing) == "cancel"  # half a second before the lease could expire
    assert timing.cancel_after < timing.ttl


# --- the app-level budget across nodes -------------------------------------------------------

TTL = 30.0
SPAN = 60.5  # the budget's window + margin


def test_a_lone_node_starts_on_the_reserve_then_takes_all_but_the_reserve():
    first = app_share(None, 1, now=0.0, started=0.0, ttl=TTL, window=SPAN)
    assert first.fraction == APP_RESERVE and first.raise_at == SPAN + TTL
    later = app_share(first, 1, now=SPAN + TTL, started=0.0, ttl=TTL, window=SPAN)
    assert later.fraction == pytest.approx(1 - APP_RESERVE)


def test_a_joining_node_shrinks_the_share_at_once_and_a_leaving_one_grows_it_a_window_later():
    alone = AppShare(fraction=1 - APP_RESERVE)
    joined = app_share(alone, 2, now=500.0, started=0.0, ttl=TTL, window=SPAN)
    assert joined.fraction == pytest.approx((1 - APP_RESERVE) / 2)
    left = app_share(joined, 1, now=600.0, started=0.0, ttl=TTL, window=SPAN)
    assert left.fraction == joined.fraction and left.raise_at == 600.0 + SPAN  # the leaver's sends still count
    assert app_share(left, 1, now=650.0, started=0.0, ttl=TTL, window=SPAN) == left
    assert app_share(left, 1, now=600.0 + SPAN, started=0.0, ttl=TTL, window=SPAN).fraction == pytest.approx(0.9)


def max_in_window(sends: list[float], window: float = 60.0) -> int:
    sends, best, j = sorted(sends), 0, 0
    for i, t in enumerate(sends):
        while sends[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@settings(max_examples=25, deadline=None)
@given(
    changes=st.lists(st.tuples(st.sampled_from(["join", "leave", "restart"]), st.floats(0, TTL / 4)), max_size=6),
    limit=st.sampled_from([20, 200]),
)
def test_nodes_joining_leaving_and_restarting_never_pass_the_app_limit_together(changes, limit):
    """Every node sends as fast as its share allows; one membership change at a time (each ≥ one
    window + TTL after the last), seen by the others after up to a lease round (``delay``).
    Together they never send more than the limit in any 60 s."""
    step, horizon = 0.25, 100.0 * (len(changes) + 2)
    nodes = {"n0": {"budget": Budget(limit), "started": 0.0, "share": None, "sends": []}}
    live = {"n0"}
    seen: list[tuple[float, int]] = [(0.0, 1)]  # (from when the others know, live count)
    retired: list[float] = []
    for k, (kind, delay) in enumerate(changes):
        at_s = 100.0 * (k + 1)
        name = f"n{k + 1}"
        if kind == "leave" and len(live) > 1:
            gone = sorted(live)[0]
            retired += nodes[gone]["sends"]
            nodes[gone]["stop"] = at_s
            live.discard(gone)
        elif kind == "restart":
            old = sorted(live)[0]
            nodes[old]["stop"] = at_s  # the old run ends; a new one starts at once with a fresh log
            live.discard(old)
            live.add(name)
            nodes[name] = {"budget": Budget(limit), "started": at_s, "share": None, "sends": []}
        else:
            live.add(name)
            nodes[name] = {"budget": Budget(limit), "started": at_s, "share": None, "sends": []}
        seen.append((at_s + delay, len(live)))
    t = 0.0
    while t < horizon:
        for name, node in nodes.items():
            if not (node["started"] <= t < node.get("stop", float("inf"))):
                continue
            count = [n for since, n in seen if since <= t][-1] if t > node["started"] else len(
                [m for m in nodes.values() if m["started"] <= t < m.get("stop", float("inf"))]
            )
            node["share"] = app_share(node["share"], count, t, node["started"], TTL, SPAN)
            budget = node["budget"]
            budget.set_share(node["share"].fraction)
            while budget.allowed_at(Lane.STATUS, t) <= t and budget.take(Lane.STATUS, t):
                node["sends"].append(t)
        t += step
    every = [s for node in nodes.values() for s in node["sends"]]
    assert max_in_window(every) <= limit
    if not changes:  # a lone node, once warmed up, uses its whole share (less the lane's reserve)
        assert max_in_window(nodes["n0"]["sends"]) == int(limit * (1 - APP_RESERVE)) - RESERVE[Lane.STATUS]
