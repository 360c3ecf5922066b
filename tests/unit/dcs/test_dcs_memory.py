"""The in-memory etcd: etcd's txn and lease rules, watches, and the faults a simulation injects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from haagent.dcs.errors import DCSUnavailable, LeaseNotFound, WatchCompacted
from haagent.dcs.kv import Compare, Delete, Get, KeyValue, Put, WatchBatch, WatchEvent
from haagent.dcs.memory import ManualClock, MemoryDCS, MemoryStore
from haagent.dcs.view import ViewState

P = b"/service/batman/"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> MemoryStore:
    return MemoryStore(clock)


@pytest.fixture
async def pair(store: MemoryStore) -> AsyncIterator[tuple[MemoryDCS, MemoryDCS]]:
    a = MemoryDCS(store, "a", ttl=10, retry_timeout=1)
    b = MemoryDCS(store, "b", ttl=10, retry_timeout=1)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


def live(dcs: MemoryDCS) -> bool:
    return dcs.watch_live


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_compare_follows_etcd_rules_for_absent_keys(store: MemoryStore) -> None:
    key = P + b"leader"
    assert store.txn([Compare(key, "create", 0)], [Put(key, b"a")], []).succeeded
    assert not store.txn([Compare(key, "create", 0)], [Put(key, b"b")], []).succeeded
    absent = P + b"nothing"
    assert not store.txn([Compare(absent, "value", b"")], [], []).succeeded
    assert not store.txn([Compare(absent, "value", b"", "!=")], [], []).succeeded
    assert store.txn([Compare(absent, "mod", 0)], [], []).succeeded
    assert store.txn([Compare(absent, "lease", 0)], [], []).succeeded


def test_a_txn_writes_at_one_revision_and_reports_ranges(store: MemoryStore) -> None:
    before = store.revision
    result = store.txn([], [Put(P + b"x", b"1"), Put(P + b"y", b"2"), Get(P + b"x")], [])
    assert result.revision == before + 1 and result.wrote
    assert [kv.value for kv in result.ranges[0]] == [b"1"]
    assert {kv.mod_revision for kv in store.range(P, P + b"\xff")} == {before + 1}
    nothing = store.txn([], [Delete(P + b"absent")], [])
    assert not nothing.wrote and nothing.revision == before + 1


def test_leases_expire_on_the_injected_clock(store: MemoryStore, clock: ManualClock) -> None:
    lease = store.grant(10)
    store.txn([], [Put(P + b"leader", b"a", lease), Put(P + b"members/a", b"{}", lease)], [])
    clock.advance(9)
    assert store.keepalive(lease) == 10
    clock.advance(9.9)
    assert store.expire() == 0 and store.get(P + b"leader") is not None
    clock.advance(0.2)
    revision = store.revision
    assert store.expire() == 1
    assert store.dump(P) == {}
    assert store.revision == revision + 1  # one revoke, one revision
    assert store.keepalive(lease) == 0


def test_put_under_an_unknown_lease_is_refused(store: MemoryStore) -> None:
    with pytest.raises(LeaseNotFound):
        store.txn([], [Put(P + b"leader", b"a", 12345)], [])
    assert store.dump(P) == {}


async def test_watch_replays_history_and_refuses_compacted_revisions(store: MemoryStore) -> None:
    store.txn([], [Put(P + b"a", b"1")], [])
    store.txn([], [Put(P + b"b", b"2"), Put(b"/other", b"x")], [])
    batches: list[WatchBatch] = []
    done = store.watch("c", P, P[:-1] + b"0", 1, batches.append)
    assert [[e.kv.key for e in b.events] for b in batches] == [[P + b"a"], [P + b"b"]]
    store.unwatch(done)
    store.compact()
    with pytest.raises(WatchCompacted):
        store.watch("c", P, P[:-1] + b"0", 2, batches.append)


async def test_partition_makes_calls_unavailable_until_healed(
    store: MemoryStore, pair: tuple[MemoryDCS, MemoryDCS]
) -> None:
    a, b = pair
    assert await a.take_leader()
    store.partition("a")
    with pytest.raises(DCSUnavailable, match="partitioned"):
        await a.renew_leader()
    await settle()
    assert not live(a)
    await b.write_failover(leader="a", candidate="b", scheduled_at=None)
    assert a.view().failover is None  # cut off: its view is stale
    a.changed.clear()
    store.heal("a")
    await settle()
    assert live(a) and a.changed.is_set()
    failover = a.view().failover
    assert failover is not None and failover.candidate == "b"
    await a.renew_leader()


async def test_view_re_syncs_after_compaction(
    store: MemoryStore, pair: tuple[MemoryDCS, MemoryDCS]
) -> None:
    a, b = pair
    store.break_watches("b")
    await a.take_leader()  # b misses this while its stream is down ...
    store.compact()  # ... and the history it would need is gone
    await settle()
    assert b.watch_live
    assert b.view().leader_name == "a"
    assert b.view().revision == store.revision


async def test_members_vanish_when_their_lease_expires(
    store: MemoryStore, clock: ManualClock, pair: tuple[MemoryDCS, MemoryDCS]
) -> None:
    a, b = pair
    await a.touch_member({"conn_url": "c", "api_url": "u", "state": "running"})
    assert "a" in b.view().members
    clock.advance(9)
    await b.keepalive()
    clock.advance(2)
    store.expire()
    assert "a" not in b.view().members
    assert b.view().members == {}


def test_view_state_never_moves_backwards() -> None:
    woken: list[int] = []
    state = ViewState(P, lambda: woken.append(1))
    leader = KeyValue(P + b"leader", b"a", 5, 5, 1, 9)
    state.apply(WatchBatch(5, (WatchEvent("put", leader),)))
    assert state.view.leader_name == "a" and woken == [1]
    # A full read that was answered before event 5 arrived must not win.
    assert not state.replace(4, [])
    assert state.view.leader_name == "a"
    # Events the view already holds are skipped.
    state.apply(WatchBatch(5, (WatchEvent("delete", KeyValue(P + b"leader", b"", 0, 5)),)))
    assert state.view.leader_name == "a"
    member = KeyValue(P + b"members/a", b"{}", 6, 6)
    state.apply(WatchBatch(6, (WatchEvent("put", member),)))
    assert woken == [1] and state.view.revision == 6  # a member change does not wake the loop
    assert state.replace(7, [leader, member]) and state.view.revision == 7
