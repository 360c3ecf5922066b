"""What the HA loop needs from the DCS, as a `typing.Protocol`.

Two implementations share one core (`haagent.dcs.client.KVDCS`): `EtcdDCS` on
a real etcd v3 and `MemoryDCS` on an in-memory store with an injected clock.
Keys and values are Patroni's, byte for byte (`haagent.dcs.codec`).

Errors: every call that talks to etcd is bounded by `retry_timeout` and raises
`DCSUnavailable` when etcd could not answer in time, `AuthenticationFailed`
when it refused the credentials, and (`renew_leader` only) `LeaderKeyLost`.
A `False` result means etcd answered and the condition did not hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from haagent.dcs.events import ClusterEvent, EventsRead
from haagent.dcs.model import ClusterView, HistoryEntry


class DCS(Protocol):
    name: str
    """This member's name."""
    prefix: str
    """`/<namespace>/<scope>/`, e.g. `/service/batman/`."""
    changed: asyncio.Event
    """Set when the leader or failover key changes or the view is re-synced; the loop clears it."""

    async def open(self) -> None:
        """Connect, grant the lease, read the prefix and start the watch.

        Raises `DCSUnavailable` / `AuthenticationFailed`; the object stays closed
        then and `open()` may be called again.
        """
        ...

    async def close(self) -> None:
        """Stop the watch and close the connection; keys stay until the lease expires."""
        ...

    def view(self) -> ClusterView:
        """The watch-fed view of every key under the prefix; no I/O."""
        ...

    async def next_view(self) -> ClusterView:
        """Wait until the view changes (a watch event or a full read); the new view.  Any
        number of waiters; nothing to clear (unlike `changed`)."""
        ...

    @property
    def last_contact(self) -> float | None:
        """`time.monotonic()` of the last successful exchange with etcd."""
        ...

    @property
    def lease_id(self) -> int | None:
        """The lease this member's keys live under (None before the first grant)."""
        ...

    @property
    def lease_ttl(self) -> int:
        """The ttl that lease was granted with (a changed ttl applies from the next renewal)."""
        ...

    async def refresh(self) -> ClusterView:
        """A full linearizable read of the prefix; updates `view()`."""
        ...

    def set_ttl(self, ttl: int) -> None:
        """The lease TTL for the next grant; a changed TTL moves the keys to a new lease."""
        ...

    def set_retry_timeout(self, seconds: float) -> None: ...

    async def take_leader(self) -> bool:
        """Create the leader key under our lease if absent; True if we hold it now.

        The lease is refreshed first, so a key we hold lives at least `ttl`
        seconds from the moment of the call.
        """
        ...

    async def renew_leader(self) -> None:
        """Keep the leader key: keepalive, re-put under a new lease if needed.

        On success the key lives at least `ttl` seconds from the moment of the call.

        Raises `LeaderKeyLost` when the key is absent or holds another name.
        """
        ...

    async def release_leader(self) -> bool:
        """Delete the leader key if it holds our name; False if another member holds it."""
        ...

    async def keepalive(self) -> None:
        """Keep our lease alive (grant a new one if it was lost)."""
        ...

    async def touch_member(self, data: Mapping[str, Any]) -> None:
        """Put `members/<name>` under our lease unless it is unchanged and still ours."""
        ...

    async def delete_member(self, name: str | None = None) -> None: ...

    async def race_initialize(self, value: str = "") -> bool:
        """Create `initialize` if absent; True if we created it."""
        ...

    async def set_initialize(self, sysid: str) -> None: ...

    async def cancel_initialize(self) -> None: ...

    async def write_config(
        self, config: Mapping[str, Any], *, expected_revision: int | None
    ) -> bool:
        """Write `config`: None = unconditional, 0 = only if absent, n = only if mod_revision n."""
        ...

    async def write_sync(
        self,
        leader: str | None,
        sync_standby: Sequence[str],
        *,
        quorum: int = 0,
        expected_revision: int | None,
    ) -> bool: ...

    async def write_history(self, history: Sequence[HistoryEntry]) -> None: ...

    async def write_status(
        self,
        optime: int,
        slots: Mapping[str, int],
        retain_slots: Sequence[str] = (),
        timeline: int | None = None,
        lost_slots: Sequence[str] = (),
    ) -> None:
        """Write `status` unless the view already holds exactly these bytes."""
        ...

    async def write_failover(
        self,
        *,
        leader: str | None,
        candidate: str | None,
        scheduled_at: datetime | None,
        expected_revision: int | None = None,
    ) -> bool: ...

    async def clear_failover(self, *, expected_revision: int | None = None) -> bool:
        """Write `{}` to `failover` (never delete it); CAS when `expected_revision` is given."""
        ...

    async def write_failsafe(self, members: Mapping[str, str]) -> None: ...

    async def delete_cluster(self) -> None:
        """Delete every key under the prefix (`haactl remove`)."""
        ...

    async def write_event(self, event: ClusterEvent) -> None:
        """Store one event of the history in this member's ring (no lease)."""
        ...

    async def read_events(
        self, *, member: str | None = None, since: float | None = None
    ) -> EventsRead:
        """The event history, merged across members in time order."""
        ...
