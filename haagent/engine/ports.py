"""What the HA loop needs from the watchdog, the lease fence and the peers, as Protocols.

The daemon hands real implementations to the loop; the simulation and the unit tests
hand in-memory ones (`haagent_lab.sim`).  PostgreSQL's protocol, `PostgresControl`, lives
beside its implementation in `haagent.postgres.local`, and the DCS's in
`haagent.dcs.protocol`.  The implementations do not import the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from haagent.core.snapshot import PeerPosition
from haagent.dcs.model import Member


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
