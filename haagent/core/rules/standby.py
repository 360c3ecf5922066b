"""A standby cluster (the dynamic `standby_cluster` section): the standby leader's rules.

The member holding the leader key is the standby leader: PostgreSQL in recovery,
replicating from the remote primary (`standby_cluster.host`/`port`, through
`primary_slot_name`) or from the archive (`restore_command`); the other members follow it
(`core.topology`).  A leader race works as in a primary cluster, but the winner takes the
key without promoting: it follows the remote primary.

Fencing.  The leader key's fence exists so that no writable primary outlives its lease;
a standby leader is never writable, so its watchdog and lease fence are not armed (as
Patroni's watchdog is not), and one that loses its key goes on replaying, harmlessly,
until it follows the new standby leader.  What makes a standby leader writable is a
promotion, and haagent promotes only a key holder of a cluster without a
`standby_cluster` section (`haactl promote-cluster`), in the order of every promotion:
the key renewed, fencing armed, then `Promote` (`rules/leader.py`).  A standby leader
found running read-write (`haactl demote-cluster`, or promoted by hand) is fenced at once
and demoted to follow the remote primary, keeping the key.
"""

from __future__ import annotations

from haagent.core.actions import (
    Action,
    ArmFencing,
    ClearFailoverKey,
    Demote,
    DisarmFencing,
    Follow,
    KeepaliveLease,
    ReleaseLeaderKey,
    RenewLeaderKey,
    SetSyncStandbys,
    StartPostgres,
    TakeLeaderKey,
    UpdateMember,
    WriteSyncKey,
)
from haagent.core.reasons import Code
from haagent.core.roles import Role
from haagent.core.rules.common import decision
from haagent.core.slots import leader_slot_actions
from haagent.core.snapshot import Decision, Snapshot
from haagent.core.topology import REMOTE


def remote_description(s: Snapshot) -> str:
    """The remote primary as people name it: its address, or the archive."""
    standby = s.config.standby_cluster
    assert standby is not None
    if standby.host is None:
        return "the archive (standby_cluster.restore_command)"
    port = f":{standby.port}" if standby.port is not None else ""
    return f"the remote primary {standby.host}{port}"


def demote_to_remote(s: Snapshot, why: str) -> Decision:
    """A primary without the key in a standby cluster stops writes and follows the remote."""
    return decision(
        [Demote("fast", REMOTE), DisarmFencing(), KeepaliveLease(), UpdateMember()],
        Code.DEMOTING_CLUSTER,
        f"{why}: stopping writes and following {remote_description(s)}",
        Role.DEMOTED,
        again=True,
    )


def standby_race_won(s: Snapshot, text: str) -> Decision:
    """The winner of a standby cluster's leader race takes the key and follows the remote
    primary; it does not promote."""
    actions: list[Action] = [TakeLeaderKey()]
    if s.local.following != REMOTE:
        actions.append(Follow(REMOTE))
    if s.cluster.failover is not None:
        actions.append(ClearFailoverKey())
    actions.append(UpdateMember())
    return decision(actions, Code.STANDBY_LEADER, text, Role.STANDBY_LEADER, again=True)


def _sync_off(s: Snapshot) -> list[Action]:
    """A standby cluster has no synchronous replication: the key and the setting go."""
    actions: list[Action] = []
    key = s.cluster.sync
    if key is not None and (key.leader is not None or key.sync_standby):
        actions.append(WriteSyncKey(None, (), key.mod_revision))
    if s.postgres.synchronous_standby_names:
        actions.append(SetSyncStandbys((), 0))
    return actions


def decide_standby_leader(s: Snapshot, handover: str | None) -> Decision:
    """The key holder of a standby cluster (its slots as any leader's: `core/slots.py`);
    `handover`: a switchover asked of it (to whom), or None."""
    pg = s.postgres
    remote = remote_description(s)
    if s.is_running_primary:
        return decision(
            [
                RenewLeaderKey(),
                ArmFencing(),
                Demote("fast", REMOTE),
                DisarmFencing(),
                *_sync_off(s),
                UpdateMember(),
            ],
            Code.DEMOTING_CLUSTER,
            f"the cluster is a standby cluster now (standby_cluster): stopping writes, "
            f"keeping the leader key, and following {remote} as the standby leader "
            "(rewinding if the timelines diverged); the other members follow this one",
            Role.STANDBY_LEADER,
            again=True,
        )
    if pg.running and pg.accepting:
        if handover is not None:
            return decision(
                [ReleaseLeaderKey(), UpdateMember()],
                Code.SWITCHOVER_DEMOTING,
                f"switchover to {handover}: releasing the standby leader's key",
                Role.REPLICA,
                again=True,
            )
        actions: list[Action] = [RenewLeaderKey(), DisarmFencing()]
        if s.local.following != REMOTE:
            actions.append(Follow(REMOTE))
        actions += _sync_off(s)
        actions += [*leader_slot_actions(s), UpdateMember()]
        return decision(
            actions,
            Code.STANDBY_LEADER,
            f"the standby leader: holds the leader key and follows {remote}",
            Role.STANDBY_LEADER,
        )
    if pg.running:
        return decision(
            [RenewLeaderKey(), UpdateMember()],
            Code.STANDBY_LEADER,
            "the standby leader; PostgreSQL is starting and not yet accepting connections",
            Role.STANDBY_LEADER,
        )
    if s.local.rewind_failed is not None:
        return decision(
            [ReleaseLeaderKey(), DisarmFencing(), UpdateMember()],
            Code.REWIND_FAILED,
            f"PostgreSQL cannot follow {remote} ({s.local.rewind_failed}): releasing the "
            "leader key so that another member follows it; the data directory is kept",
            Role.REPLICA,
            again=True,
        )
    return decision(
        [RenewLeaderKey(), StartPostgres("replica", REMOTE), UpdateMember()],
        Code.STANDBY_LEADER,
        f"holds the key of a standby cluster: starting PostgreSQL as the standby leader, "
        f"following {remote}",
        Role.STANDBY_LEADER,
        again=True,
    )
