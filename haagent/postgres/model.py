"""What the agent observes of its local PostgreSQL, as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from haagent.config.parse import is_hostname, is_ip, is_member_name


class PgState(StrEnum):
    """The `state` a member publishes (Patroni's words)."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CRASHED = "crashed"
    RESTARTING = "restarting"
    CREATING_REPLICA = "creating replica"
    INITIALIZING = "initializing new cluster"
    RUNNING_CUSTOM_BOOTSTRAP = "running custom bootstrap script"
    START_FAILED = "start failed"
    BOOTSTRAP_FAILED = "bootstrap failed"
    REWINDING = "rewinding"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Upstream:
    """A member to replicate or clone from: its name (for logs) and PostgreSQL address."""

    name: str
    host: str
    port: int
    # When this upstream is a standby (cascading replication): the leader, whose timeline
    # the replica checks and which it rewinds from; None: the upstream itself.
    timeline_source: Upstream | None = field(default=None, compare=False)
    # False: this upstream is a standby and no server can tell its timeline (a standby
    # cluster replaying the archive alone): the replica neither checks nor rewinds, and
    # PostgreSQL's own check (a timeline that is not in its history) is what stops it.
    checks_timeline: bool = field(default=True, compare=False)
    # The remote primary of a standby cluster (`standby_cluster`): streamed from through its
    # `slot` (None: no slot), with the section's recovery settings (`restore_command`, ...)
    # instead of this member's own slot.
    remote: bool = field(default=False, compare=False)
    slot: str | None = field(default=None, compare=False)
    recovery: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def primary(self) -> Upstream:
        """The server to check timelines against and rewind from."""
        return self.timeline_source or self

    def __post_init__(self) -> None:
        # Written into postgresql.conf (primary_conninfo, haagent's upstream comment) and
        # read from etcd: a line break in either would write a setting of its own.
        if not is_member_name(self.name):
            raise ValueError(f"upstream name {self.name[:60]!r} is not a member name")
        if not (is_ip(self.host) or is_hostname(self.host)):
            raise ValueError(f"member {self.name}: host {self.host[:60]!r} is not a host name")
        if not 0 < self.port < 65536:
            raise ValueError(f"member {self.name}: port {self.port} is out of range")

    @classmethod
    def from_conn_url(cls, name: str, conn_url: str) -> Upstream:
        """From a member's published `conn_url` (`postgres://host:port/postgres`)."""
        parsed = urlsplit(conn_url)
        if parsed.hostname is None:
            raise ValueError(f"member {name}: conn_url {conn_url!r} has no host")
        return cls(name, parsed.hostname, parsed.port or 5432)  # port: ValueError if bad

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"


@dataclass(frozen=True)
class TimelineSwitch:
    """The newest timeline switch of this node's history (after a promotion)."""

    timeline: int  # the timeline that ended
    lsn: int  # where it ended
    reason: str


@dataclass(frozen=True)
class ReplicationConnection:
    """One row of pg_stat_replication on this node."""

    usename: str
    application_name: str
    client_addr: str | None
    state: str
    sync_state: str
    sync_priority: int
    write_lsn: int | None = None
    flush_lsn: int | None = None
    replay_lsn: int | None = None


SlotKind = Literal["physical", "logical"]


@dataclass(frozen=True)
class ReplicationSlot:
    """One row of pg_replication_slots on this node.

    `restart_lsn` is the oldest WAL the slot keeps; a logical slot's consumer has
    confirmed every change up to `confirmed_flush_lsn`.  `wal_status` is PostgreSQL's
    (`reserved`, `extended`, `unreserved`, `lost`); a lost slot's WAL is gone.  `failover`
    and `synced` exist from PostgreSQL 17 on (a slot its slot sync worker keeps).
    """

    name: str
    kind: SlotKind
    database: str | None = None
    plugin: str | None = None
    active: bool = False
    temporary: bool = False
    restart_lsn: int | None = None
    confirmed_flush_lsn: int | None = None
    wal_status: str | None = None
    catalog_xmin: int | None = None
    # The oldest transaction a physical slot's consumer still needs (hot_standby_feedback).
    xmin: int | None = None
    failover: bool = False
    synced: bool = False

    @property
    def lost(self) -> bool:
        return self.wal_status == "lost"

    @property
    def position(self) -> int | None:
        """How far its consumer got: a logical slot's confirmed position, a physical
        slot's restart_lsn."""
        return self.confirmed_flush_lsn if self.kind == "logical" else self.restart_lsn


@dataclass(frozen=True)
class PostgresStatus:
    """One bounded observation of the local PostgreSQL.

    `running` is about the postmaster; `accepting` about connections.  LSNs are
    integers (bytes).  On a primary `write_lsn` is pg_current_wal_lsn(); on a
    replica `receive_lsn`/`replay_lsn` come from the WAL receiver and recovery.
    """

    data_dir_exists: bool
    data_dir_initialized: bool
    running: bool
    accepting: bool = False
    in_recovery: bool = False
    timeline: int | None = None
    system_identifier: str | None = None
    server_version: int | None = None
    postmaster_start_time: str | None = None
    write_lsn: int | None = None
    flush_lsn: int | None = None
    receive_lsn: int | None = None
    replay_lsn: int | None = None
    replay_timestamp: str | None = None
    replay_paused: bool = False
    receiver_streaming: bool = False
    primary_conninfo_host: str | None = None
    pending_restart: bool = False
    replication: tuple[ReplicationConnection, ...] = ()
    synchronous_standby_names: str = ""
    slots: tuple[ReplicationSlot, ...] = ()
    # The postmaster's pid, and pg_controldata's "Database cluster state" when it is not running
    # (`shut down`, `shut down in recovery`, `in production` after a crash...).
    postmaster_pid: int | None = None
    cluster_state: str | None = None
    # Set when the last status query failed (timed out, refused...), with why.
    error: str | None = None

    @property
    def lsn(self) -> int | None:
        """This node's WAL position: a primary's write, a replica's best of receive/replay."""
        if not self.in_recovery:
            return self.write_lsn
        positions = [p for p in (self.receive_lsn, self.replay_lsn) if p is not None]
        return max(positions) if positions else None
