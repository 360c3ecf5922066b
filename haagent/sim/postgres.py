"""An in-memory PostgreSQL for the simulation: WAL positions, timelines, replication."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from haagent.config.model import DynamicConfig
from haagent.engine.ports import TimelineSwitch
from haagent.postgres.model import PostgresStatus, ReplicationConnection, Upstream

SYSID = "7000000000000000001"


@dataclass
class FakeWorld:
    """Every node's fake PostgreSQL, and which nodes are cut off from the others."""

    nodes: dict[str, FakePostgres] = field(default_factory=dict)
    partitioned: set[str] = field(default_factory=set)

    def reachable(self, a: str, b: str) -> bool:
        return a not in self.partitioned and b not in self.partitioned

    def replicate(self) -> None:
        """Replicas connected to a running primary catch up fully."""
        for node in self.nodes.values():
            up = self.nodes.get(node.upstream or "")
            if not (node.running and node.in_recovery and up is not None):
                continue
            if not (up.running and self.reachable(node.name, up.name)):
                continue
            if up.timeline < node.timeline:
                continue
            node.lsn = max(node.lsn, up.lsn)
            node.timeline = up.timeline

    def writable(self) -> list[str]:
        return sorted(n.name for n in self.nodes.values() if n.running and not n.in_recovery)


@dataclass
class FakePostgres:
    name: str
    world: FakeWorld
    initialized: bool = False
    running: bool = False
    in_recovery: bool = True
    timeline: int = 1
    lsn: int = 0
    upstream: str | None = None
    sync_names: str = ""
    slots: frozenset[str] = frozenset()  # replication slots for these members
    switches: list[TimelineSwitch] = field(default_factory=list)
    postmaster_died: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.world.nodes[self.name] = self

    # --- test controls

    def write(self, amount: int = 100) -> None:
        assert self.running and not self.in_recovery, f"{self.name} does not accept writes"
        self.lsn += amount

    def crash(self) -> None:
        self.running = False
        self.postmaster_died.set()

    # --- PostgresControl

    def set_dynamic_config(self, config: DynamicConfig) -> None:
        pass

    async def status(self) -> PostgresStatus:
        replication = tuple(
            ReplicationConnection(
                usename="replicator",
                application_name=n.name,
                client_addr=None,
                state="streaming",
                sync_state="sync" if f'"{n.name}"' in self.sync_names else "async",
                sync_priority=0,
                flush_lsn=n.lsn,
            )
            for n in self.world.nodes.values()
            if n.upstream == self.name
            and n.running
            and n.in_recovery
            and self.world.reachable(n.name, self.name)
        )
        if not self.running:
            return PostgresStatus(
                data_dir_exists=self.initialized,
                data_dir_initialized=self.initialized,
                running=False,
                system_identifier=SYSID if self.initialized else None,
                timeline=self.timeline if self.initialized else None,
            )
        return PostgresStatus(
            data_dir_exists=True,
            data_dir_initialized=True,
            running=True,
            accepting=True,
            in_recovery=self.in_recovery,
            timeline=self.timeline,
            system_identifier=SYSID,
            write_lsn=None if self.in_recovery else self.lsn,
            receive_lsn=self.lsn if self.in_recovery else None,
            replay_lsn=self.lsn if self.in_recovery else None,
            receiver_streaming=self.in_recovery and self.upstream is not None,
            replication=replication if not self.in_recovery else (),
            synchronous_standby_names=self.sync_names,
        )

    async def bootstrap(self) -> None:
        self.initialized, self.running, self.in_recovery = True, True, False
        self.lsn, self.timeline = 1000, 1

    async def create_replica(self, source: Upstream) -> None:
        up = self.world.nodes[source.name]
        if not self.world.reachable(self.name, up.name) or not up.running:
            raise RuntimeError(f"cannot reach {up.name} to clone it")
        self.initialized, self.lsn, self.timeline = True, up.lsn, up.timeline

    async def start(self, role: Literal["primary", "replica"], upstream: Upstream | None) -> None:
        self.running = True
        self.in_recovery = role == "replica"
        self.upstream = upstream.name if upstream and role == "replica" else None
        self.postmaster_died.clear()

    async def stop(
        self, mode: Literal["smart", "fast", "immediate"], timeout: float | None = None
    ) -> None:
        self.running = False

    async def restart(self, role: Literal["primary", "replica"], upstream: Upstream | None) -> None:
        await self.stop("fast")
        await self.start(role, upstream)

    async def promote(self) -> None:
        if self.in_recovery:
            self.switches.append(TimelineSwitch(self.timeline, self.lsn, "promoted"))
            self.timeline += 1
            self.in_recovery = False
            self.upstream = None

    async def _rewind_to(self, upstream: Upstream) -> None:
        up = self.world.nodes[upstream.name]
        if self.timeline != up.timeline:
            self.lsn = min(self.lsn, up.lsn)
            self.timeline = up.timeline

    async def demote(
        self,
        mode: Literal["smart", "fast", "immediate"],
        upstream: Upstream | None,
        timeout: float | None = None,
    ) -> None:
        self.in_recovery = True
        self.running = True
        if upstream is not None:
            await self._rewind_to(upstream)
        self.upstream = upstream.name if upstream else None

    async def follow(self, upstream: Upstream) -> None:
        await self._rewind_to(upstream)
        self.upstream = upstream.name

    async def checkpoint(self) -> None:
        pass

    async def ensure_slots(self, members: Sequence[str]) -> None:
        self.slots = frozenset(members)

    async def set_synchronous_standby_names(self, value: str) -> None:
        self.sync_names = value

    async def last_timeline_switch(self) -> TimelineSwitch | None:
        return self.switches[-1] if self.switches else None

    async def slot_positions(self) -> Mapping[str, int]:
        return {}

    async def remove_data_directory(self, reason: str) -> None:
        self.initialized, self.running, self.lsn = False, False, 0

    async def close(self) -> None:
        pass
