"""What the HA loop needs from PostgreSQL, the watchdog and the peers, as Protocols.

The daemon hands real implementations to the loop (`haagent.postgres.local.LocalPostgres`
for PostgreSQL); the simulation and the unit tests hand in-memory ones
(`haagent_lab.sim`).  The DCS protocol lives in `haagent.dcs.protocol`.  The
implementations do not import the engine: the types they share live beside them
(`haagent.postgres.model`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol

from haagent.config.model import DynamicConfig
from haagent.core.snapshot import PeerPosition
from haagent.dcs.model import Member
from haagent.postgres.model import PostgresStatus, TimelineSwitch, Upstream
from haagent.postgres.slots import SlotChanges, SlotSpec


class PostgresControl(Protocol):
    """Everything the agent does to its local PostgreSQL; every call is bounded in time.

    A new PostgreSQL action is a type (`haagent.core.actions`), its handler
    (`haagent.engine.executor`) and a method here, implemented by `LocalPostgres` and the
    simulation's in-memory PostgreSQL.  What a method returns is for logs and tests: the
    executor reports outcomes from whether a call returned or raised.
    """

    @property
    def postmaster_died(self) -> asyncio.Event:
        """Set when a postmaster this agent started or adopted exits."""
        ...

    def set_dynamic_config(self, config: DynamicConfig) -> None: ...

    async def status(self) -> PostgresStatus: ...

    async def bootstrap(self) -> str:
        """initdb, start, roles, post_bootstrap; leaves it running.  The system identifier."""
        ...

    async def create_replica(
        self, sources: Sequence[Upstream], basebackup_only: bool = False
    ) -> Upstream | None:
        """Build the data directory with `postgresql.create_replica_methods` in order, from
        the first of `sources` that works (none: only the methods that need no leader);
        the source used (None: built without one).  `basebackup_only`: pg_basebackup alone."""
        ...

    def add_reload_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each reload of PostgreSQL's configuration (on_reload)."""
        ...

    async def start(
        self, role: Literal["primary", "replica"], upstream: Upstream | None
    ) -> None: ...

    async def stop(
        self, mode: Literal["smart", "fast", "immediate"], timeout: float | None = None
    ) -> bool:
        """Stop and wait until gone; past `timeout` (default pg_ctl_timeout) escalate.
        False when it was not running."""
        ...

    async def restart(
        self, role: Literal["primary", "replica"], upstream: Upstream | None
    ) -> None: ...

    async def promote(self) -> bool:
        """False when it already ran as a primary."""
        ...

    async def demote(
        self,
        mode: Literal["smart", "fast", "immediate"],
        upstream: Upstream | None,
        timeout: float | None = None,
    ) -> str:
        """Stop accepting writes now (the postmaster is signalled first, nothing is asked of
        it), escalating past `timeout`, then run as a replica of `upstream` (rewinding if
        needed).  What was done."""
        ...

    async def follow(self, upstream: Upstream | None, *, recheck: bool = False) -> str:
        """Stream from `upstream` (None: from nobody, the archive only); rewinds first when
        the timelines diverged (`recheck`: look again even when the upstream is the same).
        What was done."""
        ...

    async def checkpoint(self) -> None: ...

    async def change_slots(self, changes: SlotChanges) -> str:
        """Carry out the slot rules' changes (quick ones now, slow ones in the background);
        failures are logged, not raised.  What was done."""
        ...

    async def copy_logical_slots(self, upstream: Upstream, wanted: Sequence[SlotSpec]) -> str:
        """Copy these logical slots from `upstream` (the primary) into this replica,
        restarting PostgreSQL once to load them.  What was done."""
        ...

    async def set_synchronous_standby_names(self, value: str) -> str: ...

    async def last_timeline_switch(self) -> TimelineSwitch | None: ...

    async def remove_data_directory(self, reason: str) -> None: ...

    async def close(self) -> None: ...


class LeaseFence(Protocol):
    """Stops PostgreSQL before the leader key's lease can expire, whatever the agent does.

    Times are on the engine's clock (CLOCK_BOOTTIME in the daemon).  `hold` after every
    renewal while PostgreSQL may run as a primary: a fast shutdown at `expires - margin`
    unless a later `hold` moves it, an immediate one at `expires`.  `release` once
    PostgreSQL is confirmed not to be a primary.
    """

    @property
    def armed(self) -> bool: ...

    def hold(self, expires: float, margin: float, lease: int | None = None) -> bool:
        """False when the fence is gone (its process died): the agent goes on without it.

        `lease`: the etcd lease the key is on, which a fence outside the agent may revoke
        once it has stopped PostgreSQL (the key then goes at once)."""
        ...

    def release(self) -> None: ...


class WatchdogControl(Protocol):
    def can_be_leader(self) -> tuple[bool, str | None]: ...

    def arm(self) -> bool: ...

    def keepalive(self) -> bool: ...

    def disarm(self) -> None: ...

    def reconfigure(self, ttl: int, loop_wait: int) -> None: ...

    def describe(self) -> str: ...


class PeerClient(Protocol):
    async def positions(self, members: Sequence[Member], timeout: float) -> dict[str, PeerPosition]:
        """Ask each member's REST API for its WAL position, concurrently; unreachable is a value."""
        ...

    async def confirm_failsafe(
        self, members: Mapping[str, str], leader: str, timeout: float
    ) -> bool:
        """POST /failsafe to every listed member; True only if every one confirms."""
        ...
