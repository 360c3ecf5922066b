"""The executor's contracts, on the in-memory etcd, the fake PostgreSQL and virtual time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from haagent.core import actions as a
from haagent.core.reasons import Code, Reason
from haagent.core.roles import Role
from haagent.core.snapshot import Decision
from haagent.dcs.memory import MemoryDCS, MemoryStore
from haagent.engine.configuration import Configuration
from haagent.engine.executor import Outcome
from haagent.engine.loop import HaLoop
from haagent.postgres.errors import StartError
from haagent_lab.sim.cluster import node_settings
from haagent_lab.sim.fakes import FakePeers, FakeWatchdog, SimGuard
from haagent_lab.sim.postgres import FakePostgres, FakeWorld
from support.snapshots import DynamicConfig
from support.virtual_time import VirtualTime


@dataclass
class Agent:
    vt: VirtualTime
    pg: FakePostgres
    guard: SimGuard
    loop: HaLoop

    def run(self, *actions: a.Action, role: Role = Role.PRIMARY) -> Outcome:
        async def go() -> Outcome:
            snapshot = await self.loop.observe()
            decision = Decision(tuple(actions), Reason(Code.LEADER_RENEWED, "test"), role)
            return await self.loop.executor.run(decision, snapshot)

        return self.vt.run(go())


@pytest.fixture
def agent() -> Iterator[Agent]:
    vt = VirtualTime()
    store = MemoryStore(vt.clock)
    settings = node_settings("node1", DynamicConfig())
    dcs = MemoryDCS.from_settings(store, settings)
    world = FakeWorld()
    pg = FakePostgres("node1", world)
    guard = SimGuard()
    loop = HaLoop(
        Configuration(settings),
        dcs,
        pg,
        FakeWatchdog(vt.clock),
        FakePeers(world, "node1"),
        clocks=vt.clocks,
        fence=guard,
    )
    vt.run(dcs.open())
    vt.run(pg.bootstrap())
    yield Agent(vt, pg, guard, loop)
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
