"""Rules for the node that holds the leader key."""

from __future__ import annotations

from haagent.core.actions import (
    Action,
    AppendHistory,
    ArmFencing,
    Checkpoint,
    ClearFailoverKey,
    Demote,
    DisarmFencing,
    Promote,
    ReleaseLeaderKey,
    RenewLeaderKey,
    StartPostgres,
    StopPostgres,
    UpdateMember,
)
from haagent.core.reasons import Code, required_watchdog_unavailable
from haagent.core.roles import Role
from haagent.core.rules.common import decision, healthy_replica
from haagent.core.rules.promotion import before_promotion
from haagent.core.rules.standby import decide_standby_leader
from haagent.core.rules.sync_choice import sync_actions, sync_pending
from haagent.core.slots import leader_slot_actions
from haagent.core.snapshot import Decision, Snapshot


def switchover_target(s: Snapshot) -> str | None:
    """Who to hand over to (a name, or "any healthy replica") when the `failover` key asks
    this leader to hand over now and a fit member exists; None when there is nothing to do
    yet.  Raises `Unfit` otherwise."""
    fo = s.cluster.failover
    if fo is None or (fo.leader is None and fo.candidate is None):
        return None
    if fo.leader not in (None, s.name) or fo.candidate == s.name:
        raise Unfit(
            f"ignoring a failover request for leader {fo.leader} and candidate "
            f"{fo.candidate}: this node ({s.name}) is the leader"
        )
    if fo.scheduled_at is not None and s.wall < fo.scheduled_at:
        return None
    members = s.cluster.members
    if fo.candidate is not None:
        candidate = members.get(fo.candidate)
        fit = candidate is not None and healthy_replica(s, candidate)
        who = fo.candidate
    else:
        fit = any(healthy_replica(s, m) for m in members.values())
        who = "any healthy replica"
    if not fit:
        raise Unfit(
            f"switchover to {who} cancelled: no such member is a running, streaming "
            f"replica within maximum_lag_on_failover"
        )
    return who


class Unfit(Exception):
    """A failover request this leader cannot carry out; the text says why."""


def switchover(s: Snapshot) -> Decision | None:
    """Hand over leadership when the `failover` key asks for it and it is time."""
    try:
        who = switchover_target(s)
    except Unfit as why:
        return decision(
            [RenewLeaderKey(), ClearFailoverKey(), UpdateMember()],
            Code.SWITCHOVER_CANDIDATE_UNFIT,
            str(why),
            Role.PRIMARY,
        )
    if who is None:
        return None
    if s.config.pause:
        # Maintenance mode: nothing is fenced, and the old primary must not be left
        # stopped (nothing would start it): it runs on as a replica and follows the new
        # leader once there is one.
        return decision(
            [Checkpoint(), Demote("fast", None), ReleaseLeaderKey(), UpdateMember()],
            Code.SWITCHOVER_DEMOTING,
            f"switchover to {who} in maintenance mode: checkpoint, restart as a replica, "
            "release the leader key",
            Role.DEMOTED,
            again=True,
        )
    return decision(
        [Checkpoint(), StopPostgres("fast"), ReleaseLeaderKey(), DisarmFencing(), UpdateMember()],
        Code.SWITCHOVER_DEMOTING,
        f"switchover to {who}: checkpoint, stop PostgreSQL, release the leader key",
        Role.DEMOTED,
        again=True,
    )


def standby_leader(s: Snapshot) -> Decision:
    """The key holder of a standby cluster (`rules/standby.py`), with a switchover asked."""
    handover = None
    if s.postgres.running and s.postgres.accepting and s.postgres.in_recovery:
        try:
            handover = switchover_target(s)
        except Unfit as why:
            return decision(
                [RenewLeaderKey(), ClearFailoverKey(), UpdateMember()],
                Code.SWITCHOVER_CANDIDATE_UNFIT,
                str(why),
                Role.STANDBY_LEADER,
            )
    return decide_standby_leader(s, handover)


def decide_leader(s: Snapshot) -> Decision:
    pg = s.postgres
    cfg = s.config
    failure = s.local.renew_failure
    if failure is not None and s.is_running_primary and not s.local.failsafe_confirmed:
        return decision(
            [Demote("fast", None), DisarmFencing(), UpdateMember()],
            Code.LEADER_RENEW_FAILED,
            f"the leader key could not be renewed ({failure}): writes stopped, running as a "
            "replica until a renewal succeeds",
            Role.DEMOTED,
            again=True,
        )
    if pg.running and pg.accepting and not pg.in_recovery and not s.watchdog_ok:
        return decision(
            [Demote("fast", None), ReleaseLeaderKey(), DisarmFencing(), UpdateMember()],
            Code.WATCHDOG_UNAVAILABLE,
            f"{s.watchdog_reason or required_watchdog_unavailable()}; stopping writes and "
            "giving the leader key back",
            Role.DEMOTED,
            again=True,
        )
    if cfg.standby_cluster is not None:
        return standby_leader(s)
    if pg.running and pg.accepting and not pg.in_recovery:
        handover = switchover(s)
        if handover is not None:
            return handover
        actions: list[Action] = [RenewLeaderKey(), ArmFencing()]
        actions += sync_actions(s)
        actions += [*leader_slot_actions(s), UpdateMember()]
        scheduled = s.cluster.failover is not None and s.cluster.failover.scheduled_at is not None
        return decision(
            actions,
            Code.SWITCHOVER_SCHEDULED if scheduled else Code.LEADER_RENEWED,
            "holds the leader key and runs the primary"
            + (" (a switchover is scheduled)" if scheduled else ""),
            Role.PRIMARY,
            soon=sync_pending(s),
        )
    if pg.running and pg.accepting and pg.in_recovery:
        if not s.watchdog_ok:
            return decision(
                [ReleaseLeaderKey(), UpdateMember()],
                Code.WATCHDOG_UNAVAILABLE,
                f"{s.watchdog_reason or required_watchdog_unavailable()}; "
                "giving the leader key back",
                Role.REPLICA,
            )
        promote: list[Action] = [
            RenewLeaderKey(),
            ArmFencing(),
            *before_promotion(s),
            Promote(),
            AppendHistory("failover"),
        ]
        if s.cluster.failover is not None:
            promote.append(ClearFailoverKey())
        promote.append(UpdateMember())
        return decision(
            promote,
            Code.PROMOTING,
            "holds the leader key: promoting PostgreSQL",
            Role.PRIMARY,
            again=True,
        )
    if pg.running:
        return decision(
            [RenewLeaderKey(), ArmFencing(), UpdateMember()],
            Code.RESTARTING_CRASHED_PRIMARY,
            "holds the leader key; PostgreSQL is starting and not yet accepting connections",
            Role.PRIMARY,
        )
    if s.local.start_failure is not None:
        return decision(
            [ReleaseLeaderKey(), DisarmFencing(), UpdateMember()],
            Code.PRIMARY_START_FAILED,
            f"PostgreSQL failed to start as the primary ({s.local.start_failure}): releasing "
            "the leader key so that a replica takes over",
            Role.DEMOTED,
            again=True,
        )
    down_since = s.local.postgres_down_since if s.local.postgres_down_since is not None else s.now
    down_for = s.now - down_since
    if not pg.data_dir_initialized or down_for >= cfg.primary_start_timeout:
        return decision(
            [ReleaseLeaderKey(), DisarmFencing(), UpdateMember()],
            Code.PRIMARY_START_TIMEOUT,
            f"PostgreSQL has been down for {down_for:.1f}s "
            f"(primary_start_timeout is {cfg.primary_start_timeout}s): releasing the leader key "
            "so a replica can take over",
            Role.DEMOTED,
            again=True,
        )
    return decision(
        [RenewLeaderKey(), ArmFencing(), StartPostgres("primary"), UpdateMember()],
        Code.RESTARTING_CRASHED_PRIMARY,
        f"PostgreSQL stopped while this node holds the leader key: restarting it in place "
        f"(down {down_for:.1f}s of primary_start_timeout {cfg.primary_start_timeout}s)",
        Role.PRIMARY,
        again=True,
    )
