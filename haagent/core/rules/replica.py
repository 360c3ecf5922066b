"""Rules for a node while another one holds the leader key: follow its upstream.

The upstream is the leader, or the member `replicatefrom` names while it runs, or nobody
for a `nostream` member (`core.topology`).  A replica streaming from a standby (a
cascading one, or any member of a standby cluster) checks its timeline against the
cluster's primary (`topology.timeline_source`) and rewinds from it.
"""

from __future__ import annotations

from haagent.core import topology
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


def upstream_text(upstream: str | None) -> str:
    if upstream is None:
        return "no upstream (nostream: the archive only)"
    if upstream == topology.REMOTE:
        return "the remote primary (standby_cluster)"
    return upstream


def stream_plan(s: Snapshot) -> tuple[str | None, str | None]:
    """(the upstream this node streams from, where it rewinds from when that is another
    server, else None)."""
    standby = s.config.standby_cluster is not None
    upstream = topology.upstream(s.cluster, s.name, s.tags.as_mapping(), standby_cluster=standby)
    source = topology.timeline_source(s.cluster, standby_cluster=standby)
    return upstream, (source if source not in (upstream, s.name) else None)


def _stuck_behind(s: Snapshot, upstream: str | None) -> int | None:
    """The timeline of an upstream member that is ahead of this replica's while its WAL
    receiver does not stream (it cannot follow it there), else None."""
    pg = s.postgres
    member = s.cluster.members.get(upstream or "")
    if member is None or pg.receiver_streaming or member.timeline is None:
        return None
    return member.timeline if member.timeline > (pg.timeline or 0) else None


def decide_replica(s: Snapshot) -> Decision:
    assert s.cluster.leader is not None
    leader = s.cluster.leader.name
    upstream, rewind_from = stream_plan(s)
    shown = upstream_text(upstream)
    pg = s.postgres
    if pg.running and pg.accepting and not pg.in_recovery:
        return decision(
            [
                Demote("immediate", upstream, rewind_from),
                DisarmFencing(),
                KeepaliveLease(),
                UpdateMember(),
            ],
            Code.DEMOTING_NOT_LEADER,
            f"runs as a primary but {leader} holds the leader key: stopping writes now and "
            f"following {shown}",
            Role.DEMOTED,
            again=True,
        )
    if not pg.running:
        if s.local.rewind_failed is not None:
            source = rewind_from or upstream or leader
            return idle(
                s,
                Code.REWIND_FAILED,
                f"pg_rewind failed ({s.local.rewind_failed}); the data directory is kept: "
                f"run `haactl reinit <cluster> {s.name}` to clone it again from {source}",
                Role.STOPPED,
            )
        return decision(
            # The member key first: the upstream creates our slot from it, and a rewound
            # replica cannot reach a consistent state without streaming from that slot.
            [KeepaliveLease(), UpdateMember(), StartPostgres("replica", upstream, rewind_from)],
            Code.STARTING_REPLICA,
            f"PostgreSQL is not running: starting it as a replica of {shown}",
            Role.REPLICA,
        )
    if not pg.accepting:
        return idle(s, Code.STARTING_REPLICA, "PostgreSQL is starting", Role.REPLICA)
    if s.local.following != upstream:
        return decision(
            [Follow(upstream, rewind_from), KeepaliveLease(), UpdateMember()],
            Code.FOLLOW_NEW_LEADER,
            f"following {shown}" + (f" (the leader is {leader})" if upstream != leader else ""),
            Role.REPLICA,
        )
    ahead = _stuck_behind(s, upstream)
    if ahead is not None:
        return decision(
            [Follow(upstream, rewind_from, recheck=True), KeepaliveLease(), UpdateMember()],
            Code.UPSTREAM_TIMELINE_AHEAD,
            f"not streaming, and {shown} is on timeline {ahead} while this node is on "
            f"{s.postgres.timeline}: checking whether its WAL diverged (rewinding if so)",
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
        f"a replica following {shown}",
        Role.REPLICA,
    )
