"""Typed actions the decider returns and the executor runs, in order.

Ordering contract (the executor relies on it, `decide` guarantees it):
- a decision's actions run in the order given; the first failure skips the rest
  and its outcome is fed into the next snapshot (the loop then decides again at once);
- fencing (watchdog keepalive, lease fence deadline) is extended by the engine's lease
  keeper after each successful renewal of the leader key, and by nothing else;
- `TakeLeaderKey` or `RenewLeaderKey`, then `ArmFencing`, before `Promote` or
  `StartPostgres("primary")`: PostgreSQL never runs as a primary unfenced;
- a promotion is `TakeLeaderKey`/`RenewLeaderKey`, `ArmFencing`, the `sync` key (in
  synchronous mode), `PrePromote`, `Promote`: the user's pre_promote script runs once
  the node is fenced and named, and its failure stops the promotion;
- a primary stops accepting writes (`Demote`, `StopPostgres`) before `ReleaseLeaderKey`,
  and `DisarmFencing` only once PostgreSQL is not a primary (the executor checks it;
  maintenance mode excepted, where nothing is fenced);
- the `sync` key names a standby only after `synchronous_standby_names` does
  (`SetSyncStandbys` then `WriteSyncKey`), and the reverse when removing one.
Every action is idempotent and safe to retry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from haagent.postgres.slots import SlotChanges, SlotSpec
from haagent.postgres.sync_names import SyncMethod, synchronous_standby_names

StopMode = Literal["smart", "fast", "immediate"]


@dataclass(frozen=True)
class ObservePeers:
    """Ask every member for its WAL position, then decide again."""


@dataclass(frozen=True)
class RaceInitialize:
    """Take the `initialize` key if absent: "" for a new cluster, a system id for existing data."""

    value: str = ""


@dataclass(frozen=True)
class BootstrapCluster:
    """initdb, start, create roles, run post_bootstrap; on failure, cancel `initialize`."""


@dataclass(frozen=True)
class BootstrapStandbyLeader:
    """A new standby cluster: clone the data directory from the remote primary of the
    `standby_cluster` section; on failure, cancel `initialize` (as `BootstrapCluster`)."""


@dataclass(frozen=True)
class SetInitialize:
    """Write the local system identifier into `initialize`."""


@dataclass(frozen=True)
class TakeLeaderKey:
    pass


@dataclass(frozen=True)
class RenewLeaderKey:
    """Make sure the leader key was renewed just now (the lease keeper renews it)."""


@dataclass(frozen=True)
class ReleaseLeaderKey:
    pass


@dataclass(frozen=True)
class KeepaliveLease:
    """Keep the member's lease (and so its member key) alive when not the leader."""


@dataclass(frozen=True)
class ArmFencing:
    """Arm the watchdog and hand the lease fence the current lease (idempotent)."""


@dataclass(frozen=True)
class DisarmFencing:
    """PostgreSQL is not a primary (or maintenance mode): disarm the watchdog and the fence."""


@dataclass(frozen=True)
class StopRenewing:
    """Leave the leader key to expire without touching PostgreSQL (shutdown in pause)."""


@dataclass(frozen=True)
class CreateReplica:
    """Build the data directory with `create_replica_methods`, in order, from `source` (a
    member name), or with no source (None: the methods that need no leader, `no_leader`).

    `basebackup_only`: pg_basebackup alone (a reinitialize asked to copy from the leader)."""

    source: str | None
    basebackup_only: bool = False


@dataclass(frozen=True)
class StartPostgres:
    """Start as primary, or as a replica streaming from `leader`: the upstream, a member or
    `core.topology.REMOTE` (None: a replica with no upstream, or replaying the archive only).
    A replica whose timeline diverged is rewound first, from `rewind_from` when it streams
    from a standby (None: from `leader`)."""

    role: Literal["primary", "replica"]
    leader: str | None = None
    rewind_from: str | None = None


@dataclass(frozen=True)
class StopPostgres:
    mode: StopMode = "fast"
    checkpoint: bool = False


@dataclass(frozen=True)
class RestartPostgres:
    role: Literal["primary", "replica"]
    leader: str | None = None
    rewind_from: str | None = None


@dataclass(frozen=True)
class PrePromote:
    """Run `postgresql.pre_promote` (when set): a non-zero exit cancels the promotion."""


@dataclass(frozen=True)
class Promote:
    pass


@dataclass(frozen=True)
class Demote:
    """Stop accepting writes now (`mode`), then run as a replica of `leader` when known.

    A fast shutdown stops writes as soon as an immediate one (every backend is
    terminated at once) and lets the replicas receive the last WAL; the engine
    escalates to immediate before the lease can expire."""

    mode: StopMode = "fast"
    leader: str | None = None
    rewind_from: str | None = None


@dataclass(frozen=True)
class Follow:
    """Point the replica at `leader`, its upstream (primary_conninfo; None: no streaming,
    the archive only), rewinding first (from `rewind_from`, else `leader`) if the timelines
    diverged.  `recheck`: look for a divergence even when the upstream stays the same (it
    moved to a new timeline this replica cannot follow)."""

    leader: str | None
    rewind_from: str | None = None
    recheck: bool = False


@dataclass(frozen=True)
class Checkpoint:
    pass


@dataclass(frozen=True)
class AppendHistory:
    """Add the timeline switch of the promotion that just happened to `history`."""

    reason: str


@dataclass(frozen=True)
class ClearFailoverKey:
    pass


@dataclass(frozen=True)
class EnsureSlots:
    """Change this member's replication slots as the slot rules say (`core/slots.py`):
    drop, create, advance, and report the lost ones."""

    changes: SlotChanges = field(default_factory=SlotChanges)


@dataclass(frozen=True)
class CopyLogicalSlots:
    """A replica of PostgreSQL before 17: copy these permanent logical slots from `leader`
    (PostgreSQL restarts once to load them)."""

    leader: str
    slots: tuple[SlotSpec, ...]


@dataclass(frozen=True)
class SetSyncStandbys:
    """Write `synchronous_standby_names` for these members (empty: asynchronous)."""

    members: tuple[str, ...]
    count: int
    strict: bool = False
    method: SyncMethod = "FIRST"  # ANY: quorum commit

    @property
    def value(self) -> str:
        """The exact `synchronous_standby_names` value PostgreSQL gets."""
        return synchronous_standby_names(self.members, self.count, self.method, strict=self.strict)


@dataclass(frozen=True)
class WriteSyncKey:
    """The `sync` key: the leader, the synchronous standbys (quorum commit: the voters) and
    `quorum`, the votes besides its own a candidate needs from them (compare-and-swap on
    `expected_revision`, None: unconditional)."""

    leader: str | None
    members: tuple[str, ...]
    expected_revision: int | None
    quorum: int = 0


@dataclass(frozen=True)
class WriteStatusKey:
    """Publish the leader's WAL position and timeline in `status`, with its slots'
    positions, the member slots it keeps (`retain_slots`) and its lost slots."""

    slots: tuple[tuple[str, int], ...] = ()
    retain: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpdateMember:
    """Publish this member's key (skipped by the DCS layer when unchanged)."""


@dataclass(frozen=True)
class RemoveDataDirectory:
    """Only ever for an explicit request (reinit); `reason` is logged."""

    reason: str


Action = (
    ObservePeers
    | RaceInitialize
    | BootstrapCluster
    | BootstrapStandbyLeader
    | SetInitialize
    | TakeLeaderKey
    | RenewLeaderKey
    | ReleaseLeaderKey
    | KeepaliveLease
    | ArmFencing
    | DisarmFencing
    | StopRenewing
    | CreateReplica
    | StartPostgres
    | StopPostgres
    | RestartPostgres
    | PrePromote
    | Promote
    | Demote
    | Follow
    | Checkpoint
    | AppendHistory
    | ClearFailoverKey
    | EnsureSlots
    | CopyLogicalSlots
    | SetSyncStandbys
    | WriteSyncKey
    | WriteStatusKey
    | UpdateMember
    | RemoveDataDirectory
)

ACTION_TYPES: tuple[type, ...] = Action.__args__
