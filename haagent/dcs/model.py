"""The cluster as seen in the DCS: frozen values decoded from Patroni's key layout.

These types carry no I/O.  `haagent.dcs.codec` turns them into the exact bytes
Patroni's tools read and write, and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from haagent.config import tags as tag_rules
from haagent.config.model import DynamicConfig


@dataclass(frozen=True)
class Member:
    """The JSON of `members/<name>`, as a member publishes it about itself."""

    name: str
    conn_url: str
    api_url: str
    state: str = "stopped"
    role: str = "uninitialized"
    version: str = ""
    tags: Mapping[str, Any] = field(default_factory=dict)
    xlog_location: int | None = None
    timeline: int | None = None
    replication_state: str | None = None
    receive_lsn: int | None = None
    replay_lsn: int | None = None
    pending_restart: bool = False
    scheduled_restart: Mapping[str, Any] | None = None
    pause: bool = False
    # Everything the JSON held, including keys haagent does not model.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)
    mod_revision: int = field(default=0, compare=False)

    @property
    def nofailover(self) -> bool:
        return tag_rules.nofailover(self.tags)

    @property
    def failover_priority(self) -> int:
        return tag_rules.failover_priority(self.tags)

    @property
    def nosync(self) -> bool:
        return tag_rules.nosync(self.tags)

    @property
    def sync_priority(self) -> int:
        return tag_rules.sync_priority(self.tags)

    @property
    def nostream(self) -> bool:
        return tag_rules.nostream(self.tags)

    @property
    def replicatefrom(self) -> str | None:
        return tag_rules.replicatefrom(self.tags)

    @property
    def host_port(self) -> tuple[str, int | None] | None:
        """The PostgreSQL host of `conn_url` and its port (None when it names none); None
        when `conn_url` is not a URL naming a host."""
        try:
            parts = urlsplit(self.conn_url)
            host, port = parts.hostname, parts.port
        except ValueError:
            return None
        return (host, port) if host else None

    @property
    def lsn(self) -> int | None:
        """WAL position for a race: a primary's write, a replica's best of receive/replay."""
        if self.xlog_location is not None:
            return self.xlog_location
        positions = [p for p in (self.receive_lsn, self.replay_lsn) if p is not None]
        return max(positions) if positions else None


@dataclass(frozen=True)
class Leader:
    """The `leader` key: the holder's name and the lease it lives under."""

    name: str
    lease_id: int
    mod_revision: int


@dataclass(frozen=True)
class Failover:
    """The `failover` key: a requested switchover (leader set) or failover (leader unset)."""

    leader: str | None = None
    candidate: str | None = None
    scheduled_at: datetime | None = None
    mod_revision: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SyncState:
    """The `sync` key: who the leader named as synchronous standbys."""

    leader: str | None = None
    sync_standby: tuple[str, ...] = ()
    quorum: int = 0
    mod_revision: int = field(default=0, compare=False)

    def is_sync(self, name: str) -> bool:
        return name in self.sync_standby

    @property
    def active(self) -> bool:
        """Synchronous replication is in force: the key names a leader (Patroni's rule)."""
        return bool(self.leader)

    def matches(self, name: str, *, check_leader: bool = False) -> bool:
        """`name` is a listed standby (or the leader, with `check_leader`), case-insensitively
        as PostgreSQL compares synchronous_standby_names; never when the key is not active."""
        if not self.active:
            return False
        names = {n.lower() for n in self.sync_standby}
        if check_leader and self.leader is not None:
            names.add(self.leader.lower())
        return name.lower() in names


@dataclass(frozen=True)
class HistoryEntry:
    """One row of `history`: the timeline that ended at `lsn`, why, when, and who took over."""

    timeline: int
    lsn: int
    reason: str
    timestamp: str | None = None
    new_leader: str | None = None


# Rows kept in `history` whatever `max_timelines_history` says (0: Patroni keeps every
# row): about 100 bytes each, well under etcd's 1.5 MiB limit on one request.
HISTORY_ROWS_CEILING = 10_000


def bounded_history(
    rows: tuple[HistoryEntry, ...], max_timelines_history: int
) -> tuple[HistoryEntry, ...]:
    """The newest `max_timelines_history` rows (all when 0, as in Patroni), and never more
    than HISTORY_ROWS_CEILING."""
    keep = HISTORY_ROWS_CEILING
    if max_timelines_history > 0:
        keep = min(keep, max_timelines_history)
    return rows[-keep:]


@dataclass(frozen=True)
class ClusterStatus:
    """The `status` key the leader writes: its WAL position and its slots' positions.

    `timeline` (haagent's, not Patroni's) is the leader's timeline when it wrote them:
    replicas move their slots only to positions of their own timeline."""

    optime: int | None = None
    slots: Mapping[str, int] = field(default_factory=dict)
    retain_slots: tuple[str, ...] = ()
    timeline: int | None = None
    lost_slots: tuple[str, ...] = ()  # haagent's: the leader's slots PostgreSQL reports lost


@dataclass(frozen=True)
class ClusterView:
    """Every key under the cluster prefix at one etcd revision.

    `initialize` is None when the key is absent and "" while a bootstrap is in
    progress.  `config` is None when the `config` key is absent (or unreadable).
    `failover` is None when there is no request (the key is absent or `{}`).
    The `*_revision` fields are the keys' mod_revision (0 when absent), for
    compare-and-swap writes, also when the value could not be decoded.
    """

    revision: int = 0
    initialize: str | None = None
    config: DynamicConfig | None = None
    config_revision: int = 0
    leader: Leader | None = None
    members: Mapping[str, Member] = field(default_factory=dict)
    sync: SyncState | None = None
    failover: Failover | None = None
    history: tuple[HistoryEntry, ...] = ()
    status: ClusterStatus = ClusterStatus()
    failsafe: Mapping[str, str] | None = None
    failover_revision: int = 0
    sync_revision: int = 0

    @property
    def leader_name(self) -> str | None:
        return self.leader.name if self.leader else None

    def member_role(self, member: Member, synchronous_mode: bool, *, quorum: bool = False) -> str:
        """`member`'s role in the cluster, as `GET /cluster` and `haactl list` show it:
        `leader` (`standby_leader` in a standby cluster) for the key holder, `sync_standby`
        for a standby the sync key names while synchronous_mode is on (`quorum_standby`
        under quorum commit), else `replica`."""
        if member.name == self.leader_name:
            return "standby_leader" if member.role == "standby_leader" else "leader"
        if synchronous_mode and self.sync is not None and self.sync.is_sync(member.name):
            return "quorum_standby" if quorum else "sync_standby"
        return "replica"

    def member_state(self, member: Member) -> str:
        """`member`'s state as shown: a running non-leader's replication state (`streaming`,
        `in archive recovery`) when it publishes one, else its PostgreSQL state."""
        if member.name != self.leader_name and member.state == "running":
            return member.replication_state or member.state
        return member.state

    @property
    def last_timeline(self) -> int:
        """The newest timeline the history knows of (1 when there is no history)."""
        return self.history[-1].timeline + 1 if self.history else 1
