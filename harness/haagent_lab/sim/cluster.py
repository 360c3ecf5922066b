"""The simulated cluster: N real agents on virtual time, in-memory etcd and PostgreSQL.

Each agent (HA loop, lease keeper, etcd watch) runs its real code on its own
event loop (`clockwork.py`).  The world around them, etcd's lease timer, each
node's guard and watchdog, replication and a client writing to the primary, is
advanced by the simulation between the agents' steps.  Faults:

- `kill` (SIGKILL: the agent is gone, its guard stops PostgreSQL if armed),
  `freeze`/`thaw` (SIGSTOP/SIGCONT: nothing of the agent runs meanwhile);
- `partition` (cut off from etcd and the other nodes), `etcd_unreachable`;
- `slow_etcd` / `hang_etcd` (every call of that node to etcd takes that long, or never
  answers), `pg.delay(op, s)` / `pg.hang(op)` (a slow or hung PostgreSQL operation).

After every change of the clock the invariants are checked (`Violation` otherwise):
never two writable nodes; outside maintenance and failsafe mode, a writable node
holds the leader key in etcd (no primary outlives its lease); in synchronous mode,
the primary holds every acknowledged write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from haagent.config.model import (
    Address,
    BootstrapSettings,
    DynamicConfig,
    PostgresqlSettings,
    RestApiSettings,
    Settings,
    Tags,
)
from haagent.core.roles import Role
from haagent.core.snapshot import Decision
from haagent.dcs import codec
from haagent.dcs.errors import DCSError
from haagent.dcs.memory import MemoryDCS, MemoryStore
from haagent.engine.clock import Clocks
from haagent.engine.configuration import Configuration
from haagent.engine.loop import HaLoop
from haagent_lab.sim.clockwork import ManualClock, VirtualLoop
from haagent_lab.sim.fakes import FakePeers, FakeWatchdog, SimGuard, SimLocalFence
from haagent_lab.sim.postgres import FakePostgres, FakeWorld, Write

log = logging.getLogger("haagent_lab.sim")

T = TypeVar("T")
TICK = 0.1  # the client writes and the checks run this often (simulated seconds)


class Violation(AssertionError):
    """A safety invariant broke."""


SplitBrain = Violation


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
    guard: SimGuard
    watchdog: FakeWatchdog
    loop: VirtualLoop | None = None
    dcs: MemoryDCS | None = None
    agent: HaLoop | None = None
    alive: bool = False
    frozen: bool = False
    stop_done_at: float | None = None  # a fast shutdown started by the guard ends then
    task: asyncio.Task[None] | None = None
    dead_loops: list[VirtualLoop] = field(default_factory=list)


class Simulation:
    def __init__(
        self,
        names: tuple[str, ...] = ("node1", "node2", "node3"),
        config: DynamicConfig | None = None,
        *,
        tags: dict[str, Tags] | None = None,
        guard: bool = True,
        watchdog: bool = False,
    ) -> None:
        self.config = config or DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10)
        self.clock = ManualClock(1000.0)
        self.store = MemoryStore(self.clock)
        self.world = FakeWorld()
        self.with_guard = guard
        self.nodes: dict[str, SimNode] = {}
        for n in names:
            wd = FakeWatchdog(self.clock, enabled=watchdog, timeout=self.config.ttl - 5)
            settings = node_settings(n, self.config, (tags or {}).get(n))
            self.nodes[n] = SimNode(n, settings, FakePostgres(n, self.world), SimGuard(), wd)
        self.log: list[tuple[float, str, str]] = []
        # Decisions whose role change is not in the transition table: (time, node, from, to).
        self.refused_role_changes: list[tuple[float, str, Role, Role]] = []
        self.acked: list[Write] = []
        self.lost: set[Write] = set()
        self._next_tick = self.clock() + TICK
        self._checked_for: tuple[str, int] | None = None
        self._checked_upto = 0
        self.prefix = self.nodes[names[0]].settings.dcs_prefix.encode()

    # --- time

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.clock())

    @property
    def clocks(self) -> Clocks:
        return Clocks(monotonic=self.clock, wall=self.wall)

    def _live_loops(self) -> list[VirtualLoop]:
        return [
            n.loop for n in self.nodes.values() if n.alive and not n.frozen and n.loop is not None
        ]

    def _drive(self) -> None:
        for _ in range(1000):
            if not any([loop.drive() for loop in self._live_loops()]):
                return
        raise RuntimeError("the simulated agents keep waking each other without time passing")

    def _next_event(self) -> float:
        times = [self._next_tick]
        for loop in self._live_loops():
            t = loop.next_timer()
            if t is not None:
                times.append(t)
        for node in self.nodes.values():
            if node.stop_done_at is not None:
                times.append(node.stop_done_at)
            stop_at = node.guard.stop_at() if self.with_guard else None
            if stop_at is not None and node.pg.running and not node.pg.stopping:
                times.append(stop_at)
            fires = node.watchdog.fires_at()
            if fires is not None:
                times.append(fires)
        return min(times)

    def run_until(self, until: float) -> None:
        while True:
            self._drive()
            self._world()
            when = self._next_event()
            if when > until:
                self.clock.advance_to(until)
                self.store.expire()
                self._drive()
                self._world()
                return
            self.clock.advance_to(when)
            self.store.expire()

    def run_for(self, seconds: float) -> None:
        self.run_until(self.clock() + seconds)

    def step(self, seconds: float = 1.0) -> None:
        self.run_for(seconds)

    # --- the world around the agents

    def _world(self) -> None:
        now = self.clock()
        for node in self.nodes.values():
            pg = node.pg
            if node.stop_done_at is not None and now >= node.stop_done_at:
                node.stop_done_at = None
                pg.finish_stop()
            stop_at = node.guard.stop_at() if self.with_guard else None
            if stop_at is not None and now >= stop_at and pg.running and not pg.stopping:
                self._fence(node, f"lease fence: no renewal, lease expires at {node.guard.expires}")
            fires = node.watchdog.fires_at()
            if fires is not None and now >= fires:
                self.log.append((now, node.name, "watchdog_reset"))
                node.watchdog.disarm()
                self._kill_agent(node)
                pg.crash()
        if now >= self._next_tick:
            self._next_tick = now + TICK
            self.world.replicate()
            write = self.world.write(now)
            if write is not None:
                self.acked.append(write)
            self.check()

    def _fence(self, node: SimNode, why: str) -> None:
        if not node.pg.running or node.pg.stopping:
            return
        node.pg.fence_stop()
        node.stop_done_at = self.clock() + node.pg.shutdown_seconds
        self.log.append((self.clock(), node.name, "fenced"))
        log.info("t=%.1f %s: %s", self.clock(), node.name, why)

    # --- invariants

    def leader_in_etcd(self) -> str | None:
        kv = self.store.get(self.prefix + codec.LEADER.encode())
        return kv.value.decode() if kv is not None else None

    def check(self) -> None:
        now = self.clock()
        writable = self.world.writable()
        if len(writable) > 1:
            raise Violation(f"t={now:.1f}: {writable} all accept writes")
        if not writable:
            return
        primary = writable[0]
        view_config = self._stored_config()
        initialized = self.store.get(self.prefix + codec.INITIALIZE.encode())
        bootstrapped = initialized is not None and initialized.value != b""
        if (
            bootstrapped
            and not view_config.pause
            and not view_config.failsafe_mode
            and self.leader_in_etcd() != primary
        ):
            raise Violation(
                f"t={now:.1f}: {primary} accepts writes without holding the leader key "
                f"(held by {self.leader_in_etcd()}): a primary outlived its lease"
            )
        pg = self.world.nodes[primary]
        # A primary's WAL only grows while it stays primary on one timeline: recheck every
        # acknowledged write only when that changes, else just the new ones.
        if self._checked_for != (primary, pg.timeline):
            self._checked_for, self._checked_upto = (primary, pg.timeline), 0
        missing = [w for w in self.acked[self._checked_upto :] if not pg.holds(w)]
        self._checked_upto = len(self.acked)
        self.lost.update(missing)
        if missing and view_config.synchronous_mode:
            raise Violation(
                f"t={now:.1f}: synchronous mode, yet the primary {primary} lacks "
                f"{len(missing)} acknowledged writes (first: {missing[0]})"
            )

    def _stored_config(self) -> DynamicConfig:
        for node in self.nodes.values():
            if node.dcs is not None and node.dcs.view().config is not None:
                config = node.dcs.view().config
                assert config is not None
                return config
        return self.config

    # --- agents

    def start(self, name: str) -> None:
        """Start (or restart) the agent of `name`; its PostgreSQL is left as it is."""
        node = self.nodes[name]
        if node.alive:
            return
        if node.loop is not None:
            node.dead_loops.append(node.loop)
        loop = VirtualLoop(self.clock)
        node.loop, node.alive, node.frozen = loop, True, False
        node.pg.postmaster_died = asyncio.Event()
        node.guard.dead, node.guard.armed = False, False  # a new agent starts a new guard
        dcs = MemoryDCS.from_settings(self.store, node.settings)
        node.dcs = dcs
        node.agent = HaLoop(
            Configuration(node.settings),
            dcs,
            node.pg,
            node.watchdog,
            FakePeers(
                self.world,
                name,
                self._failsafe_heard,
                watchdog_failed=lambda n: not self.nodes[n].watchdog.can_be_leader()[0],
            ),
            clocks=self.clocks,
            fence=node.guard if self.with_guard else None,
            fallback_fence=lambda: SimLocalFence(
                functools.partial(self._fence, node, "the fence inside the agent")
            ),
            on_decision=functools.partial(self._decided, name),
            on_refused_role_change=functools.partial(self._refused, name),
        )
        node.task = loop.create_task(self._agent_main(node, dcs, node.agent), name=f"agent {name}")

    async def _agent_main(self, node: SimNode, dcs: MemoryDCS, agent: HaLoop) -> None:
        while True:
            try:
                await dcs.open()
                break
            except DCSError:
                await asyncio.sleep(1.0)
        await agent.run()

    def _decided(self, name: str, decision: Decision, seconds: float) -> None:
        self.log.append((self.clock(), name, str(decision.reason.code)))

    def _refused(self, name: str, before: Role, after: Role) -> None:
        self.refused_role_changes.append((self.clock(), name, before, after))

    def start_all(self) -> None:
        for name in self.nodes:
            self.start(name)

    def _failsafe_heard(self, name: str) -> None:
        agent = self.nodes[name].agent
        if agent is not None and self.nodes[name].alive:
            agent.failsafe_leader_heard()  # as the REST API's POST /failsafe does

    def _kill_agent(self, node: SimNode) -> None:
        node.alive = False
        if self.with_guard and node.guard.armed and not node.guard.dead:
            self._fence(node, "the agent died while armed")
        node.guard.release()

    def kill(self, name: str, postgres_too: bool = True) -> None:
        """SIGKILL the agent (and its PostgreSQL): nothing of it runs any more."""
        node = self.nodes[name]
        self._kill_agent(node)
        if postgres_too:
            node.pg.crash()

    def stop_agent(self, name: str) -> None:
        """SIGTERM: the agent's clean shutdown, cut off as the daemon cuts it off; then the
        guard stops PostgreSQL if the agent left while it may still be a primary."""
        node = self.nodes[name]
        agent, task = node.agent, node.task
        assert agent is not None and task is not None and node.alive

        async def shutdown() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(TimeoutError, DCSError):
                await asyncio.wait_for(agent.shutdown(), max(30.0, float(agent.config.ttl)))
            await agent.close()

        self.call(name, shutdown(), timeout=float("inf"))
        node.alive = False
        if agent.fencing.armed and self.with_guard:
            self._fence(node, "the agent left while PostgreSQL may still be a primary")
        node.guard.release()

    def kill_guard(self, name: str) -> None:
        """The guard process of `name` dies (the agent runs on)."""
        self.nodes[name].guard.dead = True

    def freeze(self, name: str) -> None:
        self.nodes[name].frozen = True

    def thaw(self, name: str) -> None:
        self.nodes[name].frozen = False

    def partition(self, name: str) -> None:
        self.store.partition(name)
        self.world.partitioned.add(name)

    def etcd_unreachable(self, name: str) -> None:
        """Cut `name` off etcd only; it still reaches the other nodes."""
        self.store.partition(name)

    def heal(self, name: str) -> None:
        self.store.heal(name)
        self.world.partitioned.discard(name)

    def slow_etcd(self, name: str, seconds: float) -> None:
        """Every etcd call of `name` takes `seconds` before it reaches etcd (0: normal)."""
        self.store.set_latency(name, seconds)

    def hang_etcd(self, name: str) -> None:
        """Every etcd call of `name` waits until `slow_etcd(name, 0)` or `heal(name)`."""
        self.store.set_latency(name, float("inf"))

    def call(self, name: str, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run `coro` on the agent of `name` (as its REST API would), time passing meanwhile."""
        node = self.nodes[name]
        assert node.loop is not None and node.alive, f"{name}'s agent does not run"
        task = node.loop.create_task(coro)
        deadline = self.clock() + timeout
        self._drive()
        while not task.done():
            if self.clock() >= deadline:
                task.cancel()
                raise TimeoutError(f"{name}: not done within {timeout}s of simulated time")
            self.run_for(TICK)
        return task.result()

    def close(self) -> None:
        for node in self.nodes.values():
            for loop in [*node.dead_loops, *([node.loop] if node.loop is not None else [])]:
                if not loop.is_closed():
                    loop.shut()

    # --- what tests look at

    def primary(self) -> str | None:
        writable = self.world.writable()
        return writable[0] if len(writable) == 1 else None

    def leader_key(self) -> str | None:
        return self.leader_in_etcd()

    def streaming_replicas(self) -> list[str]:
        primary = self.primary()
        if primary is None:
            return []
        return sorted(n.name for n in self.world.streaming_from(self.world.nodes[primary]))

    def codes(self, name: str, since: float = 0.0) -> list[str]:
        return [code for t, n, code in self.log if n == name and t >= since]
