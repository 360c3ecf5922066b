"""Cluster arithmetic: the primary's WAL position, each member's lag behind it, and a
member's fitness to take over with its reason code.

Computed here once, from the cluster as etcd shows it, and used by the HA rules, the
REST API (`GET /cluster`, the health checks' `lag=`), `POST /switchover` and `haactl`
(`list`, `explain`, `switchover`, `dsn`), so every one of them shows a member the same
lag and the same verdict.  Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from haagent.config.model import DynamicConfig
from haagent.core.reasons import Code
from haagent.dcs.model import ClusterView, Member

# The reason code of a running member that is not a replica (a primary without the key,
# a demoted node): not a decision's code, so not one of `Code`.
NOT_A_REPLICA = "not_a_replica"


def primary_position(view: ClusterView) -> int | None:
    """The last known primary WAL position: the newer of the `status` key's optime and the
    leader's member key; None when neither is known."""
    optime = view.status.optime
    leader = view.members.get(view.leader_name or "")
    if leader is not None and leader.xlog_location is not None:
        optime = max(optime or 0, leader.xlog_location)
    return optime


def lag(primary: int | None, position: int | None) -> int | None:
    """Bytes `position` is behind `primary` (0 when it is ahead); None if either is unknown."""
    if primary is None or position is None:
        return None
    return max(0, primary - position)


def member_lag(view: ClusterView, member: Member) -> int | None:
    """Bytes `member` (its best WAL position) is behind the last known primary position;
    None if either is unknown."""
    return lag(primary_position(view), member.lsn)


@dataclass(frozen=True)
class Unfit:
    """Why a member could not take over now: a stable code and a sentence for people."""

    code: str  # a `Code` value, or NOT_A_REPLICA
    text: str

    def __str__(self) -> str:
        return self.text


def unfit_reason(view: ClusterView, config: DynamicConfig, member: Member) -> Unfit | None:
    """Why `member` could not take over now, or None if it could: a running replica,
    failover allowed by its tags, within maximum_lag_on_failover, and a synchronous
    standby when synchronous_mode names some (under quorum commit any member may be
    chosen, as in Patroni: the votes decide an automatic failover, not the key)."""
    if member.state != "running" or member.role != "replica":
        code = Code.POSTGRES_NOT_RUNNING.value if member.state != "running" else NOT_A_REPLICA
        text = f"{member.name} is not a running replica (state {member.state}, role {member.role})"
        return Unfit(code, text)
    if member.nofailover or member.failover_priority <= 0:
        return Unfit(
            Code.NOFAILOVER.value, f"{member.name} is tagged nofailover (or failover_priority 0)"
        )
    behind = member_lag(view, member)
    if behind is not None and behind > config.maximum_lag_on_failover:
        return Unfit(
            Code.LAGGING.value,
            f"{member.name} lags {behind} bytes behind the primary "
            f"(maximum_lag_on_failover is {config.maximum_lag_on_failover})",
        )
    sync = view.sync if config.synchronous and not config.quorum else None
    if sync is not None and sync.sync_standby and not sync.is_sync(member.name):
        return Unfit(
            Code.NOT_SYNCHRONOUS.value,
            f"{member.name} is not a synchronous standby (synchronous_mode is on)",
        )
    return None
