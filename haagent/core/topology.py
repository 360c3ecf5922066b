"""Who streams from whom: the one rule for a member's upstream, and who holds its slot.

A replica streams from the leader, or from the member its `replicatefrom` tag names
while that member runs PostgreSQL (back to the leader when it is gone, and to the named
member again when it returns; never round a cycle of `replicatefrom` tags).  A member
tagged `nostream` streams from nobody: it replays the archive (`restore_command`) only.
In a standby cluster the leader (the standby leader) streams from the remote primary of
the `standby_cluster` section, called `REMOTE` here, and so does every member while the
cluster has no leader.

The same function answers for this node (the HA rules), for the slots (the upstream holds
a member's slot: `slot_holder`) and for `haactl topology`.  Pure: no I/O, no clock.

With `postgresql.use_slots` on, a replica streams through its own slot
(`primary_slot_name`) on its upstream, which holds it: the leader, or the member it
cascades from (a running replica holds physical slots too).  The leader keeps a copy of a
cascading replica's slot, for when it falls back there, and the members that may be
promoted keep copies too (`member_slots_ttl`); `core.slots` says where each copy stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from haagent.config import tags as tag_rules
from haagent.dcs.model import ClusterView

# The remote primary of a standby cluster (standby_cluster.host/port, or its archive): in
# actions and in the engine's memory where a member name goes.  No member is named so:
# member names are letters, digits, '_', '.' and '-'.
REMOTE = "@standby_cluster"


def upstream(
    view: ClusterView,
    name: str,
    tags: Mapping[str, Any],
    *,
    standby_cluster: bool,
) -> str | None:
    """The member (or `REMOTE`) member `name`, tagged `tags`, streams from; None for the
    leader of a primary cluster and for a `nostream` member."""
    if tag_rules.nostream(tags):
        return None
    leader = view.leader_name
    if standby_cluster and leader in (None, name):
        return REMOTE
    wanted = tag_rules.replicatefrom(tags)
    if wanted is not None and wanted != leader and _can_cascade(view, name, wanted):
        return wanted
    return leader if leader != name else None


def _can_cascade(view: ClusterView, name: str, wanted: str) -> bool:
    """`wanted` runs PostgreSQL and does not itself stream, through its own `replicatefrom`
    chain, from `name` (a cycle would leave every member of it without WAL)."""
    seen = {name}
    current: str | None = wanted
    while current is not None and current != view.leader_name:
        member = view.members.get(current)
        if current in seen or member is None or member.state != "running" or member.nostream:
            return False
        seen.add(current)
        current = member.replicatefrom
    return True


def slot_holder(view: ClusterView, name: str, *, standby_cluster: bool) -> str | None:
    """The member that keeps member `name`'s physical slot: its upstream (None for the
    leader, a `nostream` member and one streaming from the remote primary); the leader for
    a member without a member key (it may come back)."""
    member = view.members.get(name)
    if member is None:
        return view.leader_name if view.leader_name != name else None
    holder = upstream(view, name, member.tags, standby_cluster=standby_cluster)
    return None if holder == REMOTE else holder


def timeline_source(view: ClusterView, *, standby_cluster: bool) -> str | None:
    """Where a replica checks whether its timeline diverged, and rewinds from: the leader
    (a primary), or in a standby cluster the remote primary.  Streaming from a standby
    (the standby leader, a `replicatefrom` member) says nothing about a new timeline."""
    return REMOTE if standby_cluster else view.leader_name
