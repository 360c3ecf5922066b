"""The frozen input of `decide` and its output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from haagent.config.model import DynamicConfig, Tags
from haagent.core.actions import Action
from haagent.core.reasons import Reason
from haagent.core.roles import Role
from haagent.dcs.model import ClusterView
from haagent.postgres.model import PostgresStatus


@dataclass(frozen=True)
class PeerPosition:
    """What a peer said over its REST API when asked during a leader race."""

    name: str
    reachable: bool
    lsn: int | None = None
    timeline: int | None = None
    running: bool = False
    in_recovery: bool = True
    failover_priority: int = 1
    nofailover: bool = False


@dataclass(frozen=True)
class ManualRequest:
    """A local action asked for over the API: restart or reinitialize."""

    kind: str  # "restart" | "reinitialize"
    force: bool = False
    from_leader: bool = False


@dataclass(frozen=True)
class LocalFacts:
    """What a decision sees of the engine's memory (`core.memory.Memory.facts`): outcomes
    of earlier actions, with the lease keeper's facts about the leader key."""

    role: Role = Role.UNINITIALIZED
    # The earliest moment our leader key can expire (the last good renewal's send time + ttl).
    leader_lease_expires: float | None = None
    # Why the last renewal of the leader key failed; None after a success.
    renew_failure: str | None = None
    # We won the initialize race and run the bootstrap.
    bootstrapping: bool = False
    # Since when PostgreSQL is down while we hold the key.
    postgres_down_since: float | None = None
    # Why the last start as the primary failed (PostgreSQL exited during startup).
    start_failure: str | None = None
    # Why the last rewind failed (the data directory is kept until someone decides).
    rewind_failed: str | None = None
    replica_clone_failures: int = 0
    # failsafe: every member listed in `failsafe` confirmed over the REST API.
    failsafe_confirmed: bool = False
    # A leader in failsafe mode asked us to confirm it within ttl: do not race.
    failsafe_leader_seen: bool = False
    # Since when this node has seen no leader key (for how long a switchover candidate
    # may keep the others waiting).
    leaderless_since: float | None = None
    shutdown_requested: bool = False
    manual: ManualRequest | None = None
    # The leader our PostgreSQL currently follows (as configured by the engine).
    following: str | None = None
    # The primary's WAL position when each standby was named in synchronous_standby_names:
    # it counts as synchronous (and enters the `sync` key) only once it has flushed it.
    sync_named_at: Mapping[str, int] = field(default_factory=dict)
    # Quorum commit: the synchronous_standby_names value in force since this node's primary
    # was at some position, and the standbys (lower case) seen to have flushed past that
    # position since: every commit acknowledged before that value took effect is on them.
    sync_epoch_value: str | None = None
    sync_caught: frozenset[str] = frozenset()
    # The slots of members seen within member_slots_ttl (slot names), kept for them.
    slots_retained: tuple[str, ...] = ()
    # When the last copy of logical slots from the leader failed (a copy restarts PostgreSQL).
    slot_copy_failed_at: float | None = None
    # Why this node's pre_promote script cancelled its promotion less than ttl ago (it
    # gives the key back and keeps out of the race for that long, as Patroni does).
    pre_promote_failure: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything one HA cycle knows, observed before deciding.

    `now` is monotonic seconds; `wall` is the wall clock with a timezone (for
    scheduled switchovers).  `peers` is None until the engine asked them.
    """

    name: str
    now: float
    wall: datetime
    tags: Tags
    config: DynamicConfig
    cluster: ClusterView
    dcs_ok: bool
    postgres: PostgresStatus
    local: LocalFacts = LocalFacts()
    watchdog_ok: bool = True
    watchdog_reason: str | None = None
    peers: Mapping[str, PeerPosition] | None = None
    dcs_error: str | None = None
    # A `create_replica_methods` method can build this node with no member to copy
    # from (`no_leader`: from a backup).
    clone_without_leader: bool = False

    @property
    def holds_key(self) -> bool:
        return self.cluster.leader is not None and self.cluster.leader.name == self.name

    @property
    def is_running_primary(self) -> bool:
        return self.postgres.running and not self.postgres.in_recovery


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...]
    reason: Reason
    role: Role
    # Decide again right after acting (a step of a longer sequence, or peers were asked for).
    again: bool = False
    # Decide again within a second rather than after loop_wait (waiting for something that
    # normally takes milliseconds, such as a new synchronous standby catching up).
    soon: bool = False
    details: Mapping[str, object] = field(default_factory=dict)
