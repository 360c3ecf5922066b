"""Rules that override the normal ones: shutdown, maintenance mode, etcd away, manual requests."""

from __future__ import annotations

from haagent.core.actions import (
    Action,
    AppendHistory,
    ArmFencing,
    Checkpoint,
    ClearFailoverKey,
    CreateReplica,
    Demote,
    DisarmFencing,
    Follow,
    KeepaliveLease,
    Promote,
    ReleaseLeaderKey,
    RemoveDataDirectory,
    RenewLeaderKey,
    RestartPostgres,
    StartPostgres,
    StopPostgres,
    StopRenewing,
    TakeLeaderKey,
    UpdateMember,
)
from haagent.core.reasons import Code
from haagent.core.roles import Role
from haagent.core.rules.bootstrap import clone_source
from haagent.core.rules.common import current, decision
from haagent.core.rules.leader import switchover
from haagent.core.rules.promotion import before_promotion
from haagent.core.rules.replica import stream_plan, upstream_text
from haagent.core.slots import leader_slot_actions, replica_slot_actions
from haagent.core.snapshot import Decision, Snapshot
from haagent.core.topology import REMOTE


def decide_shutdown(s: Snapshot) -> Decision:
    if s.config.pause:
        # Maintenance mode: the agent leaves PostgreSQL and the leader key alone, as
        # Patroni does; the key expires ttl seconds after this agent is gone.
        return decision(
            [StopRenewing(), DisarmFencing()],
            Code.SHUTTING_DOWN,
            "shutting down in maintenance mode: PostgreSQL keeps running and the leader key "
            "is left to expire",
            current(s),
        )
    if s.holds_key and s.is_running_primary:
        return decision(
            [Checkpoint(), StopPostgres("fast"), ReleaseLeaderKey(), DisarmFencing()],
            Code.SHUTTING_DOWN,
            "shutting down: checkpoint, stop PostgreSQL, release the leader key for a replica",
            Role.STOPPED,
        )
    actions: list[Action] = [StopPostgres("fast"), DisarmFencing()]
    if s.holds_key:
        actions.append(ReleaseLeaderKey())
    return decision(actions, Code.SHUTTING_DOWN, "shutting down: stopping PostgreSQL", Role.STOPPED)


def decide_paused(s: Snapshot) -> Decision:
    role = current(s)
    text = "maintenance mode (pause): no automatic action"
    if not s.dcs_ok:
        return decision([], Code.PAUSED, f"{text}; etcd cannot be reached", role)
    if s.holds_key:
        if s.is_running_primary:
            handover = switchover(s)
            if handover is not None:
                return handover
        # Slots are kept as usual (a member that follows a new leader in maintenance mode
        # needs its slot); nothing starts, stops or promotes PostgreSQL.
        upkeep: list[Action] = leader_slot_actions(s) if s.is_running_primary else []
        return decision(
            [RenewLeaderKey(), DisarmFencing(), *upkeep, UpdateMember()],
            Code.PAUSED,
            text + "; keeps the key",
            role,
        )
    fo = s.cluster.failover
    if (
        s.cluster.leader is None
        and fo is not None
        and fo.candidate == s.name
        and s.tags.can_be_leader
        and s.postgres.running
        and s.postgres.accepting
    ):
        # A manual switchover or failover in maintenance mode: this node was chosen.
        standby = s.config.standby_cluster is not None
        actions: list[Action] = [TakeLeaderKey()]
        if s.postgres.in_recovery and not standby:
            actions += before_promotion(s)
            actions += [Promote(), AppendHistory("switchover" if fo.leader else "failover")]
        elif standby:
            actions.append(Follow(REMOTE))
        actions += [ClearFailoverKey(), UpdateMember()]
        return decision(
            actions,
            Code.PAUSED,
            f"{text}, but this node is the chosen candidate of a manual "
            f"{'switchover' if fo.leader else 'failover'}: taking the leader key and "
            + ("following the remote primary" if standby else "promoting"),
            Role.STANDBY_LEADER if standby else Role.PRIMARY,
            again=True,
        )
    leader = s.cluster.leader_name
    upstream, rewind_from = stream_plan(s) if leader is not None else (None, None)
    if (
        leader is not None
        and leader != s.name
        and s.postgres.running
        and s.postgres.accepting
        and s.postgres.in_recovery
        and s.local.following != upstream
    ):
        # As Patroni does in maintenance mode: a replica follows a new leader (a manual
        # switchover or failover), it is not started or stopped otherwise.
        return decision(
            [Follow(upstream, rewind_from), KeepaliveLease(), DisarmFencing(), UpdateMember()],
            Code.PAUSED,
            f"{text}; following {upstream_text(upstream)} (the leader is {leader})",
            Role.REPLICA,
        )
    if s.cluster.leader is None and s.is_running_primary and s.postgres.accepting:
        return decision(
            [TakeLeaderKey(), UpdateMember()],
            Code.PAUSED,
            text + "; the key was free and this node runs the primary: taking it",
            Role.PRIMARY,
        )
    # Slots are kept on a replica too (nothing dropped, nothing copied in maintenance mode).
    upkeep = replica_slot_actions(s) if s.postgres.in_recovery else []
    return decision(
        [KeepaliveLease(), DisarmFencing(), UpdateMember(), *upkeep], Code.PAUSED, text, role
    )


def decide_dcs_unreachable(s: Snapshot) -> Decision:
    """etcd cannot be reached: a primary stops writes unless failsafe confirms it may stay."""
    why = s.dcs_error or "etcd cannot be reached"
    was_leader = s.holds_key or s.local.role == Role.PRIMARY
    if s.is_running_primary and was_leader:
        if s.config.failsafe_mode and s.local.failsafe_confirmed:
            return decision(
                [],
                Code.FAILSAFE_ACTIVE,
                f"{why}; failsafe mode: every member confirmed, staying primary",
                Role.PRIMARY,
            )
        return decision(
            [Demote("fast", None), DisarmFencing()],
            Code.DCS_UNREACHABLE_DEMOTING,
            f"{why}: cannot renew the leader key, stopping writes before it can expire",
            Role.DEMOTED,
        )
    if s.is_running_primary:
        return decision(
            [Demote("fast", None), DisarmFencing()],
            Code.DCS_UNREACHABLE_DEMOTING,
            f"{why}: runs as a primary without the leader key, stopping writes",
            Role.DEMOTED,
        )
    return decision([], Code.DCS_UNREACHABLE, f"{why}: waiting for etcd", current(s))


def decide_manual(s: Snapshot) -> Decision | None:
    request = s.local.manual
    if request is None:
        return None
    leader = s.cluster.leader_name
    if request.kind == "restart":
        if s.holds_key and s.config.standby_cluster is not None:
            return decision(
                [RenewLeaderKey(), RestartPostgres("replica", REMOTE), UpdateMember()],
                Code.RESTARTING,
                "restarting PostgreSQL on request (the standby leader keeps the leader key)",
                Role.STANDBY_LEADER,
                again=True,
            )
        if s.holds_key:
            return decision(
                [RenewLeaderKey(), ArmFencing(), RestartPostgres("primary"), UpdateMember()],
                Code.RESTARTING,
                "restarting PostgreSQL on request (keeps the leader key)",
                Role.PRIMARY,
                again=True,
            )
        upstream, rewind_from = stream_plan(s)
        return decision(
            [RestartPostgres("replica", upstream, rewind_from), KeepaliveLease(), UpdateMember()],
            Code.RESTARTING,
            "restarting PostgreSQL on request",
            Role.REPLICA,
            again=True,
        )
    if request.kind == "reinitialize" and not s.holds_key:
        source = leader if request.from_leader else (clone_source(s) or leader)
        if source is None or source == s.name:
            return None
        upstream, rewind_from = stream_plan(s)
        return decision(
            [
                StopPostgres("immediate"),
                RemoveDataDirectory(f"reinitialize requested, cloning again from {source}"),
                CreateReplica(source, basebackup_only=request.from_leader),
                StartPostgres("replica", upstream, rewind_from),
                KeepaliveLease(),
                UpdateMember(),
            ],
            Code.REINITIALIZING,
            f"reinitializing on request: replacing the data directory with a copy from {source}",
            Role.BOOTSTRAPPING,
            again=True,
        )
    return None
