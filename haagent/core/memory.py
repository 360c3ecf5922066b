"""What the engine remembers between HA cycles, and how observations and requests change it.

`Memory` is a value: the role this node reached, a bootstrap in progress, why a
start or a rewind failed, a request waiting, what the peers said, whether etcd
answers.  The engine holds one and replaces it with what a function of the core
returns, and nothing else changes it:

- `observed` after each observation (PostgreSQL's status and the cluster view);
- `core.outcomes.after` after each action, with the action's outcome;
- `decided` once a decision is taken, `concluded` once its actions ran (the role
  reached, `core.roles.role_reached`);
- `asked`, `failsafe_leader_heard` and `shutdown_asked` for what the REST API or a
  signal asks; `etcd_answered` and `etcd_unreachable` for etcd's answers.

`facts()` is the part a decision sees (`LocalFacts`), with what the lease keeper
knows of the leader key.  Pure: no I/O, no clock (the time is an argument).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from haagent.config.model import DynamicConfig
from haagent.core.roles import Role, role_reached
from haagent.core.slots import member_slot_names
from haagent.core.snapshot import Decision, LocalFacts, ManualRequest, PeerPosition
from haagent.dcs.model import ClusterView, Member
from haagent.postgres.model import PostgresStatus
from haagent.postgres.slots import gone_for_longer, slot_name
from haagent.postgres.sync_names import parse_synchronous_standby_names


@dataclass(frozen=True)
class Memory:
    role: Role = Role.UNINITIALIZED
    bootstrapping: bool = False
    postgres_down_since: float | None = None
    start_failure: str | None = None
    rewind_failed: str | None = None
    replica_clone_failures: int = 0
    # When a leader last asked us to confirm it in failsafe mode (POST /failsafe).
    failsafe_heard_at: float | None = None
    leaderless_since: float | None = None
    shutdown_requested: bool = False
    manual: ManualRequest | None = None
    following: str | None = None
    # What the peers answered when last asked (ObservePeers), for the next decision only.
    peers: Mapping[str, PeerPosition] | None = None
    dcs_ok: bool = True
    dcs_error: str | None = None
    # When each member's slot (by slot name) was last needed: its member in the view, or,
    # while another node leads, listed in the leader's `retain_slots`; kept for
    # member_slots_ttl, so that a member away for a while finds its slot (and its WAL).
    slot_last_seen: Mapping[str, float] = field(default_factory=dict)
    # When the last copy of logical slots from the leader failed.
    slot_copy_failed_at: float | None = None
    # Members seen in the view lately, kept after their member key is gone: one whose key
    # expired may still run PostgreSQL (cut off from etcd, or in maintenance mode), and a
    # leader race asks it too before it promotes anyone.
    known_members: Mapping[str, tuple[Member, float]] = field(default_factory=dict)
    # The primary's WAL position when each standby was first seen named in
    # synchronous_standby_names.
    sync_named_at: Mapping[str, int] = field(default_factory=dict)
    # Quorum commit: (the synchronous_standby_names value, the primary's WAL position when
    # this node first saw it in force), and the standbys (lower case) seen flushed past it.
    sync_epoch: tuple[str, int] | None = None
    sync_caught: frozenset[str] = frozenset()
    # When and why the pre_promote script last cancelled a promotion.
    pre_promote_failed: tuple[float, str] | None = None

    def facts(
        self,
        *,
        lease_expires: float | None,
        renew_failure: str | None,
        failsafe_confirmed: bool,
        now: float,
        ttl: float,
    ) -> LocalFacts:
        """What a decision sees; the leader key's lease is the lease keeper's."""
        heard = self.failsafe_heard_at
        failed = self.pre_promote_failed
        return LocalFacts(
            failsafe_leader_seen=heard is not None and now - heard <= ttl,
            role=self.role,
            leader_lease_expires=lease_expires,
            renew_failure=renew_failure,
            bootstrapping=self.bootstrapping,
            postgres_down_since=self.postgres_down_since,
            start_failure=self.start_failure,
            rewind_failed=self.rewind_failed,
            replica_clone_failures=self.replica_clone_failures,
            failsafe_confirmed=failsafe_confirmed,
            leaderless_since=self.leaderless_since,
            shutdown_requested=self.shutdown_requested,
            manual=self.manual,
            following=self.following,
            sync_named_at=dict(self.sync_named_at),
            sync_epoch_value=self.sync_epoch[0] if self.sync_epoch is not None else None,
            sync_caught=self.sync_caught,
            slots_retained=tuple(sorted(self.slot_last_seen)),
            slot_copy_failed_at=self.slot_copy_failed_at,
            pre_promote_failure=failed[1] if failed and now - failed[0] < ttl else None,
        )


@dataclass(frozen=True)
class Observation:
    """What one observation saw, as far as the memory cares."""

    name: str  # this member
    postgres: PostgresStatus
    cluster: ClusterView
    config: DynamicConfig
    first_cycle: bool  # the agent's first cycle since it started


def observed(memory: Memory, seen: Observation, now: float) -> Memory:
    """What one observation changes: since when PostgreSQL is down (while we hold the key)
    and the cluster has no leader, the members seen lately, the synchronous standbys."""
    postgres, cluster, config = seen.postgres, seen.cluster, seen.config
    holds = cluster.leader is not None and cluster.leader.name == seen.name
    down_since = memory.postgres_down_since
    if postgres.running:
        down_since = None
    elif down_since is None and holds:
        down_since = now
    leaderless_since = memory.leaderless_since
    heard = memory.failsafe_heard_at
    if cluster.leader is not None:
        leaderless_since = None
    elif leaderless_since is None:
        leaderless_since = now
        if seen.first_cycle and config.failsafe_mode:
            # Just started, no leader key, failsafe mode: a leader cut off from etcd may
            # still run on its members' confirmations, which this agent has forgotten.
            heard = now
    keep_for = float(config.member_slots_ttl)
    known = {**memory.known_members, **{n: (m, now) for n, m in cluster.members.items()}}
    for gone in gone_for_longer({n: seen for n, (_, seen) in known.items()}, now, keep_for):
        del known[gone]
    slot_seen = dict(memory.slot_last_seen)
    needed = set(member_slot_names(cluster, seen.name, config))
    if not holds:
        # The leader's list: after a failover this node, if it leads, keeps them on.
        needed |= set(cluster.status.retain_slots)
    slot_seen.update(dict.fromkeys(needed - {slot_name(seen.name)}, now))
    for gone in gone_for_longer(slot_seen, now, keep_for):
        del slot_seen[gone]
    sync_named_at = memory.sync_named_at
    epoch, caught = None, frozenset[str]()
    if postgres.running and postgres.accepting and not postgres.in_recovery:
        value = postgres.synchronous_standby_names or ""
        method, _, names = parse_synchronous_standby_names(value)
        # Positions count for `FIRST` only: a standby named by `ANY` may lack commits
        # another acknowledged alone, so a change from ANY starts afresh.
        named = names if method == "FIRST" else []
        sync_named_at = _note_sync_names(sync_named_at, named, postgres.write_lsn)
        epoch, caught = _sync_epoch(memory, value, postgres)
    return replace(
        memory,
        postgres_down_since=down_since,
        leaderless_since=leaderless_since,
        failsafe_heard_at=heard,
        known_members=known,
        slot_last_seen=slot_seen,
        sync_named_at=sync_named_at,
        sync_epoch=epoch,
        sync_caught=caught,
    )


def _sync_epoch(
    memory: Memory, value: str, postgres: PostgresStatus
) -> tuple[tuple[str, int] | None, frozenset[str]]:
    """Since when (the primary's WAL position) `value` is in force, and the standbys seen to
    have flushed past it: a new value, or a node new to running the primary, starts a new
    epoch with nobody caught up."""
    epoch, caught = memory.sync_epoch, memory.sync_caught
    if epoch is None or epoch[0] != value:
        if postgres.write_lsn is None:
            return None, frozenset()
        epoch, caught = (value, postgres.write_lsn), frozenset()
    flushed = {
        row.application_name.lower()
        for row in postgres.replication
        if row.flush_lsn is not None and row.flush_lsn >= epoch[1]
    }
    return epoch, caught | flushed


def _note_sync_names(
    named_at: Mapping[str, int], names: list[str], position: int | None
) -> dict[str, int]:
    """The primary's WAL position when each standby was first seen named in
    synchronous_standby_names (a later position is stricter, so this is safe)."""
    kept = {n: p for n, p in named_at.items() if n in names}
    if position is not None:
        for n in names:
            kept.setdefault(n, position)
    return kept


def decided(memory: Memory) -> Memory:
    """A decision was taken: the peers' answers were for it only."""
    return replace(memory, peers=None)


def concluded(memory: Memory, decision: Decision, failed: bool) -> Memory:
    """A decision's actions ran (`failed`: one of them failed): the role reached."""
    return replace(memory, role=role_reached(memory.role, decision.role, failed))


def etcd_answered(memory: Memory) -> Memory:
    return replace(memory, dcs_ok=True, dcs_error=None)


def etcd_unreachable(memory: Memory, why: str) -> Memory:
    return replace(memory, dcs_ok=False, dcs_error=why)


def asked(memory: Memory, manual: ManualRequest) -> Memory:
    """A restart or a reinitialize asked over the REST API; one at a time: while another
    is in progress (`manual`), nothing changes."""
    return memory if memory.manual is not None else replace(memory, manual=manual)


def failsafe_leader_heard(memory: Memory, now: float) -> Memory:
    """A leader in failsafe mode asked this node to confirm it (POST /failsafe)."""
    return replace(memory, failsafe_heard_at=now)


def shutdown_asked(memory: Memory) -> Memory:
    """The agent is asked to stop (SIGTERM): the last cycle hands over; no request waits."""
    return replace(memory, shutdown_requested=True, manual=None)
