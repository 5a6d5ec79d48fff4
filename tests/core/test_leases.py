"""The pure lease decisions: which practices a node acquires, renews and releases, given the
lease rows, the live nodes and the database's time; and the local safety margins."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from actors.core.leases import Lease, Plan, Timing, desired_owner, guard, plan

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=20)
OFFICES = [f"D{n}" for n in range(300)]


def live(*names: str) -> dict[str, datetime]:
    return {n: LATER for n in names}


def lease(office_id: str, owner: str, term: int = 1, expires_at: datetime = LATER) -> Lease:
    return Lease(office_id, owner, term, expires_at)


def test_a_lone_node_acquires_every_free_practice_at_once():
    assert plan("a", OFFICES, {}, {}, live("a"), NOW) == Plan(acquire=tuple(sorted(OFFICES)))


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
