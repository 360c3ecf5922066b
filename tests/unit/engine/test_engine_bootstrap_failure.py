"""A bootstrap that fails for a reason retrying cannot fix stops the agent, once, saying why."""

from __future__ import annotations

import asyncio

import pytest

from haagent.config.model import DynamicConfig
from haagent.dcs.memory import ManualClock, MemoryDCS, MemoryStore
from haagent.engine.clock import Clocks, utc_now
from haagent.engine.configuration import Configuration
from haagent.engine.fatal import AgentStop
from haagent.engine.loop import HaLoop
from haagent.postgres.bootstrap import post_bootstrap_dsn
from haagent.postgres.errors import BootstrapError
from haagent_lab.sim.cluster import node_settings
from haagent_lab.sim.fakes import FakePeers, FakeWatchdog
from haagent_lab.sim.postgres import FakePostgres, FakeWorld

FAILURE = "bootstrap.post_bootstrap '/bin/false' exited with 1: line one\nline two"


class FailingBootstrap(FakePostgres):
    def __init__(self, name: str, world: FakeWorld, error: Exception) -> None:
        super().__init__(name, world)
        self.error = error
        self.attempts = 0

    async def bootstrap(self) -> None:
        self.attempts += 1
        raise self.error


async def loop_with(error: Exception) -> tuple[HaLoop, MemoryDCS, FailingBootstrap]:
    clock = ManualClock(1000.0)
    store = MemoryStore(clock)
    settings = node_settings("node1", DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10))
    dcs = MemoryDCS.from_settings(store, settings)
    await dcs.open()
    world = FakeWorld()
    pg = FailingBootstrap("node1", world, error)
    loop = HaLoop(
        Configuration(settings),
        dcs,
        pg,
        FakeWatchdog(clock),
        FakePeers(world, "node1"),
        clocks=Clocks(monotonic=clock, wall=utc_now),
    )
    return loop, dcs, pg


async def test_a_failing_post_bootstrap_stops_the_agent_and_releases_the_key() -> None:
    loop, dcs, pg = await loop_with(BootstrapError(FAILURE))
    with pytest.raises(AgentStop) as stopped:
        await asyncio.wait_for(loop.run(), 5)  # it used to run initdb again and again
    assert pg.attempts == 1  # no second initdb
    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith(
        "stopping: bootstrap failed: bootstrap.post_bootstrap '/bin/false' exited with 1: "
        "line one / line two. The initialize key is released"
    )
    await dcs.refresh()
    assert dcs.view().initialize is None


async def test_other_bootstrap_failures_are_retried() -> None:
    loop, _, pg = await loop_with(RuntimeError("port in use"))
    await loop.cycle()  # races for the initialize key
    _, outcome = await loop.cycle()  # bootstraps, fails
    assert outcome.failure is not None and "port in use" in str(outcome.failure)
    assert pg.attempts == 1


def test_the_scripts_connection_string() -> None:
    assert post_bootstrap_dsn("/tmp", 5361, "postgres", {}) == (
        "dbname=postgres user=postgres host=/tmp port=5361"
    )
    assert post_bootstrap_dsn("127.0.0.1", 5432, "su per", {"sslmode": "require"}) == (
        "dbname=postgres user='su per' host=127.0.0.1 port=5432 sslmode=require"
    )
