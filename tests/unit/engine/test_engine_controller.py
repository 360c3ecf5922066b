"""The REST requests as the agent answers them (Patroni's codes): on a stub loop, and on the
real HA loops of a simulated cluster (in-memory etcd and PostgreSQL, virtual time)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from haagent.core.snapshot import ManualRequest
from haagent.dcs.memory import MemoryDCS, MemoryStore
from haagent.engine.agent_requests import RELOAD_REFUSED, AgentRequests
from haagent.engine.clock import system_clocks
from haagent.engine.loop import HaLoop
from haagent.engine.requests import (
    FailsafeRequest,
    ReinitializeRequest,
    ReloadRequest,
    RestartRequest,
    SwitchoverRequest,
)
from haagent.engine.status import PublishedStatus
from haagent_lab.fake_api import primary_status, replica_status
from haagent_lab.sim.cluster import Simulation, node_settings
from support.snapshots import DynamicConfig


class StubLoop:
    """What the controller uses of the HA loop (its methods): its status, requests, wake-ups
    and config; `state.manual` records the request handed over."""

    def __init__(self, status: PublishedStatus) -> None:
        self.current = status
        self.state = SimpleNamespace(manual=None)
        self.wake = asyncio.Event()
        self.config = status.config
        self.manual_requests: list[Any] = []

    def status(self) -> PublishedStatus:
        return self.current

    def wake_up(self) -> None:
        self.wake.set()

    def ask(self, manual: ManualRequest) -> ManualRequest | None:
        busy: ManualRequest | None = self.state.manual
        if busy is None:
            self.state.manual = manual
            self.wake_up()
        return busy

    @property
    def manual_request(self) -> ManualRequest | None:
        manual: ManualRequest | None = self.state.manual
        return manual

    async def next_cycle(self, timeout: float | None = None) -> bool:
        await asyncio.sleep(timeout if timeout is not None else 3600)  # no cycle ever runs
        return False


def controller(status: PublishedStatus, reload: str = "reloaded") -> tuple[AgentRequests, StubLoop]:
    loop = StubLoop(status)
    dcs = MemoryDCS(MemoryStore(), status.name)
    ctl = AgentRequests(cast(HaLoop, loop), dcs, clocks=system_clocks(), reload=lambda: reload)
    return ctl, loop


def test_reload_answers_202_like_patroni() -> None:
    ctl, loop = controller(replica_status())
    result = asyncio.run(ctl.submit(ReloadRequest()))
    assert (result.status, result.message) == (202, "reloaded")
    assert loop.wake.is_set()
    refused, _ = controller(replica_status(), reload=f"{RELOAD_REFUSED}: bad ttl")
    result = asyncio.run(refused.submit(ReloadRequest()))
    assert result.status == 503 and "bad ttl" in result.message


async def test_a_scheduled_restart_checks_its_role_when_due(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctl, loop = controller(replica_status())
    soon = datetime.now(UTC) + timedelta(seconds=0.2)
    result = await ctl.submit(RestartRequest(schedule=soon, role="primary"))
    assert result.status == 202, result.message
    with caplog.at_level(logging.INFO, logger="haagent.engine"):
        await asyncio.sleep(0.5)
    assert loop.state.manual is None  # not restarted: this node is a replica
    assert [r.getMessage() for r in caplog.records] == [
        "scheduled restart not done: restart conditions are not satisfied: "
        "role is replica, not primary"
    ]


async def test_a_scheduled_restart_whose_role_matches_runs_when_due() -> None:
    ctl, loop = controller(primary_status())
    soon = datetime.now(UTC) + timedelta(seconds=0.1)
    assert (await ctl.submit(RestartRequest(schedule=soon, role="primary"))).status == 202
    await asyncio.wait_for(loop.wake.wait(), 5)  # the restart handed to the loop when due
    assert loop.state.manual is not None and loop.state.manual.kind == "restart"
    loop.state.manual = None  # the loop did it


async def test_an_immediate_restart_that_does_not_match_answers_503() -> None:
    ctl, loop = controller(replica_status())
    result = await ctl.submit(RestartRequest(role="primary"))
    assert result.status == 503
    assert result.message == ("restart conditions are not satisfied: role is replica, not primary")
    result = await ctl.submit(RestartRequest(restart_pending=True))
    assert result.status == 503 and "no restart is pending" in result.message
    assert loop.state.manual is None


async def test_a_config_naming_a_replica_method_without_a_section_here_is_written() -> None:
    """PATCH /config: a standby_cluster.create_replica_methods name with no section
    postgresql.NAME here is written (the command of that name runs, as Patroni's); a name
    that cannot be a method is refused with its key path, and nothing is written."""
    ctl, loop = controller(replica_status())
    loop.settings = node_settings("node1", DynamicConfig())  # type: ignore[attr-defined]
    await ctl.dcs.open()
    section = {"restore_command": "cp /a/%f %p", "create_replica_methods": ["a b"]}
    result = await ctl.patch_config({"standby_cluster": section})
    assert result.status == 400
    assert "standby_cluster.create_replica_methods[0]" in result.message
    assert ctl.dcs.view().config is None
    section["create_replica_methods"] = ["wal-g"]
    assert (await ctl.patch_config({"standby_cluster": section})).status == 200


# --- on the real HA loops of a simulated cluster (in-memory etcd and PostgreSQL)

FAST = DynamicConfig(ttl=10, loop_wait=2, retry_timeout=3)


@pytest.fixture
def sim() -> Iterator[Simulation]:
    cluster = Simulation(config=FAST)
    try:
        cluster.start_all()
        cluster.run_for(30)
        assert cluster.primary() is not None and len(cluster.streaming_replicas()) == 2
        yield cluster
    finally:
        cluster.close()


def requests_of(sim: Simulation, name: str) -> AgentRequests:
    """The node's side of its REST API, as the daemon builds it."""
    node = sim.nodes[name]
    assert node.agent is not None and node.dcs is not None
    return AgentRequests(node.agent, node.dcs, clocks=sim.clocks)


def roles(sim: Simulation) -> tuple[str, str, str]:
    primary = sim.primary()
    assert primary is not None
    first, second = sorted(n for n in sim.nodes if n != primary)
    return primary, first, second


def test_a_switchover_answers_once_the_candidate_holds_the_key(sim: Simulation) -> None:
    old, candidate, _ = roles(sim)
    request = SwitchoverRequest(leader=old, candidate=candidate)
    result = sim.call(old, requests_of(sim, old).submit(request))
    assert (result.status, result.message) == (200, f'Successfully switched over to "{candidate}"')
    assert sim.leader_key() == candidate
    sim.run_for(10)
    assert sim.primary() == candidate and old in sim.streaming_replicas()


def test_a_switchover_to_a_stranger_or_from_the_wrong_leader_is_refused(sim: Simulation) -> None:
    leader, replica, _ = roles(sim)
    api = requests_of(sim, replica)
    result = sim.call(replica, api.submit(SwitchoverRequest(leader=leader, candidate="nobody")))
    assert (result.status, result.message) == (
        412,
        "candidate nobody is not a member of the cluster",
    )
    result = sim.call(replica, api.submit(SwitchoverRequest(leader=replica)))
    assert (result.status, result.message) == (
        412,
        f"leader name does not match: the leader is {leader}",
    )
    node = sim.nodes[leader]
    assert node.dcs is not None and node.dcs.view().failover is None
    assert sim.primary() == leader


def test_a_restart_answers_once_the_loop_restarted_postgres(sim: Simulation) -> None:
    _, replica, _ = roles(sim)
    since = sim.clock()
    result = sim.call(replica, requests_of(sim, replica).submit(RestartRequest()))
    assert (result.status, result.message) == (200, "restarted successfully")
    assert "restarting" in sim.codes(replica, since=since)
    agent = sim.nodes[replica].agent
    assert agent is not None and agent.manual_request is None


def test_one_restart_or_reinitialize_at_a_time(sim: Simulation) -> None:
    _, replica, _ = roles(sim)
    node = sim.nodes[replica]
    assert node.loop is not None
    node.pg.hang("stop")  # the restart cannot finish yet
    first = node.loop.create_task(requests_of(sim, replica).submit(RestartRequest()))
    sim.run_for(3)
    second = sim.call(replica, requests_of(sim, replica).submit(ReinitializeRequest()))
    assert (second.status, second.message) == (503, "a restart is already in progress")
    node.pg.unhang("stop")
    sim.run_for(5)
    assert first.done() and first.result().status == 200


def test_reinitialize_a_replica_not_the_leader(sim: Simulation) -> None:
    leader, replica, _ = roles(sim)
    result = sim.call(leader, requests_of(sim, leader).submit(ReinitializeRequest()))
    assert (result.status, result.message) == (
        503,
        "this node is the leader: it cannot be reinitialized",
    )
    since = sim.clock()
    result = sim.call(replica, requests_of(sim, replica).submit(ReinitializeRequest()), 120)
    assert (result.status, result.message) == (200, "reinitialized successfully")
    assert "reinitializing" in sim.codes(replica, since=since)
    sim.run_for(10)
    assert replica in sim.streaming_replicas()


def test_a_leader_s_failsafe_call_is_remembered_by_the_loop(sim: Simulation) -> None:
    leader, replica, _ = roles(sim)
    api = requests_of(sim, replica)
    result = sim.call(replica, api.submit(FailsafeRequest(leader=replica)))
    assert (result.status, result.message) == (
        409,
        f"{leader} is the leader known here, not {replica}",
    )
    agent = sim.nodes[replica].agent
    assert agent is not None and agent.state.failsafe_heard_at is None
    result = sim.call(replica, api.submit(FailsafeRequest(leader=leader)))
    assert (result.status, result.message) == (200, "Accepted")
    assert agent.state.failsafe_heard_at == sim.clock()
