"""A standby cluster's rules (`rules/standby.py`): the standby leader follows the remote
primary and is never promoted; a leader race takes the key without promoting; a primary
found in a standby cluster is fenced, then demoted; removing the section promotes."""

from __future__ import annotations

from haagent.config.model import StandbyCluster
from haagent.core import decide
from haagent.core.actions import (
    ArmFencing,
    BootstrapStandbyLeader,
    Demote,
    Follow,
    Promote,
    RaceInitialize,
    StartPostgres,
    TakeLeaderKey,
)
from haagent.core.reasons import Code
from haagent.core.roles import Role
from haagent.core.topology import REMOTE
from support.snapshots import (
    DynamicConfig,
    LocalFacts,
    cluster,
    member,
    peers,
    primary_pg,
    replace,
    replica_pg,
    snapshot,
    stopped_pg,
)

STANDBY = DynamicConfig(standby_cluster=StandbyCluster(host="10.0.0.1", port=5432))
MEMBERS = (member("node1", "standby_leader"), member("node2"), member("node3"))


def kinds(d: object) -> list[str]:
    return [type(a).__name__ for a in d.actions]  # type: ignore[attr-defined]


def test_the_standby_leader_follows_the_remote_primary_and_arms_no_fence() -> None:
    s = snapshot("node1", replica_pg(), cluster("node1", MEMBERS), config=STANDBY)
    d = decide(s)
    assert d.role == Role.STANDBY_LEADER and d.reason.code == Code.STANDBY_LEADER
    assert Follow(REMOTE) in d.actions
    assert not any(isinstance(a, Promote | ArmFencing) for a in d.actions)
    followed = decide(replace(s, local=LocalFacts(following=REMOTE)))
    assert not any(isinstance(a, Follow | Promote | ArmFencing) for a in followed.actions)


def test_a_read_write_standby_leader_is_fenced_then_demoted_keeping_the_key() -> None:
    s = snapshot("node1", primary_pg(), cluster("node1", MEMBERS), config=STANDBY)
    d = decide(s)
    assert d.reason.code == Code.DEMOTING_CLUSTER and d.role == Role.STANDBY_LEADER
    names = kinds(d)
    assert names.index("ArmFencing") < names.index("Demote") < names.index("DisarmFencing")
    assert Demote("fast", REMOTE) in d.actions


def test_a_replica_follows_the_standby_leader_checking_timelines_against_the_remote() -> None:
    s = snapshot("node2", replica_pg(), cluster("node1", MEMBERS), config=STANDBY)
    d = decide(s)
    assert Follow("node1", REMOTE) in d.actions


def test_the_race_winner_takes_the_key_and_never_promotes() -> None:
    view = cluster(None, MEMBERS[1:])
    s = snapshot("node2", replica_pg(lsn=1000), view, config=STANDBY,
                 peers=peers(node3=900))  # fmt: skip
    d = decide(s)
    assert d.role == Role.STANDBY_LEADER
    assert TakeLeaderKey() in d.actions and Follow(REMOTE) in d.actions
    assert not any(isinstance(a, Promote | ArmFencing) for a in d.actions)


def test_without_the_section_the_key_holder_is_promoted() -> None:
    s = snapshot("node1", replica_pg(), cluster("node1", MEMBERS), config=DynamicConfig())
    d = decide(s)
    assert d.role == Role.PRIMARY and Promote() in d.actions
    names = kinds(d)
    assert names.index("RenewLeaderKey") < names.index("ArmFencing") < names.index("Promote")


def test_a_new_standby_cluster_clones_the_remote_primary() -> None:
    view = replace(cluster(None, MEMBERS), initialize=None)
    s = snapshot("node1", stopped_pg(initialized=False), view, config=STANDBY)
    assert RaceInitialize("") in decide(s).actions
    won = replace(s, local=LocalFacts(bootstrapping=True))
    d = decide(won)
    assert BootstrapStandbyLeader() in d.actions and StartPostgres("replica", REMOTE) in d.actions


ARCHIVE = DynamicConfig(standby_cluster=StandbyCluster(restore_command="cp /a/%f %p"))


def test_a_new_archive_only_standby_cluster_restores_its_leader_from_a_backup() -> None:
    """No host to clone from: the standby leader is built only by a method that restores a
    backup (no_leader); without one, the node says so and waits, racing for nothing."""
    view = replace(cluster(None, MEMBERS), initialize=None)
    s = snapshot("node1", stopped_pg(initialized=False), view, config=ARCHIVE)
    idle = decide(s)
    assert idle.reason.code == Code.NO_REMOTE_TO_CLONE
    assert not any(isinstance(a, RaceInitialize) for a in idle.actions)
    assert "standby_cluster.create_replica_methods" in idle.reason.text
    restorable = replace(s, clone_without_leader=True)
    assert RaceInitialize("") in decide(restorable).actions
    won = replace(restorable, local=LocalFacts(bootstrapping=True))
    d = decide(won)
    assert BootstrapStandbyLeader() in d.actions and StartPostgres("replica", REMOTE) in d.actions
    assert "restoring a backup" in d.reason.text


def test_an_archive_only_standby_leader_and_its_replicas() -> None:
    """The standby leader follows the remote (the archive); the others follow it; the race
    winner takes the key and follows the archive, never promoting."""
    d = decide(snapshot("node1", replica_pg(), cluster("node1", MEMBERS), config=ARCHIVE))
    assert d.role == Role.STANDBY_LEADER and Follow(REMOTE) in d.actions
    assert "the archive" in d.reason.text
    d = decide(snapshot("node2", replica_pg(), cluster("node1", MEMBERS), config=ARCHIVE))
    assert Follow("node1", REMOTE) in d.actions
    view = cluster(None, MEMBERS[1:])
    s = snapshot("node2", replica_pg(lsn=1000), view, config=ARCHIVE, peers=peers(node3=900))
    d = decide(s)
    assert d.role == Role.STANDBY_LEADER and Follow(REMOTE) in d.actions
    assert not any(isinstance(a, Promote | ArmFencing) for a in d.actions)
