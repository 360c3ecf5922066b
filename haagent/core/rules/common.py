"""Small pieces the rules share."""

from __future__ import annotations

from collections.abc import Sequence

from haagent.core.actions import Action, KeepaliveLease, UpdateMember
from haagent.core.reasons import Code, Reason
from haagent.core.roles import Role
from haagent.core.snapshot import Decision, Snapshot
from haagent.dcs.model import Member


def decision(
    actions: Sequence[Action], code: Code, text: str, role: Role, *, again: bool = False
) -> Decision:
    return Decision(tuple(actions), Reason(code, text), role, again=again)


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


def lag_behind_leader(s: Snapshot) -> int | None:
    """Bytes between the last known primary position and ours; None if either is unknown."""
    optime = s.cluster.status.optime
    leader = s.cluster.members.get(s.cluster.leader_name or "")
    if leader is not None and leader.xlog_location is not None:
        optime = max(optime or 0, leader.xlog_location)
    mine = s.postgres.lsn
    if optime is None or mine is None:
        return None
    return max(0, optime - mine)


def member_lag(s: Snapshot, member: Member) -> int | None:
    optime = s.cluster.status.optime
    leader = s.cluster.members.get(s.cluster.leader_name or "")
    if leader is not None and leader.xlog_location is not None:
        optime = max(optime or 0, leader.xlog_location)
    if optime is None or member.lsn is None:
        return None
    return max(0, optime - member.lsn)


def healthy_replica(s: Snapshot, member: Member) -> bool:
    """A member that could take over now: running replica, failover allowed, not lagging."""
    if member.name == s.name or member.state != "running" or member.role not in ("replica",):
        return False
    if member.nofailover or member.failover_priority <= 0:
        return False
    lag = member_lag(s, member)
    if lag is not None and lag > s.config.maximum_lag_on_failover:
        return False
    if s.config.synchronous_mode and s.cluster.sync and s.cluster.sync.sync_standby:
        return s.cluster.sync.is_sync(member.name)
    return True
