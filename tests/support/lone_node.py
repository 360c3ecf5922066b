"""One agent's real HA loop on the in-memory etcd, the fake PostgreSQL and virtual time."""

from __future__ import annotations

from dataclasses import dataclass, field

from haagent.config.model import DynamicConfig
from haagent.core import actions as a
from haagent.core.reasons import Code, Reason
from haagent.core.roles import Role
from haagent.core.snapshot import Decision
from haagent.dcs.memory import MemoryDCS, MemoryStore
from haagent.engine.configuration import Configuration
from haagent.engine.executor import Outcome
from haagent.engine.loop import HaLoop
from haagent_lab.sim.cluster import node_settings
from haagent_lab.sim.fakes import FakePeers, FakeWatchdog, SimGuard
from haagent_lab.sim.postgres import FakePostgres, FakeWorld
from support.virtual_time import VirtualTime


@dataclass
class LoneNode:
    vt: VirtualTime
    store: MemoryStore
    dcs: MemoryDCS
    pg: FakePostgres
    guard: SimGuard
    config: Configuration
    loop: HaLoop
    # Role changes the loop refused (not in the transition table), in order.
    refused: list[tuple[Role, Role]] = field(default_factory=list)

    def run(self, *actions: a.Action, role: Role = Role.PRIMARY) -> Outcome:
        """Observe, then execute `actions` as a decision leading to `role`."""

        async def go() -> Outcome:
            snapshot = await self.loop.observe()
            decision = Decision(tuple(actions), Reason(Code.LEADER_RENEWED, "test"), role)
            return await self.loop.executor.run(decision, snapshot)

        return self.vt.run(go())

    def cycle(self) -> Decision:
        decision, _ = self.vt.run(self.loop.cycle())
        return decision

    def cycles_until_primary(self, limit: int = 10) -> list[str]:
        """Whole cycles until the node runs the primary; their reason codes."""
        codes = []
        while not self.loop.status().is_primary:
            assert len(codes) < limit, codes
            codes.append(str(self.cycle().reason.code))
        return codes

    def member(self, name: str) -> MemoryDCS:
        """Another member of the cluster, with its member key."""
        other = MemoryDCS.from_settings(self.store, node_settings(name, DynamicConfig()))
        self.vt.run(other.open())
        data = {
            "conn_url": f"postgres://{name}:5432/postgres",
            "api_url": f"http://{name}:8008/patroni",
        }
        self.vt.run(other.touch_member(data))
        return other


def lone_node(vt: VirtualTime, *, keeper: bool = False) -> LoneNode:
    """node1 of a cluster of its own; `keeper`: the lease keeper renews on schedule, as in
    the daemon (otherwise only the actions touch the leader key)."""
    store = MemoryStore(vt.clock)
    settings = node_settings("node1", DynamicConfig())
    dcs = MemoryDCS.from_settings(store, settings)
    world = FakeWorld()
    pg = FakePostgres("node1", world)
    guard = SimGuard()
    config = Configuration(settings)
    refused: list[tuple[Role, Role]] = []
    loop = HaLoop(
        config,
        dcs,
        pg,
        FakeWatchdog(vt.clock),
        FakePeers(world, "node1"),
        clocks=vt.clocks,
        fence=guard,
        on_refused_role_change=lambda before, after: refused.append((before, after)),
    )
    vt.run(dcs.open())
    if keeper:

        async def start_keeper() -> None:
            loop.start_keeper()

        vt.run(start_keeper())
    return LoneNode(vt, store, dcs, pg, guard, config, loop, refused)
