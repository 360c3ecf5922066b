"""An in-memory PostgreSQL for the simulation: WAL positions, timelines, replication, faults.

A node's WAL is its timeline, its position on it, and the switches that led there
(`switches`: the timeline that ended and where).  A write is a position on a
timeline; a node holds a write when its history passes through that point.

Faults: `delay(op, seconds)` makes an operation take that long; `hang(op)` makes it
never return until `unhang(op)`; `crash()` kills the postmaster.  Operations are the
`PostgresControl` method names (`status`, `stop`, `promote`, `checkpoint`, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from haagent.config.model import DynamicConfig
from haagent.postgres.model import (
    PostgresStatus,
    ReplicationConnection,
    ReplicationSlot,
    TimelineSwitch,
    Upstream,
)
from haagent.postgres.slots import SlotChanges, SlotSpec
from haagent.postgres.sync_names import parse_synchronous_standby_names

SYSID = "7000000000000000001"


@dataclass(frozen=True)
class Write:
    """One acknowledged write: where it landed."""

    node: str
    timeline: int
    lsn: int
    at: float


@dataclass
class FakeWorld:
    """Every node's fake PostgreSQL, and which nodes are cut off from the others."""

    nodes: dict[str, FakePostgres] = field(default_factory=dict)
    partitioned: set[str] = field(default_factory=set)

    def reachable(self, a: str, b: str) -> bool:
        return a not in self.partitioned and b not in self.partitioned

    def streaming_from(self, primary: FakePostgres) -> list[FakePostgres]:
        return [
            n
            for n in self.nodes.values()
            if n.running
            and n.in_recovery
            and n.upstream == primary.name
            and self.reachable(n.name, primary.name)
            and n.compatible_with(primary)
        ]

    def replicate(self) -> None:
        """Replicas connected to a running upstream of a compatible history catch up fully."""
        for _ in range(len(self.nodes)):  # cascades settle in a few rounds
            for node in self.nodes.values():
                up = self.nodes.get(node.upstream or "")
                if not (node.running and node.in_recovery and up is not None and up.running):
                    continue
                if self.reachable(node.name, up.name) and node.compatible_with(up):
                    node.catch_up(up)

    def writable(self) -> list[str]:
        return sorted(n.name for n in self.nodes.values() if n.writable)

    def write(self, now: float) -> Write | None:
        """A client writes to the one writable node; the acknowledged write, or None."""
        writable = [n for n in self.nodes.values() if n.writable]
        if len(writable) != 1:
            return None
        primary = writable[0]
        primary.lsn += 100
        synchronous = primary.synchronous_names()
        if synchronous is not None:
            # Acknowledged only once a named standby has it (it streams at once here).
            if not any(n.name in synchronous for n in self.streaming_from(primary)):
                primary.lsn -= 100  # the commit waits; the client gives up: not acknowledged
                return None
            self.replicate()
        return Write(primary.name, primary.timeline, primary.lsn, now)


@dataclass
class FakePostgres:
    name: str
    world: FakeWorld
    initialized: bool = False
    running: bool = False
    in_recovery: bool = True
    # Stopping (a fast shutdown in progress): refuses connections, accepts no write.
    stopping: bool = False
    timeline: int = 1
    lsn: int = 0
    upstream: str | None = None
    sync_names: str = ""
    # Replication slots by name (physical ones at a position; logical ones are copied).
    slots: dict[str, ReplicationSlot] = field(default_factory=dict)
    switches: list[TimelineSwitch] = field(default_factory=list)
    postmaster_died: asyncio.Event = field(default_factory=asyncio.Event)
    delays: dict[str, float] = field(default_factory=dict)
    hung: set[str] = field(default_factory=set)
    # How long a fast shutdown takes (the simulated shutdown checkpoint).
    shutdown_seconds: float = 0.2
    fenced: int = 0  # how many times the lease fence stopped it

    def __post_init__(self) -> None:
        self.world.nodes[self.name] = self

    # --- the world's view

    @property
    def writable(self) -> bool:
        return self.running and not self.in_recovery and not self.stopping

    def holds(self, write: Write) -> bool:
        """This node's WAL passes through `write`."""
        if write.timeline == self.timeline:
            return write.lsn <= self.lsn
        return any(s.timeline == write.timeline and write.lsn <= s.lsn for s in self.switches)

    def segments(self) -> list[tuple[int, int]]:
        """The history: each timeline in order and where it ended (or is now, for the last)."""
        return [(s.timeline, s.lsn) for s in self.switches] + [(self.timeline, self.lsn)]

    def fork_point(self, other: FakePostgres) -> int:
        """Where the two histories part (the position up to which both agree)."""
        point = 0
        for (mine, my_end), (theirs, their_end) in zip(
            self.segments(), other.segments(), strict=False
        ):
            if mine != theirs:
                break
            point = min(my_end, their_end)
            if my_end != their_end:
                break
        return point

    def compatible_with(self, up: FakePostgres) -> bool:
        """Can stream from `up`: our history is a prefix of its history."""
        return self.fork_point(up) >= self.lsn

    def catch_up(self, up: FakePostgres) -> None:
        self.lsn, self.timeline, self.switches = up.lsn, up.timeline, list(up.switches)

    def synchronous_names(self) -> set[str] | None:
        """The standbys a commit waits for (None: asynchronous)."""
        if not self.sync_names:
            return None
        _, _, names = parse_synchronous_standby_names(self.sync_names)
        return set(names)

    # --- test controls

    def delay(self, op: str, seconds: float) -> None:
        self.delays[op] = seconds

    def hang(self, op: str) -> None:
        self.hung.add(op)

    def unhang(self, op: str | None = None) -> None:
        if op is None:
            self.hung.clear()
            self.delays.clear()
        else:
            self.hung.discard(op)
            self.delays.pop(op, None)

    def crash(self) -> None:
        self.running = False
        self.stopping = False
        self.postmaster_died.set()

    def fence_stop(self) -> None:
        """The guard's fast shutdown: no write is accepted from now on."""
        if self.running:
            self.fenced += 1
            self.stopping = True

    def finish_stop(self) -> None:
        """The shutdown that was in progress completes."""
        if self.stopping:
            self.running = False
            self.stopping = False
            self.postmaster_died.set()

    async def _op(self, op: str) -> None:
        await asyncio.sleep(0)
        # Polled, not an Event: a restarted agent runs on a new event loop.
        while op in self.hung:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        seconds = self.delays.get(op, 0.0)
        if seconds:
            await asyncio.sleep(seconds)

    # --- PostgresControl

    def add_reload_listener(self, listener: Callable[[], None]) -> None:
        """The simulation never reloads a configuration file."""

    def set_dynamic_config(self, config: DynamicConfig) -> None:
        pass

    async def status(self) -> PostgresStatus:
        await self._op("status")
        names = self.synchronous_names() or set()
        replication = tuple(
            ReplicationConnection(
                usename="replicator",
                application_name=n.name,
                client_addr=None,
                state="streaming",
                sync_state="sync" if n.name in names else "async",
                sync_priority=0,
                flush_lsn=n.lsn,
            )
            for n in self.world.streaming_from(self)
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
            accepting=not self.stopping,
            in_recovery=self.in_recovery,
            timeline=self.timeline,
            system_identifier=SYSID,
            write_lsn=None if self.in_recovery else self.lsn,
            receive_lsn=self.lsn if self.in_recovery else None,
            replay_lsn=self.lsn if self.in_recovery else None,
            receiver_streaming=self.in_recovery and self.upstream is not None,
            replication=replication if not self.in_recovery else (),
            synchronous_standby_names=self.sync_names,
            slots=tuple(self.slots[name] for name in sorted(self.slots)),
        )

    async def bootstrap(self) -> str:
        await self._op("bootstrap")
        self.initialized, self.running, self.in_recovery = True, True, False
        self.lsn, self.timeline = 1000, 1
        return SYSID

    async def create_replica(
        self, sources: Sequence[Upstream], basebackup_only: bool = False
    ) -> Upstream | None:
        await self._op("create_replica")
        if not sources:
            raise RuntimeError("no member to clone from (the simulation has no backups)")
        source = sources[0]
        up = self.world.nodes[source.name]
        if not self.world.reachable(self.name, up.name) or not up.running:
            raise RuntimeError(f"cannot reach {up.name} to clone it")
        self.initialized = True
        self.lsn, self.timeline, self.switches = up.lsn, up.timeline, list(up.switches)
        return source

    async def start(self, role: Literal["primary", "replica"], upstream: Upstream | None) -> None:
        await self._op("start")
        if not self.running:
            self.running, self.stopping = True, False
            self.in_recovery = True
            self.postmaster_died.clear()
        if role == "primary":
            await self.promote()
        else:
            if upstream is not None:
                self._rewind_to(upstream)
            self.upstream = upstream.name if upstream else None

    async def stop(
        self, mode: Literal["smart", "fast", "immediate"], timeout: float | None = None
    ) -> bool:
        await self._op("stop")
        if not self.running:
            return False
        self.stopping = True
        if mode != "immediate":
            await asyncio.sleep(self.shutdown_seconds)
        self.running, self.stopping = False, False
        return True

    async def restart(self, role: Literal["primary", "replica"], upstream: Upstream | None) -> None:
        await self.stop("fast")
        await self.start(role, upstream)

    async def promote(self) -> bool:
        await self._op("promote")
        if not self.running or self.stopping:
            raise RuntimeError(f"{self.name}: PostgreSQL is not running: cannot promote")
        if not self.in_recovery:
            return False
        self.switches.append(TimelineSwitch(self.timeline, self.lsn, "promoted"))
        self.timeline += 1
        self.in_recovery = False
        self.upstream = None
        return True

    def _rewind_to(self, upstream: Upstream) -> None:
        up = self.world.nodes[upstream.name]
        if not self.compatible_with(up):
            self.lsn = self.fork_point(up)
            self.timeline, self.switches = up.timeline, list(up.switches)

    async def demote(
        self,
        mode: Literal["smart", "fast", "immediate"],
        upstream: Upstream | None,
        timeout: float | None = None,
    ) -> str:
        await self.stop(mode)
        await self._op("demote")
        self.running, self.in_recovery = True, True
        self.postmaster_died.clear()
        if upstream is not None:
            self._rewind_to(upstream)
        self.upstream = upstream.name if upstream else None
        return f"following {self.upstream}"

    async def follow(self, upstream: Upstream | None, *, recheck: bool = False) -> str:
        await self._op("follow")
        if upstream is not None:
            self._rewind_to(upstream)
        self.upstream = upstream.name if upstream else None
        return f"following {self.upstream}"

    async def checkpoint(self) -> None:
        await self._op("checkpoint")

    async def change_slots(self, changes: SlotChanges) -> str:
        await self._op("change_slots")
        for drop in changes.drop:
            self.slots.pop(drop.name, None)
        for spec in changes.create:
            slot = ReplicationSlot(spec.name, spec.kind, spec.database, spec.plugin)
            self.slots.setdefault(spec.name, replace(slot, restart_lsn=self.lsn))
        for advance in changes.advance:
            current = self.slots.get(advance.name)
            if current is not None and current.kind == "physical":
                to = min(advance.to, self.lsn)
                self.slots[advance.name] = replace(current, restart_lsn=to)
        return "changed"

    async def copy_logical_slots(self, upstream: Upstream, wanted: Sequence[SlotSpec]) -> str:
        await self._op("copy_logical_slots")
        source = self.world.nodes.get(upstream.name)
        for spec in wanted:
            slot = source.slots.get(spec.name) if source is not None else None
            if slot is not None:
                self.slots[spec.name] = slot
        return "copied"

    async def set_synchronous_standby_names(self, value: str) -> str:
        await self._op("set_synchronous_standby_names")
        self.sync_names = value
        return value

    async def last_timeline_switch(self) -> TimelineSwitch | None:
        return self.switches[-1] if self.switches else None

    async def remove_data_directory(self, reason: str) -> None:
        self.initialized, self.running, self.lsn = False, False, 0
        self.timeline, self.switches = 1, []

    async def close(self) -> None:
        pass
