"""Bootstrap: the initialize race, initdb on the winner, cloning on the others."""

from __future__ import annotations

from haagent.core.actions import (
    Action,
    ArmFencing,
    BootstrapCluster,
    BootstrapStandbyLeader,
    CreateReplica,
    RaceInitialize,
    SetInitialize,
    StartPostgres,
    TakeLeaderKey,
    UpdateMember,
)
from haagent.core.reasons import Code
from haagent.core.roles import Role
from haagent.core.rules.common import current, decision, idle
from haagent.core.snapshot import Decision, Snapshot
from haagent.core.topology import REMOTE


def clone_source(s: Snapshot) -> str | None:
    """A running member tagged `clonefrom`, else the leader if it runs."""
    leader = s.cluster.leader_name
    for member in sorted(s.cluster.members.values(), key=lambda m: m.name):
        if member.name != s.name and member.state == "running" and member.tags.get("clonefrom"):
            return member.name
    if leader is not None and leader != s.name:
        leader_member = s.cluster.members.get(leader)
        if leader_member is not None and leader_member.state == "running":
            return leader
    return None


def _bootstrap_standby_leader(s: Snapshot) -> Decision:
    """The winner of a new standby cluster's initialize race clones the remote primary and
    runs it as the standby leader (no initdb, no post_bootstrap)."""
    pg = s.postgres
    if not (pg.data_dir_initialized and pg.running and pg.accepting):
        actions: list[Action] = []
        if not pg.data_dir_initialized:
            actions.append(BootstrapStandbyLeader())
        actions += [StartPostgres("replica", REMOTE), UpdateMember()]
        source = (
            "cloning the remote primary (standby_cluster)"
            if s.config.standby_cluster is None or s.config.standby_cluster.streams
            else "restoring a backup (standby_cluster.create_replica_methods) to replay the archive"
        )
        return decision(
            actions,
            Code.BOOTSTRAPPING_STANDBY,
            f"won the initialize race of a standby cluster: {source} to run the standby leader",
            Role.BOOTSTRAPPING,
            again=True,
        )
    return decision(
        [SetInitialize(), TakeLeaderKey(), UpdateMember()],
        Code.BOOTSTRAP_FINISHING,
        "the standby leader is running: publishing its system identifier and taking the key",
        Role.STANDBY_LEADER,
        again=True,
    )


def decide_bootstrap(s: Snapshot) -> Decision | None:
    """A decision while the cluster or this node is not yet set up; None once it is."""
    pg = s.postgres
    init = s.cluster.initialize
    standby = s.config.standby_cluster
    if s.local.bootstrapping and standby is not None:
        return _bootstrap_standby_leader(s)
    if s.local.bootstrapping:
        if not (pg.data_dir_initialized and pg.running and pg.accepting):
            return decision(
                [BootstrapCluster()],
                Code.BOOTSTRAPPING,
                "won the initialize race: creating a new cluster",
                Role.BOOTSTRAPPING,
                again=True,
            )
        return decision(
            [SetInitialize(), TakeLeaderKey(), ArmFencing(), UpdateMember()],
            Code.BOOTSTRAP_FINISHING,
            "new cluster is running: publishing its system identifier and taking the leader key",
            Role.PRIMARY,
            again=True,
        )
    if init is None:
        if pg.data_dir_initialized:
            if pg.system_identifier is None:
                return None
            return decision(
                [RaceInitialize(pg.system_identifier)],
                Code.RACE_INITIALIZE,
                f"no initialize key: claiming it for the existing data ({pg.system_identifier})",
                current(s),
                again=True,
            )
        if not s.tags.can_be_leader:
            return idle(
                s,
                Code.CANNOT_BOOTSTRAP,
                "the cluster is not initialized and this node is tagged nofailover: "
                "waiting for another node to bootstrap it",
            )
        if standby is not None and not standby.streams and not s.clone_without_leader:
            return idle(
                s,
                Code.NO_REMOTE_TO_CLONE,
                "a new standby cluster whose standby_cluster section names no host: nothing "
                "to clone the standby leader from, and no replica method restores a backup "
                "(name one with no_leader in standby_cluster.create_replica_methods, give "
                "standby_cluster.host and port, or start from a data directory restored "
                "from the archive)",
            )
        return decision(
            [RaceInitialize("")],
            Code.RACE_INITIALIZE,
            "the cluster is not initialized: racing to bootstrap it",
            Role.UNINITIALIZED,
            again=True,
        )
    if init == "":
        if pg.data_dir_initialized:
            return None
        return idle(s, Code.WAITING_FOR_BOOTSTRAP, "another node is bootstrapping the cluster")
    if pg.data_dir_initialized:
        if pg.system_identifier is not None and pg.system_identifier != init:
            return decision(
                [],
                Code.SYSTEM_ID_MISMATCH,
                f"the data directory belongs to system {pg.system_identifier} but the cluster "
                f"is system {init}: refusing to join; point postgresql.data_dir elsewhere, or "
                f"run `haactl reinit` for this member to replace its data",
                Role.STOPPED,
            )
        return None
    source = clone_source(s)
    if source is None and s.clone_without_leader:
        return decision(
            [CreateReplica(None), StartPostgres("replica", None), UpdateMember()],
            Code.CREATING_REPLICA,
            "no data directory yet and no running leader or clonefrom member: building it "
            "with the create_replica_methods that need none (no_leader)",
            Role.BOOTSTRAPPING,
            again=True,
        )
    if source is None:
        return idle(
            s,
            Code.WAITING_FOR_LEADER_TO_CLONE,
            "no data directory yet and no running leader or clonefrom member to copy it from",
            Role.UNINITIALIZED,
        )
    return decision(
        [CreateReplica(source), StartPostgres("replica", s.cluster.leader_name), UpdateMember()],
        Code.CREATING_REPLICA,
        f"no data directory yet: cloning it from {source}",
        Role.BOOTSTRAPPING,
        again=True,
    )
