"""The DCS contract, run on the in-memory store and on real etcd (`harness` is parametrized).

`pytest -m "not integration"` runs the in-memory half only.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from dcs_harness import Harness

from haagent.dcs.errors import LeaderKeyLost
from haagent.dcs.model import HistoryEntry

MEMBER = {
    "conn_url": "postgres://127.0.0.11:5432/postgres",
    "api_url": "http://127.0.0.11:8008/patroni",
    "state": "running",
    "role": "replica",
    "version": "4.1.0",
}


async def test_concurrent_leader_races_have_exactly_one_winner(harness: Harness) -> None:
    a = await harness.open("a")
    b = await harness.open("b")
    wins = {"a": 0, "b": 0}
    for _ in range(100):
        took = await asyncio.gather(a.take_leader(), b.take_leader())
        assert sorted(took) == [False, True]
        winner, loser = (a, b) if took[0] else (b, a)
        wins[winner.name] += 1
        assert (await harness.raw())["leader"] == winner.name.encode()
        assert winner.view().leader_name == winner.name
        assert not await loser.release_leader()
        assert await winner.release_leader()
        assert "leader" not in await harness.raw()
    assert wins["a"] + wins["b"] == 100


async def test_take_leader_is_true_while_we_hold_it(harness: Harness) -> None:
    a = await harness.open("a")
    assert await a.take_leader()
    assert await a.take_leader()
    leader = a.view().leader
    assert leader is not None and leader.name == "a" and leader.lease_id == a.lease_id


async def test_release_is_refused_when_another_member_holds_the_key(harness: Harness) -> None:
    a = await harness.open("a")
    b = await harness.open("b")
    assert await a.take_leader()
    assert not await b.release_leader()
    assert (await harness.raw())["leader"] == b"a"
    assert await a.release_leader()
    assert await b.release_leader()  # nothing to release: not refused


async def test_renew_fails_cleanly_when_the_key_was_taken_over(harness: Harness) -> None:
    a = await harness.open("a")
    b = await harness.open("b")
    assert await a.take_leader()
    await harness.raw_delete("leader")
    assert await b.take_leader()
    with pytest.raises(LeaderKeyLost, match="held by b"):
        await a.renew_leader()
    assert (await harness.raw())["leader"] == b"b"


async def test_renew_fails_when_the_key_is_gone(harness: Harness) -> None:
    a = await harness.open("a")
    assert await a.take_leader()
    await harness.raw_delete("leader")
    with pytest.raises(LeaderKeyLost, match="is gone"):
        await a.renew_leader()
    assert "leader" not in await harness.raw()


async def test_renew_moves_our_key_to_a_new_lease_after_a_restart(harness: Harness) -> None:
    first = await harness.open("a")
    assert await first.take_leader()
    old_lease = first.lease_id
    await first.close()
    harness.clients.remove(first)
    second = await harness.open("a")
    assert second.lease_id != old_lease
    await second.renew_leader()
    leader = second.view().leader
    assert leader is not None and leader.name == "a" and leader.lease_id == second.lease_id


async def test_renewing_keeps_the_key_past_its_ttl(harness: Harness) -> None:
    a = await harness.open("a", ttl=2)
    assert await a.take_leader()
    for _ in range(4):
        await harness.advance(1.0)
        await a.renew_leader()
    assert (await harness.raw())["leader"] == b"a"


async def test_the_key_vanishes_within_ttl_after_renewals_stop(harness: Harness) -> None:
    ttl = 2
    holder = await harness.open("a", ttl=ttl)
    watcher = await harness.open("b")
    assert await holder.take_leader()
    stopped = time.monotonic()
    await holder.close()  # stops renewing; the key stays until the lease expires
    harness.clients.remove(holder)
    assert watcher.view().leader_name == "a"
    watcher.changed.clear()
    waited = 0.0
    while watcher.view().leader is not None and waited < ttl + 1:
        await harness.advance(0.05)
        waited += 0.05
    elapsed = time.monotonic() - stopped if harness.kind == "etcd" else waited
    print(f"\n[{harness.kind}] leader key gone {elapsed:.2f}s after the last renewal (ttl {ttl}s)")
    assert elapsed <= ttl + 1
    assert "leader" not in await harness.raw()
    assert watcher.view().leader is None
    assert watcher.changed.is_set()


async def test_touch_member_skips_unchanged_values_but_repairs_a_lost_key(
    harness: Harness,
) -> None:
    a = await harness.open("a")
    await a.touch_member(MEMBER)
    first = a.view().members["a"].mod_revision
    await a.touch_member(MEMBER)
    assert a.view().members["a"].mod_revision == first
    await a.touch_member({**MEMBER, "state": "stopped"})
    assert a.view().members["a"].state == "stopped"
    await harness.raw_delete("members/a")
    await a.refresh()
    await a.touch_member({**MEMBER, "state": "stopped"})
    assert "members/a" in await harness.raw()
    await a.delete_member()
    assert "members/a" not in await harness.raw()


async def test_members_live_under_the_lease(harness: Harness) -> None:
    a = await harness.open("a", ttl=2)
    b = await harness.open("b")
    await a.touch_member(MEMBER)
    await harness.advance(0.1)
    assert "a" in b.view().members
    await a.close()
    harness.clients.remove(a)
    await harness.advance(3.0)
    assert "a" not in b.view().members


async def test_initialize_race_has_one_winner(harness: Harness) -> None:
    a = await harness.open("a")
    b = await harness.open("b")
    assert sorted(await asyncio.gather(a.race_initialize(), b.race_initialize())) == [False, True]
    assert (await harness.raw())["initialize"] == b""
    assert a.view().initialize == ""
    await a.set_initialize("7331955813123612345")
    assert (await harness.raw())["initialize"] == b"7331955813123612345"
    await a.cancel_initialize()
    assert "initialize" not in await harness.raw()
    assert await b.race_initialize("42")


async def test_config_compare_and_swap(harness: Harness) -> None:
    a = await harness.open("a")
    config = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
    assert await a.write_config(config, expected_revision=0)
    assert not await a.write_config(config, expected_revision=0)
    revision = a.view().config_revision
    assert revision > 0
    assert await a.write_config({**config, "ttl": 40}, expected_revision=revision)
    assert not await a.write_config({**config, "ttl": 50}, expected_revision=revision)
    config_now = a.view().config
    assert config_now is not None and config_now.ttl == 40
    assert await a.write_config({**config, "ttl": 60}, expected_revision=None)
    assert (await harness.raw())["config"] == b'{"ttl":60,"loop_wait":10,"retry_timeout":10}'


async def test_sync_compare_and_swap(harness: Harness) -> None:
    a = await harness.open("a")
    assert await a.write_sync("a", ["c", "b"], expected_revision=0)
    assert (await harness.raw())["sync"] == b'{"leader":"a","sync_standby":"b,c","quorum":0}'
    sync = a.view().sync
    assert sync is not None and sync.sync_standby == ("b", "c")
    assert not await a.write_sync("a", [], expected_revision=sync.mod_revision - 1)
    assert await a.write_sync("a", [], quorum=1, expected_revision=sync.mod_revision)
    assert (await harness.raw())["sync"] == b'{"leader":"a","sync_standby":null,"quorum":1}'


async def test_failover_request_wakes_the_other_members_and_clears_with_braces(
    harness: Harness,
) -> None:
    a = await harness.open("a")
    b = await harness.open("b")
    b.changed.clear()
    at = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    assert await a.write_failover(leader="a", candidate="b", scheduled_at=at)
    await asyncio.wait_for(b.changed.wait(), 2)
    failover = b.view().failover
    assert failover is not None and (failover.leader, failover.candidate) == ("a", "b")
    assert failover.scheduled_at == at
    b.changed.clear()
    stale = b.view().failover_revision - 1
    assert not await b.clear_failover(expected_revision=stale)
    assert await b.clear_failover(expected_revision=b.view().failover_revision)
    assert (await harness.raw())["failover"] == b"{}"
    assert b.view().failover is None and b.view().failover_revision > 0
    await asyncio.wait_for(b.changed.wait(), 2)


async def test_member_writes_do_not_wake_the_loop_but_leader_changes_do(harness: Harness) -> None:
    a = await harness.open("a")
    b = await harness.open("b")
    b.changed.clear()
    await a.touch_member(MEMBER)
    await a.write_status(100, {})
    await harness.advance(0.2)
    assert "a" in b.view().members and not b.changed.is_set()
    await a.take_leader()
    await asyncio.wait_for(b.changed.wait(), 2)
    assert b.view().leader_name == "a"


async def test_status_history_and_failsafe_values(harness: Harness) -> None:
    a = await harness.open("a")
    await a.write_status(67109064, {"b": 67108960}, ["b"])
    revision = a.view().revision
    await a.write_status(67109064, {"b": 67108960}, ["b"])  # unchanged: not written
    assert a.view().revision == revision
    await a.write_history([HistoryEntry(1, 25623960, "no recovery target specified")])
    await a.write_failsafe({"a": "http://127.0.0.11:8008/patroni"})
    raw = await harness.raw()
    assert raw["status"] == b'{"optime":67109064,"slots":{"b":67108960},"retain_slots":["b"]}'
    assert raw["history"] == b'[[1,25623960,"no recovery target specified"]]'
    assert raw["failsafe"] == b'{"a":"http://127.0.0.11:8008/patroni"}'
    assert a.view().status.optime == 67109064 and a.view().history[0].lsn == 25623960


async def test_bad_json_in_a_key_does_not_break_the_view(harness: Harness) -> None:
    a = await harness.open("a")
    await a.touch_member(MEMBER)
    await harness.raw_put("members/broken", b"{not json")
    await harness.raw_put("config", b"[]")
    view = await a.refresh()
    assert list(view.members) == ["a"]
    assert view.config is None and view.config_revision > 0
    assert await a.write_config({"ttl": 30}, expected_revision=view.config_revision)


async def test_set_ttl_moves_the_keys_to_a_new_lease(harness: Harness) -> None:
    a = await harness.open("a", ttl=5)
    assert await a.take_leader()
    await a.touch_member(MEMBER)
    old = a.lease_id
    a.set_ttl(6)
    await a.renew_leader()
    await a.touch_member(MEMBER)
    assert a.lease_id != old
    leader = a.view().leader
    assert leader is not None and leader.lease_id == a.lease_id
    assert a.raw()["members/a"].lease == a.lease_id


async def test_delete_cluster_removes_every_key(harness: Harness) -> None:
    a = await harness.open("a")
    await a.take_leader()
    await a.touch_member(MEMBER)
    await a.write_config({"ttl": 30}, expected_revision=None)
    await a.delete_cluster()
    assert await harness.raw() == {}
    view = a.view()
    assert view.leader is None and view.members == {} and view.config is None


async def test_refresh_returns_one_consistent_revision(harness: Harness) -> None:
    a = await harness.open("a")
    b = await harness.open("b")
    await a.take_leader()
    await a.touch_member(MEMBER)
    view = await b.refresh()
    assert view.leader_name == "a" and "a" in view.members
    assert view.revision >= view.members["a"].mod_revision
    assert b.last_contact is not None
