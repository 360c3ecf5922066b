"""The simulated cluster: N real HA loops, in-memory etcd and PostgreSQL, a manual clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from haagent.config.model import (
    Address,
    BootstrapSettings,
    DynamicConfig,
    PostgresqlSettings,
    RestApiSettings,
    Settings,
    Tags,
)
from haagent.dcs.memory import ManualClock, MemoryDCS, MemoryStore
from haagent.engine.loop import HaLoop
from haagent.sim.fakes import FakePeers, FakeWatchdog
from haagent.sim.postgres import FakePostgres, FakeWorld


class SplitBrain(AssertionError):
    pass


def node_settings(name: str, config: DynamicConfig, tags: Tags | None = None) -> Settings:
    return Settings(
        scope="sim",
        name=name,
        postgresql=PostgresqlSettings(
            data_dir=Path(f"/nonexistent/sim/{name}"), connect_address=Address(name, 5432)
        ),
        restapi=RestApiSettings(connect_address=Address(name, 8008)),
        bootstrap=BootstrapSettings(dcs=config),
        tags=tags or Tags(),
    )


@dataclass
class SimNode:
    name: str
    settings: Settings
    pg: FakePostgres
    dcs: MemoryDCS | None = None
    loop: HaLoop | None = None
    alive: bool = False
    frozen: bool = False
    next_due: float = 0.0
    watchdog: FakeWatchdog = field(default_factory=FakeWatchdog)


class Simulation:
    def __init__(
        self,
        names: tuple[str, ...] = ("node1", "node2", "node3"),
        config: DynamicConfig | None = None,
    ) -> None:
        self.config = config or DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10)
        self.clock = ManualClock(1000.0)
        self.store = MemoryStore(self.clock)
        self.world = FakeWorld()
        self.nodes = {
            n: SimNode(n, node_settings(n, self.config), FakePostgres(n, self.world)) for n in names
        }
        self.log: list[tuple[float, str, str]] = []

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.clock())

    async def start(self, name: str) -> None:
        node = self.nodes[name]
        node.dcs = MemoryDCS.from_settings(self.store, node.settings)
        await node.dcs.open()
        node.loop = HaLoop(
            node.settings,
            node.dcs,
            node.pg,
            node.watchdog,
            FakePeers(self.world, name, self._failsafe_heard),
            clock=self.clock,
            wall=self.wall,
        )
        node.alive, node.frozen, node.next_due = True, False, self.clock()

    def _failsafe_heard(self, name: str) -> None:
        loop = self.nodes[name].loop
        if loop is not None:
            loop.state.failsafe_heard_at = self.clock()

    async def start_all(self) -> None:
        for name in self.nodes:
            await self.start(name)

    async def kill(self, name: str, postgres_too: bool = True) -> None:
        """SIGKILL the agent (and its PostgreSQL): no more cycles, the lease will expire."""
        node = self.nodes[name]
        node.alive = False
        if node.dcs is not None:
            await node.dcs.close()
        if postgres_too:
            node.pg.crash()

    def freeze(self, name: str) -> None:
        self.nodes[name].frozen = True

    def partition(self, name: str) -> None:
        self.store.partition(name)
        self.world.partitioned.add(name)

    def etcd_unreachable(self, name: str) -> None:
        """Cut `name` off etcd only; it still reaches the other nodes."""
        self.store.partition(name)

    def heal(self, name: str) -> None:
        self.store.heal(name)
        self.world.partitioned.discard(name)

    def check(self) -> None:
        writable = self.world.writable()
        if len(writable) > 1:
            raise SplitBrain(f"t={self.clock():.0f}: {writable} all accept writes")

    async def _settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async def run_node(self, node: SimNode) -> None:
        assert node.loop is not None and node.dcs is not None
        for _ in range(30):
            decision, outcome = await node.loop.cycle()
            self.log.append((self.clock(), node.name, decision.reason.code))
            self.check()
            await self._settle()
            if not (decision.again or outcome.failure is not None):
                break
        node.dcs.changed.clear()
        node.pg.postmaster_died.clear()
        node.next_due = self.clock() + self.config.loop_wait

    async def step(self, seconds: float = 1.0) -> None:
        self.clock.advance(seconds)
        self.store.expire()
        await self._settle()
        for node in self.nodes.values():
            if not node.alive or node.frozen or node.loop is None or node.dcs is None:
                continue
            woken = node.dcs.changed.is_set() or node.pg.postmaster_died.is_set()
            if woken or self.clock() >= node.next_due:
                await self.run_node(node)
        self.world.replicate()
        writable = self.world.writable()
        if len(writable) == 1:
            self.world.nodes[writable[0]].write()
        self.check()

    async def run_for(self, seconds: float) -> None:
        for _ in range(int(seconds)):
            await self.step(1.0)

    def primary(self) -> str | None:
        writable = self.world.writable()
        return writable[0] if len(writable) == 1 else None

    def leader_key(self) -> str | None:
        node = next(n for n in self.nodes.values() if n.dcs is not None)
        assert node.dcs is not None
        return node.dcs.view().leader_name

    def streaming_replicas(self) -> list[str]:
        primary = self.primary()
        return sorted(
            n.name
            for n in self.world.nodes.values()
            if n.running and n.in_recovery and n.upstream == primary
        )
