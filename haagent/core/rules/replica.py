"""Rules for a node while another node holds the leader key."""

from __future__ import annotations

from haagent.core.actions import (
    CopyLogicalSlots,
    Demote,
    DisarmFencing,
    Follow,
    KeepaliveLease,
    StartPostgres,
    UpdateMember,
)
from haagent.core.reasons import Code
from haagent.core.roles import Role
from haagent.core.rules.common import decision, idle
from haagent.core.slots import replica_slot_actions, to_copy
from haagent.core.snapshot import Decision, Snapshot


def decide_replica(s: Snapshot) -> Decision:
    assert s.cluster.leader is not None
    leader = s.cluster.leader.name
    pg = s.postgres
    if pg.running and pg.accepting and not pg.in_recovery:
        return decision(
            [Demote("immediate", leader), DisarmFencing(), KeepaliveLease(), UpdateMember()],
            Code.DEMOTING_NOT_LEADER,
            f"runs as a primary but {leader} holds the leader key: stopping writes now and "
            f"following {leader}",
            Role.DEMOTED,
            again=True,
        )
    if not pg.running:
        if s.local.rewind_failed is not None:
            return idle(
                s,
                Code.REWIND_FAILED,
                f"pg_rewind failed ({s.local.rewind_failed}); the data directory is kept: "
                f"run `haactl reinit <cluster> {s.name}` to clone it again from {leader}",
                Role.STOPPED,
            )
        return decision(
            # The member key first: the leader creates our slot from it, and a rewound
            # replica cannot reach a consistent state without streaming from that slot.
            [KeepaliveLease(), UpdateMember(), StartPostgres("replica", leader)],
            Code.STARTING_REPLICA,
            f"PostgreSQL is not running: starting it as a replica of {leader}",
            Role.REPLICA,
        )
    if not pg.accepting:
        return idle(s, Code.STARTING_REPLICA, "PostgreSQL is starting", Role.REPLICA)
    if s.local.following != leader:
        return decision(
            [Follow(leader), KeepaliveLease(), UpdateMember()],
            Code.FOLLOW_NEW_LEADER,
            f"following the new leader {leader}",
            Role.REPLICA,
        )
    copy = to_copy(s)
    if copy:
        names = ", ".join(spec.name for spec in copy)
        return decision(
            [KeepaliveLease(), UpdateMember(), CopyLogicalSlots(leader, copy)],
            Code.COPYING_LOGICAL_SLOTS,
            f"copying the permanent logical slots {names} from {leader} (PostgreSQL before 17 "
            "cannot create them on a standby): PostgreSQL restarts once to load them",
            Role.REPLICA,
        )
    return decision(
        [KeepaliveLease(), UpdateMember(), *replica_slot_actions(s)],
        Code.FOLLOWING,
        f"a replica following {leader}",
        Role.REPLICA,
    )
