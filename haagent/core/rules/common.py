"""Small pieces the rules share."""

from __future__ import annotations

from collections.abc import Sequence

from haagent.config.model import DynamicConfig
from haagent.core.actions import Action, KeepaliveLease, UpdateMember
from haagent.core.reasons import Code, Reason
from haagent.core.roles import Role
from haagent.core.snapshot import Decision, Snapshot
from haagent.dcs.model import ClusterView, Member


def decision(
    actions: Sequence[Action],
    code: Code,
    text: str,
    role: Role,
    *,
    again: bool = False,
    soon: bool = False,
) -> Decision:
    return Decision(tuple(actions), Reason(code, text), role, again=again, soon=soon)


def idle(s: Snapshot, code: Code, text: str, role: Role | None = None) -> Decision:
    """Keep our lease and member key fresh and do nothing else."""
    return decision(
        [KeepaliveLease(), UpdateMember()], code, text, role if role is not None else current(s)
    )


def current(s: Snapshot) -> Role:
    """The role the observed PostgreSQL state amounts to right now."""
    pg = s.postgres
    if not pg.data_dir_initialized:
        return Role.UNINITIALIZED
    if not pg.running:
        return Role.STOPPED
    if pg.accepting and not pg.in_recovery:
        return Role.PRIMARY if s.holds_key else Role.DEMOTED
    return Role.REPLICA


def primary_position(view: ClusterView) -> int | None:
    """The last known primary WAL position: the `status` key or the leader's member key."""
    optime = view.status.optime
    leader = view.members.get(view.leader_name or "")
    if leader is not None and leader.xlog_location is not None:
        optime = max(optime or 0, leader.xlog_location)
    return optime


def lag_between(primary: int | None, position: int | None) -> int | None:
    if primary is None or position is None:
        return None
    return max(0, primary - position)


def lag_behind_leader(s: Snapshot) -> int | None:
    """Bytes between the last known primary position and ours; None if either is unknown."""
    return lag_between(primary_position(s.cluster), s.postgres.lsn)


def unfit_reason(view: ClusterView, config: DynamicConfig, member: Member) -> str | None:
    """Why `member` could not take over now, or None if it could (running streaming
    replica, failover allowed, within maximum_lag_on_failover, synchronous if required)."""
    if member.state != "running" or member.role != "replica":
        return f"{member.name} is not a running replica (state {member.state}, role {member.role})"
    if member.nofailover or member.failover_priority <= 0:
        return f"{member.name} is tagged nofailover (or failover_priority 0)"
    lag = lag_of(view, member)
    if lag is not None and lag > config.maximum_lag_on_failover:
        return (
            f"{member.name} lags {lag} bytes behind the primary "
            f"(maximum_lag_on_failover is {config.maximum_lag_on_failover})"
        )
    sync = view.sync if config.synchronous_mode else None
    if sync is not None and sync.sync_standby and not sync.is_sync(member.name):
        return f"{member.name} is not a synchronous standby (synchronous_mode is on)"
    return None


def lag_of(view: ClusterView, member: Member) -> int | None:
    """Bytes `member` is behind the last known primary position; None if unknown."""
    return lag_between(primary_position(view), member.lsn)


def healthy_replica(s: Snapshot, member: Member) -> bool:
    """A member other than us that could take over now."""
    return member.name != s.name and unfit_reason(s.cluster, s.config, member) is None
