"""Table-driven tests of `decide()`: one row per rule, asserting actions and reason codes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from haagent.core import Snapshot, decide
from haagent.core.reasons import Code
from haagent.core.roles import Role
from haagent.core.snapshot import ManualRequest
from haagent.dcs.model import HistoryEntry
from support.snapshots import (
    NOW,
    SYSID,
    WALL,
    DynamicConfig,
    Failover,
    LocalFacts,
    SyncState,
    Tags,
    cluster,
    member,
    peers,
    primary_pg,
    replica_pg,
    snapshot,
    stopped_pg,
    streaming,
)

three = (member("node1", "primary"), member("node2"), member("node3"))
no_leader_view = cluster(None, (member("node2"), member("node3")))
sync_cfg = DynamicConfig(synchronous_mode=True)
strict_cfg = DynamicConfig(synchronous_mode=True, synchronous_mode_strict=True)
after_switch = Failover(leader="node1", candidate="node2")
uninit = cluster(None, ())
uninit = replace(uninit, initialize=None)

# id, snapshot, action type names (exact order), reason code, role
CASES: list[tuple[str, Snapshot, list[str], Code, Role]] = [
    # --- bootstrap
    ("empty cluster: race initialize", snapshot("node1", stopped_pg(False), uninit),
     ["RaceInitialize"], Code.RACE_INITIALIZE, Role.UNINITIALIZED),
    ("won initialize: bootstrap", snapshot("node1", stopped_pg(False), uninit,
     local=LocalFacts(bootstrapping=True)),
     ["BootstrapCluster"], Code.BOOTSTRAPPING, Role.BOOTSTRAPPING),
    ("bootstrap done: publish and take key", snapshot("node1", primary_pg(), uninit,
     local=LocalFacts(bootstrapping=True)),
     ["SetInitialize", "TakeLeaderKey", "ArmWatchdog", "UpdateMember"],
     Code.BOOTSTRAP_FINISHING, Role.PRIMARY),
    ("nofailover node never bootstraps", snapshot("node3", stopped_pg(False), uninit,
     tags=Tags(nofailover=True)),
     ["KeepaliveLease", "UpdateMember"], Code.CANNOT_BOOTSTRAP, Role.UNINITIALIZED),
    ("someone else bootstrapping: wait", snapshot("node2", stopped_pg(False),
     replace(uninit, initialize="")),
     ["KeepaliveLease", "UpdateMember"], Code.WAITING_FOR_BOOTSTRAP, Role.UNINITIALIZED),
    ("existing data without initialize: claim it", snapshot("node1", primary_pg(), uninit),
     ["RaceInitialize"], Code.RACE_INITIALIZE, Role.DEMOTED),
    ("empty data dir: clone from leader", snapshot("node2", stopped_pg(False)),
     ["CreateReplica", "StartPostgres", "UpdateMember"], Code.CREATING_REPLICA, Role.BOOTSTRAPPING),
    ("empty data dir, leader not running: wait",
     snapshot("node2", stopped_pg(False), cluster("node1", (member("node1", "primary",
              state="stopped"), member("node2")))),
     ["KeepaliveLease", "UpdateMember"], Code.WAITING_FOR_LEADER_TO_CLONE, Role.UNINITIALIZED),
    ("empty data dir, no leader: wait", snapshot("node2", stopped_pg(False), no_leader_view),
     ["KeepaliveLease", "UpdateMember"], Code.WAITING_FOR_LEADER_TO_CLONE, Role.UNINITIALIZED),
    ("clonefrom member preferred",
     snapshot("node3", stopped_pg(False), cluster("node1", (member("node1", "primary"),
              member("node2", tags={"clonefrom": True}), member("node3")))),
     ["CreateReplica", "StartPostgres", "UpdateMember"], Code.CREATING_REPLICA, Role.BOOTSTRAPPING),
    ("foreign system identifier: refuse", snapshot("node2", replica_pg(system_identifier="42")),
     [], Code.SYSTEM_ID_MISMATCH, Role.STOPPED),
    # --- leader
    ("leader renews", snapshot("node1", primary_pg(replication=streaming("node2", "node3"))),
     ["RenewLeaderKey", "KeepaliveWatchdog", "EnsureSlots", "WriteStatusKey", "UpdateMember"],
     Code.LEADER_RENEWED, Role.PRIMARY),
    ("holder in recovery promotes", snapshot("node1", replica_pg()),
     ["RenewLeaderKey", "ArmWatchdog", "Promote", "AppendHistory", "UpdateMember"],
     Code.PROMOTING, Role.PRIMARY),
    ("holder in recovery without required watchdog releases",
     snapshot("node1", replica_pg(), watchdog_ok=False, watchdog_reason="no device"),
     ["ReleaseLeaderKey", "UpdateMember"], Code.WATCHDOG_UNAVAILABLE, Role.REPLICA),
    ("crashed primary restarts in place", snapshot("node1", stopped_pg(),
     local=LocalFacts(postgres_down_since=NOW - 1)),
     ["RenewLeaderKey", "KeepaliveWatchdog", "StartPostgres", "UpdateMember"],
     Code.RESTARTING_CRASHED_PRIMARY, Role.PRIMARY),
    ("crashed primary past primary_start_timeout releases", snapshot("node1", stopped_pg(),
     local=LocalFacts(postgres_down_since=NOW - 301)),
     ["ReleaseLeaderKey", "DisarmWatchdog", "UpdateMember"], Code.PRIMARY_START_TIMEOUT,
     Role.DEMOTED),
    ("primary_start_timeout 0 fails over at once", snapshot("node1", stopped_pg(),
     config=DynamicConfig(primary_start_timeout=0)),
     ["ReleaseLeaderKey", "DisarmWatchdog", "UpdateMember"], Code.PRIMARY_START_TIMEOUT,
     Role.DEMOTED),
    ("starting primary keeps key", snapshot("node1", primary_pg(accepting=False)),
     ["RenewLeaderKey", "KeepaliveWatchdog", "UpdateMember"], Code.RESTARTING_CRASHED_PRIMARY,
     Role.PRIMARY),
    ("switchover to healthy candidate", snapshot("node1", primary_pg(),
     cluster(failover=after_switch)),
     ["Checkpoint", "StopPostgres", "ReleaseLeaderKey", "DisarmWatchdog", "UpdateMember"],
     Code.SWITCHOVER_DEMOTING, Role.DEMOTED),
    ("switchover without candidate", snapshot("node1", primary_pg(),
     cluster(failover=Failover(leader="node1"))),
     ["Checkpoint", "StopPostgres", "ReleaseLeaderKey", "DisarmWatchdog", "UpdateMember"],
     Code.SWITCHOVER_DEMOTING, Role.DEMOTED),
    ("switchover to lagging candidate cancelled", snapshot("node1", primary_pg(lsn=10**9),
     cluster(failover=after_switch, optime=10**9)),
     ["RenewLeaderKey", "KeepaliveWatchdog", "ClearFailoverKey", "UpdateMember"],
     Code.SWITCHOVER_CANDIDATE_UNFIT, Role.PRIMARY),
    ("switchover to unknown member cancelled", snapshot("node1", primary_pg(),
     cluster(failover=Failover(leader="node1", candidate="node9"))),
     ["RenewLeaderKey", "KeepaliveWatchdog", "ClearFailoverKey", "UpdateMember"],
     Code.SWITCHOVER_CANDIDATE_UNFIT, Role.PRIMARY),
    ("switchover to nofailover member cancelled", snapshot("node1", primary_pg(),
     cluster("node1", (member("node1", "primary"), member("node2", tags={"nofailover": True})),
             failover=after_switch)),
     ["RenewLeaderKey", "KeepaliveWatchdog", "ClearFailoverKey", "UpdateMember"],
     Code.SWITCHOVER_CANDIDATE_UNFIT, Role.PRIMARY),
    ("scheduled switchover waits", snapshot("node1", primary_pg(),
     cluster(failover=Failover("node1", "node2", WALL + timedelta(minutes=5)))),
     ["RenewLeaderKey", "KeepaliveWatchdog", "EnsureSlots", "WriteStatusKey", "UpdateMember"],
     Code.SWITCHOVER_SCHEDULED, Role.PRIMARY),
    ("scheduled switchover due", snapshot("node1", primary_pg(),
     cluster(failover=Failover("node1", "node2", WALL - timedelta(seconds=1)))),
     ["Checkpoint", "StopPostgres", "ReleaseLeaderKey", "DisarmWatchdog", "UpdateMember"],
     Code.SWITCHOVER_DEMOTING, Role.DEMOTED),
    ("sync mode: name standby in PostgreSQL first",
     snapshot("node1", primary_pg(replication=streaming("node2", "node3")), config=sync_cfg),
     ["RenewLeaderKey", "KeepaliveWatchdog", "WriteSyncKey", "SetSyncStandbys", "EnsureSlots",
      "WriteStatusKey", "UpdateMember"], Code.LEADER_RENEWED, Role.PRIMARY),
    ("sync mode: key written once PostgreSQL confirms",
     snapshot("node1", primary_pg(replication=streaming("node2", "node3", sync=("node2",)),
              synchronous_standby_names='FIRST 1 ("node2")'),
              cluster(sync=SyncState("node1", ())), config=sync_cfg),
     ["RenewLeaderKey", "KeepaliveWatchdog", "WriteSyncKey", "EnsureSlots", "WriteStatusKey",
      "UpdateMember"], Code.LEADER_RENEWED, Role.PRIMARY),
    ("sync mode: steady state writes nothing",
     snapshot("node1", primary_pg(replication=streaming("node2", "node3", sync=("node2",)),
              synchronous_standby_names='FIRST 1 ("node2")'),
              cluster(sync=SyncState("node1", ("node2",))), config=sync_cfg),
     ["RenewLeaderKey", "KeepaliveWatchdog", "EnsureSlots", "WriteStatusKey", "UpdateMember"],
     Code.LEADER_RENEWED, Role.PRIMARY),
    ("sync mode: gone standby leaves the key before PostgreSQL",
     snapshot("node1", primary_pg(replication=streaming("node3"),
              synchronous_standby_names='FIRST 1 ("node2")'),
              cluster(sync=SyncState("node1", ("node2",))), config=sync_cfg),
     ["RenewLeaderKey", "KeepaliveWatchdog", "WriteSyncKey", "SetSyncStandbys", "EnsureSlots",
      "WriteStatusKey", "UpdateMember"], Code.LEADER_RENEWED, Role.PRIMARY),
    ("sync mode off: clear leftovers",
     snapshot("node1", primary_pg(synchronous_standby_names='FIRST 1 ("node2")'),
              cluster(sync=SyncState("node1", ("node2",)))),
     ["RenewLeaderKey", "KeepaliveWatchdog", "WriteSyncKey", "SetSyncStandbys", "EnsureSlots",
      "WriteStatusKey", "UpdateMember"], Code.LEADER_RENEWED, Role.PRIMARY),
    # --- replica
    ("replica follows", snapshot("node2", local=LocalFacts(following="node1")),
     ["KeepaliveLease", "UpdateMember"], Code.FOLLOWING, Role.REPLICA),
    ("replica follows a new leader", snapshot("node2", local=LocalFacts(following="node3")),
     ["Follow", "KeepaliveLease", "UpdateMember"], Code.FOLLOW_NEW_LEADER, Role.REPLICA),
    ("stopped replica starts", snapshot("node2", stopped_pg()),
     ["KeepaliveLease", "UpdateMember", "StartPostgres"], Code.STARTING_REPLICA, Role.REPLICA),
    ("primary without key demotes", snapshot("node2", primary_pg()),
     ["Demote", "DisarmWatchdog", "KeepaliveLease", "UpdateMember"], Code.DEMOTING_NOT_LEADER,
     Role.DEMOTED),
    ("rewind failed: keep data, wait", snapshot("node2", stopped_pg(),
     local=LocalFacts(rewind_failed="no wal_log_hints")),
     ["KeepaliveLease", "UpdateMember"], Code.REWIND_FAILED, Role.STOPPED),
    ("replica starting: wait", snapshot("node2", replica_pg(accepting=False)),
     ["KeepaliveLease", "UpdateMember"], Code.STARTING_REPLICA, Role.REPLICA),
    # --- race
    ("free key: ask peers first", snapshot("node2", view=no_leader_view),
     ["ObservePeers"], Code.PEERS_NEEDED, Role.REPLICA),
    ("free key: healthiest takes it and promotes",
     snapshot("node2", view=no_leader_view, peers=peers(node3=900)),
     ["TakeLeaderKey", "ArmWatchdog", "Promote", "AppendHistory", "UpdateMember"],
     Code.RACE_WON, Role.PRIMARY),
    ("free key: a peer is ahead",
     snapshot("node2", view=no_leader_view, peers=peers(node3=2000)),
     ["KeepaliveLease", "UpdateMember"], Code.PEER_AHEAD, Role.REPLICA),
    ("free key: equal position, higher priority peer wins",
     snapshot("node2", view=no_leader_view,
              peers={"node3": replace(peers(node3=1000)["node3"], failover_priority=5)}),
     ["KeepaliveLease", "UpdateMember"], Code.PEER_AHEAD, Role.REPLICA),
    ("free key: a peer still running as a primary is never raced, whatever its position",
     snapshot("node2", view=no_leader_view,
              peers={"node3": replace(peers(node3=500)["node3"], in_recovery=False,
                                      nofailover=True)}),
     ["KeepaliveLease", "UpdateMember"], Code.PEER_AHEAD, Role.REPLICA),
    ("free key: unreachable peers ignored",
     snapshot("node2", view=no_leader_view,
              peers={"node3": replace(peers(node3=5000)["node3"], reachable=False)}),
     ["TakeLeaderKey", "ArmWatchdog", "Promote", "AppendHistory", "UpdateMember"],
     Code.RACE_WON, Role.PRIMARY),
    ("free key: a peer that cannot lead never counts as ahead",
     snapshot("node2", view=no_leader_view,
              peers={"node3": replace(peers(node3=5000)["node3"], nofailover=True)}),
     ["TakeLeaderKey", "ArmWatchdog", "Promote", "AppendHistory", "UpdateMember"],
     Code.RACE_WON, Role.PRIMARY),
    ("free key: nofailover never races", snapshot("node2", view=no_leader_view,
     tags=Tags(nofailover=True)),
     ["KeepaliveLease", "UpdateMember"], Code.NOFAILOVER, Role.REPLICA),
    ("free key: failover_priority 0 never races", snapshot("node2", view=no_leader_view,
     tags=Tags(failover_priority=0)),
     ["KeepaliveLease", "UpdateMember"], Code.NOFAILOVER, Role.REPLICA),
    ("free key: lagging replica does not race",
     snapshot("node2", replica_pg(lsn=1000), replace(no_leader_view,
              status=replace(no_leader_view.status, optime=1000 + 2 * 1048576))),
     ["KeepaliveLease", "UpdateMember"], Code.LAGGING, Role.REPLICA),
    ("free key: required watchdog unusable", snapshot("node2", view=no_leader_view,
     watchdog_ok=False, watchdog_reason="/dev/watchdog missing"),
     ["KeepaliveLease", "UpdateMember"], Code.WATCHDOG_UNAVAILABLE, Role.REPLICA),
    ("free key: sync mode, not listed", snapshot("node3", view=replace(no_leader_view,
     sync=SyncState("node1", ("node2",))), config=sync_cfg),
     ["KeepaliveLease", "UpdateMember"], Code.NOT_SYNCHRONOUS, Role.REPLICA),
    ("free key: sync mode, listed races", snapshot("node2", view=replace(no_leader_view,
     sync=SyncState("node1", ("node2",))), config=sync_cfg, peers=peers(node3=5000)),
     ["TakeLeaderKey", "ArmWatchdog", "Promote", "AppendHistory", "UpdateMember"],
     Code.RACE_WON, Role.PRIMARY),
    ("free key: strict sync, nobody listed", snapshot("node2", view=replace(no_leader_view,
     sync=SyncState("node1", ())), config=strict_cfg),
     ["KeepaliveLease", "UpdateMember"], Code.NOT_SYNCHRONOUS, Role.REPLICA),
    ("free key: switchover candidate promotes without asking",
     snapshot("node2", view=replace(no_leader_view, failover=after_switch)),
     ["TakeLeaderKey", "ArmWatchdog", "Promote", "AppendHistory", "ClearFailoverKey",
      "UpdateMember"], Code.RACE_WON, Role.PRIMARY),
    ("free key: others wait for the candidate",
     snapshot("node3", view=replace(no_leader_view, failover=after_switch)),
     ["KeepaliveLease", "UpdateMember"], Code.WAITING_FOR_CANDIDATE, Role.REPLICA),
    ("free key: starved old primary behind history demotes",
     snapshot("node1", primary_pg(timeline=1), replace(no_leader_view,
              history=(HistoryEntry(1, 900, "failover"),))),
     ["Demote", "DisarmWatchdog", "KeepaliveLease", "UpdateMember"], Code.TIMELINE_BEHIND,
     Role.DEMOTED),
    ("free key: stopped node starts read-only first", snapshot("node2", stopped_pg(),
     no_leader_view),
     ["StartPostgres", "KeepaliveLease", "UpdateMember"], Code.STARTING_REPLICA, Role.REPLICA),
    ("free key: running primary keeps going by taking the key",
     snapshot("node1", primary_pg(), cluster(None, three), peers=peers(node2=900, node3=900)),
     ["TakeLeaderKey", "ArmWatchdog", "UpdateMember"], Code.RACE_WON, Role.PRIMARY),
    # --- etcd away, pause, shutdown, manual
    ("etcd away: primary demotes", replace(snapshot("node1"), dcs_ok=False),
     ["Demote", "DisarmWatchdog"], Code.DCS_UNREACHABLE_DEMOTING, Role.DEMOTED),
    ("etcd away: failsafe confirmed keeps primary",
     replace(snapshot("node1", config=DynamicConfig(failsafe_mode=True),
             local=LocalFacts(failsafe_confirmed=True)), dcs_ok=False),
     ["KeepaliveWatchdog"], Code.FAILSAFE_ACTIVE, Role.PRIMARY),
    ("etcd away: failsafe not confirmed demotes",
     replace(snapshot("node1", config=DynamicConfig(failsafe_mode=True)), dcs_ok=False),
     ["Demote", "DisarmWatchdog"], Code.DCS_UNREACHABLE_DEMOTING, Role.DEMOTED),
    ("etcd away: replica waits", replace(snapshot("node2"), dcs_ok=False),
     [], Code.DCS_UNREACHABLE, Role.REPLICA),
    ("pause: leader keeps key, no watchdog", snapshot("node1",
     config=DynamicConfig(pause=True)),
     ["RenewLeaderKey", "DisarmWatchdog", "UpdateMember"], Code.PAUSED, Role.PRIMARY),
    ("pause: replica does nothing even if stopped", snapshot("node2", stopped_pg(),
     config=DynamicConfig(pause=True)),
     ["KeepaliveLease", "DisarmWatchdog", "UpdateMember"], Code.PAUSED, Role.STOPPED),
    ("pause: no race on a free key", snapshot("node2", view=no_leader_view,
     config=DynamicConfig(pause=True)),
     ["KeepaliveLease", "DisarmWatchdog", "UpdateMember"], Code.PAUSED, Role.REPLICA),
    ("shutdown: leader hands over", snapshot("node1", local=LocalFacts(shutdown_requested=True)),
     ["Checkpoint", "StopPostgres", "ReleaseLeaderKey", "DisarmWatchdog"], Code.SHUTTING_DOWN,
     Role.STOPPED),
    ("shutdown: replica stops", snapshot("node2", local=LocalFacts(shutdown_requested=True)),
     ["StopPostgres", "DisarmWatchdog"], Code.SHUTTING_DOWN, Role.STOPPED),
    ("restart on request keeps the key", snapshot("node1", local=LocalFacts(
     manual=ManualRequest("restart"))),
     ["RenewLeaderKey", "KeepaliveWatchdog", "RestartPostgres", "UpdateMember"],
     Code.RESTARTING, Role.PRIMARY),
    ("reinit on request clones again", snapshot("node2", local=LocalFacts(
     manual=ManualRequest("reinitialize"))),
     ["StopPostgres", "RemoveDataDirectory", "CreateReplica", "StartPostgres", "KeepaliveLease",
      "UpdateMember"], Code.REINITIALIZING, Role.BOOTSTRAPPING),
]  # fmt: skip


@pytest.mark.parametrize(
    ("snap", "actions", "code", "role"),
    [pytest.param(s, a, c, r, id=i) for i, s, a, c, r in CASES],
)
def test_decide(snap: Snapshot, actions: list[str], code: Code, role: Role) -> None:
    d = decide(snap)
    assert [type(a).__name__ for a in d.actions] == actions, d.reason
    assert d.reason.code == code, d.reason
    assert d.role == role, d.reason


def test_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_renew_deadline_leaves_time_to_stop_writes() -> None:
    from haagent.core.actions import RenewLeaderKey

    snap = snapshot("node1", local=LocalFacts(leader_lease_expires=NOW + 12))
    renew = decide(snap).actions[0]
    assert isinstance(renew, RenewLeaderKey)
    # ttl 30, retry_timeout 10: give up by expiry - retry_timeout, leaving 10 s to demote.
    assert renew.deadline == NOW + 2


def test_sync_names_rendered_for_postgres() -> None:
    from haagent.core.actions import SetSyncStandbys
    from haagent.core.rules.sync import render_synchronous_standby_names

    snap = snapshot("node1", primary_pg(replication=streaming("node2", "node3")), config=sync_cfg)
    (setter,) = [a for a in decide(snap).actions if isinstance(a, SetSyncStandbys)]
    assert render_synchronous_standby_names(setter.members, setter.count, setter.strict) == (
        'FIRST 1 ("node2")'
    )
    assert render_synchronous_standby_names((), 1, True) == "*"
    assert SYSID


def test_peer_with_failed_required_watchdog_is_not_a_candidate() -> None:
    from haagent.engine.peers import position_from_status

    body = {"role": "replica", "state": "running", "xlog": {"received_location": 9000},
            "watchdog_failed": True}  # fmt: skip
    assert position_from_status("node3", body).nofailover
    assert not position_from_status("node3", {**body, "watchdog_failed": False}).nofailover
