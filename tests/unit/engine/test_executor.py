"""The executor's contracts, on the in-memory etcd, the fake PostgreSQL and virtual time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Literal

import pytest

from haagent.core import actions as a
from haagent.core.roles import Role
from haagent.core.snapshot import ManualRequest
from haagent.core.topology import REMOTE
from haagent.dcs.model import HistoryEntry
from haagent.postgres.errors import RewindError, StartError
from haagent.postgres.model import Upstream
from haagent.postgres.slots import SlotChanges, SlotDrop, SlotSpec
from support.lone_node import LoneNode, lone_node
from support.virtual_time import VirtualTime

Agent = LoneNode


@pytest.fixture
def agent() -> Iterator[Agent]:
    vt = VirtualTime()
    node = lone_node(vt)
    vt.run(node.pg.bootstrap())
    yield node
    vt.close()


def test_fencing_is_armed_with_the_lease_before_anything_else(agent: Agent) -> None:
    outcome = agent.run(a.TakeLeaderKey(), a.ArmFencing())
    assert outcome.failure is None
    assert agent.guard.armed
    assert agent.guard.expires == agent.loop.keeper.expires
    assert agent.guard.margin == 5.0  # 30/10/10


def test_fencing_cannot_be_armed_without_a_lease(agent: Agent) -> None:
    outcome = agent.run(a.ArmFencing())
    assert outcome.failure is not None and "no lease" in str(outcome.failure)
    assert not agent.guard.armed


def test_fencing_stays_armed_while_postgres_is_a_primary(agent: Agent) -> None:
    agent.run(a.TakeLeaderKey(), a.ArmFencing())
    outcome = agent.run(a.DisarmFencing())
    assert outcome.failure is not None and "still runs as a primary" in str(outcome.failure)
    assert agent.guard.armed
    outcome = agent.run(a.StopPostgres("fast"), a.DisarmFencing())
    assert outcome.failure is None and not agent.guard.armed


def test_a_failing_checkpoint_does_not_keep_the_primary_from_stopping(agent: Agent) -> None:
    async def broken() -> None:
        raise StartError("checkpointer stuck")

    agent.pg.checkpoint = broken  # type: ignore[method-assign]
    outcome = agent.run(a.Checkpoint(), a.StopPostgres("fast"))
    assert outcome.failure is None and not agent.pg.running


def test_a_failed_start_as_primary_is_remembered(agent: Agent) -> None:
    agent.vt.run(agent.pg.stop("fast"))

    async def refuses(role: str, upstream: object) -> None:
        raise StartError("PostgreSQL exited during startup; the log says: bad setting")

    agent.pg.start = refuses  # type: ignore[method-assign,assignment]
    agent.run(a.TakeLeaderKey())
    outcome = agent.run(a.StartPostgres("primary"))
    assert outcome.failure is not None
    assert (
        agent.loop.state.start_failure
        == "PostgreSQL exited during startup; the log says: bad setting"
    )


def test_every_action_type_has_a_handler(agent: Agent) -> None:
    assert agent.loop.executor.handled_types == frozenset(a.ACTION_TYPES)


def test_a_failed_rewind_is_remembered_and_the_replica_waits_for_someone_to_decide(
    agent: Agent,
) -> None:
    agent.member("node2")

    async def diverged(upstream: object) -> str:
        raise RewindError("pg_rewind from node2 failed: could not find common ancestor")

    agent.pg.follow = diverged  # type: ignore[method-assign,assignment]
    outcome = agent.run(a.Follow("node2"), role=Role.REPLICA)
    assert outcome.failure is not None and "common ancestor" in str(outcome.failure)
    assert agent.loop.state.rewind_failed == (
        "pg_rewind from node2 failed: could not find common ancestor"
    )
    assert agent.loop.state.following is None


def test_the_peers_answers_and_the_members_seen_lately_are_asked(agent: Agent) -> None:
    other = agent.member("node2")
    agent.run()  # observed: node2 is a member
    agent.vt.run(other.delete_member())  # its key is gone; it may still run PostgreSQL
    outcome = agent.run(a.ObservePeers(), role=Role.REPLICA)
    assert outcome.failure is None
    assert agent.loop.state.peers is not None
    assert set(agent.loop.state.peers) == {"node2"}  # asked although its key is gone
    assert not agent.loop.state.peers["node2"].reachable  # no PostgreSQL there


def test_etcd_that_does_not_answer_is_remembered_until_it_does(agent: Agent) -> None:
    assert agent.run(a.KeepaliveLease(), a.UpdateMember()).failure is None
    agent.store.set_latency("node1", float("inf"))
    outcome = agent.run(a.KeepaliveLease())
    assert outcome.failure is not None and "retry_timeout" in str(outcome.failure)
    assert not agent.loop.state.dcs_ok and "retry_timeout" in (agent.loop.state.dcs_error or "")
    agent.store.set_latency("node1", 0)
    snapshot = agent.vt.run(agent.loop.observe())  # the next cycle reads etcd again
    assert snapshot.dcs_ok and agent.loop.state.dcs_ok and agent.loop.state.dcs_error is None
    assert agent.loop.memory.etcd_seen_at == agent.vt.wall().timestamp()


def test_a_clone_that_fails_is_counted_until_one_works(agent: Agent) -> None:
    agent.member("node2")

    async def unreachable(sources: object, basebackup_only: bool = False) -> None:
        raise RuntimeError("cannot reach node2 to clone it")

    agent.pg.create_replica = unreachable  # type: ignore[method-assign,assignment]
    agent.run(a.CreateReplica("node2"), role=Role.BOOTSTRAPPING)
    agent.run(a.CreateReplica("node2"), role=Role.BOOTSTRAPPING)
    assert agent.loop.state.replica_clone_failures == 2


def test_slot_changes_and_the_status_key_are_carried_out(agent: Agent) -> None:
    agent.run(a.TakeLeaderKey(), a.ArmFencing())
    made = SlotChanges(create=(SlotSpec("node2"), SlotSpec("node3")))
    agent.run(a.EnsureSlots(made), a.WriteStatusKey((("node2", 900),), ("node1", "node2")))
    assert set(agent.pg.slots) == {"node2", "node3"}
    status = agent.loop.dcs.view().status
    assert (status.slots, status.retain_slots) == ({"node2": 900}, ("node1", "node2"))
    assert status.timeline == agent.pg.timeline  # replicas trust positions of their timeline
    agent.run(a.EnsureSlots(SlotChanges(drop=(SlotDrop("node3", None, "gone"),))))
    assert set(agent.pg.slots) == {"node2"}


def test_a_history_entry_is_stamped_by_the_wall_clock(agent: Agent) -> None:
    agent.vt.run(agent.pg.stop("fast"))
    agent.pg.running, agent.pg.in_recovery = True, True  # a standby on disk, running
    agent.run(a.TakeLeaderKey(), a.ArmFencing(), a.Promote(), a.AppendHistory("failover"))
    history = agent.loop.dcs.view().history
    assert [(h.timeline, h.reason, h.new_leader) for h in history] == [(1, "promoted", "node1")]
    assert history[0].timestamp == agent.vt.wall().isoformat()


def test_history_keeps_the_newest_max_timelines_history_rows(agent: Agent) -> None:
    old = [HistoryEntry(timeline=t, lsn=t * 100, reason="failover") for t in range(1, 5)]
    agent.vt.run(agent.loop.dcs.write_history(old))
    agent.vt.run(agent.loop.dcs.write_config({"max_timelines_history": 2}, expected_revision=None))
    agent.vt.run(agent.pg.stop("fast"))
    agent.pg.running, agent.pg.in_recovery = True, True
    agent.pg.timeline = 5
    agent.run(a.TakeLeaderKey(), a.ArmFencing(), a.Promote(), a.AppendHistory("failover"))
    assert [h.timeline for h in agent.loop.dcs.view().history] == [4, 5]


def test_a_request_is_done_once_its_action_is(agent: Agent) -> None:
    assert agent.loop.ask(ManualRequest("restart")) is None
    assert agent.loop.ask(ManualRequest("reinitialize")) == ManualRequest("restart")
    agent.vt.run(agent.pg.stop("fast"))

    async def refuses(role: str, upstream: object) -> None:
        raise StartError("PostgreSQL exited during startup")

    start = agent.pg.start
    agent.pg.start = refuses  # type: ignore[method-assign,assignment]
    agent.run(a.RestartPostgres("primary"))
    assert agent.loop.manual_request == ManualRequest("restart")  # not done: still asked
    agent.pg.start = start  # type: ignore[method-assign]
    assert agent.run(a.RestartPostgres("primary")).failure is None
    assert agent.loop.manual_request is None and agent.pg.writable


def _record_stop_timeouts(agent: Agent) -> list[float | None]:
    seen: list[float | None] = []
    real = agent.pg.stop

    async def stop(
        mode: Literal["smart", "fast", "immediate"], timeout: float | None = None
    ) -> bool:
        seen.append(timeout)
        return await real(mode, timeout)

    agent.pg.stop = stop  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("synchronous", [True, False])
def test_primary_stop_timeout_bounds_the_stop_of_a_synchronous_primary(
    agent: Agent, synchronous: bool
) -> None:
    """As Patroni: `primary_stop_timeout` bounds a primary's fast shutdown in synchronous
    mode only; otherwise the usual pg_ctl_timeout (None) while the lease is kept."""
    raw = {"synchronous_mode": synchronous, "primary_stop_timeout": 7}
    agent.vt.run(agent.loop.dcs.write_config(raw, expected_revision=None))
    seen = _record_stop_timeouts(agent)
    agent.run(a.TakeLeaderKey(), a.ArmFencing())
    outcome = agent.run(a.StopPostgres("fast"))
    assert outcome.failure is None
    assert seen == [7.0 if synchronous else None]


def test_before_stop_runs_before_a_stop_and_not_before_a_demotion(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`before_stop` runs (bounded) before a stop or restart; a demotion stops writes at once
    and skips it, as Patroni does."""
    hooks: list[str] = []

    async def hook(what: str, command: str, timeout: float) -> str | None:
        hooks.append(f"{what}: {command}")
        return None

    monkeypatch.setattr("haagent.engine.executor.run_hook", hook)
    settings = agent.config.settings
    pg = replace(settings.postgresql, before_stop="/usr/local/bin/drain.sh")
    agent.config.reload(replace(settings, postgresql=pg))
    agent.run(a.TakeLeaderKey(), a.ArmFencing())
    outcome = agent.run(a.Demote("fast", None), role=Role.REPLICA)
    assert outcome.failure is None and hooks == []
    outcome = agent.run(a.StopPostgres("fast"), role=Role.REPLICA)
    assert outcome.failure is None
    assert hooks == ["postgresql.before_stop (stop fast): /usr/local/bin/drain.sh"]


def test_an_archive_only_standby_leader_is_restored_then_runs_as_a_standby_of_no_server(
    agent: Agent,
) -> None:
    """standby_cluster without host: the standby leader is built with no source (the methods
    that restore a backup), and started and followed as a standby of no server, whose
    recovery settings are the section's (`conf.py`)."""
    config = {"standby_cluster": {"restore_command": "cp /a/%f %p"}}
    agent.vt.run(agent.dcs.write_config(config, expected_revision=0))
    calls: list[tuple[str, object]] = []

    async def create_replica(sources: object, basebackup_only: bool = False) -> None:
        calls.append(("create_replica", list(sources)))  # type: ignore[call-overload]

    async def start(role: str, upstream: object) -> None:
        calls.append((role, upstream))

    async def follow(upstream: object, *, recheck: bool = False) -> str:
        calls.append(("follow", upstream))
        return "following"

    agent.pg.create_replica = create_replica  # type: ignore[method-assign,assignment]
    agent.vt.run(agent.pg.stop("fast"))
    agent.pg.start = start  # type: ignore[method-assign,assignment]
    agent.pg.follow = follow  # type: ignore[method-assign,assignment]
    outcome = agent.run(
        a.BootstrapStandbyLeader(),
        a.StartPostgres("replica", REMOTE),
        a.Follow(REMOTE),
        role=Role.STANDBY_LEADER,
    )
    assert outcome.failure is None
    assert calls == [("create_replica", []), ("replica", None), ("follow", None)]
    # A member streaming from the standby leader: no server tells the timeline, no check.
    agent.member("node2")
    calls.clear()
    assert agent.run(a.Follow("node2", REMOTE), role=Role.REPLICA).failure is None
    ((_, upstream),) = calls
    assert isinstance(upstream, Upstream) and upstream.name == "node2"
    assert not upstream.checks_timeline and upstream.timeline_source is None


def test_following_the_remote_without_a_standby_cluster_fails_clearly(agent: Agent) -> None:
    outcome = agent.run(a.Follow(REMOTE), role=Role.REPLICA)
    assert outcome.failure is not None and "no standby_cluster section" in str(outcome.failure)
