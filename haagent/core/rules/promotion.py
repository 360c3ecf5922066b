"""Promotion: the steps before `Promote`, and what a cancelled promotion leaves behind.

A node promotes once it holds the leader key and is fenced; before `Promote` it names
itself in the `sync` key in synchronous mode (`sync_choice.before_promotion`), then runs
the user's `pre_promote` script (`PrePromote`).  A script that exits non-zero, runs
past `postgresql.callback_timeout` or cannot run cancels the promotion, as in Patroni:
the node gives the key back and keeps out of the leader race for `ttl` seconds, so that
another member takes over (`PRE_PROMOTE_FAILED`).

`check_timeline` (dynamic config) keeps a member whose timeline is behind the cluster's
history out of the race, as Patroni's `check_timeline` does.
"""

from __future__ import annotations

from haagent.core.actions import (
    Action,
    DisarmFencing,
    PrePromote,
    ReleaseLeaderKey,
    UpdateMember,
)
from haagent.core.reasons import Code
from haagent.core.roles import Role
from haagent.core.rules.common import decision
from haagent.core.rules.sync_choice import before_promotion as sync_before_promotion
from haagent.core.snapshot import Decision, Snapshot


def before_promotion(s: Snapshot) -> list[Action]:
    """What a node does between taking the key (and arming the fence) and `Promote`."""
    return [*sync_before_promotion(s), PrePromote()]


def decide_pre_promote_failed(s: Snapshot) -> Decision | None:
    """The node holds the key for a promotion its pre_promote script just cancelled: it
    gives the key back (PostgreSQL is still a replica, so fencing may go too)."""
    why = s.local.pre_promote_failure
    pg = s.postgres
    if why is None or not s.holds_key or not (pg.running and pg.in_recovery):
        return None
    return decision(
        [ReleaseLeaderKey(), DisarmFencing(), UpdateMember()],
        Code.PRE_PROMOTE_FAILED,
        f"pre_promote cancelled the promotion ({why}): giving the leader key back so that "
        f"another member takes over; this node keeps out of the race for ttl "
        f"({s.config.ttl}s)",
        Role.REPLICA,
        again=True,
    )


def promotion_refused(s: Snapshot) -> tuple[Code, str] | None:
    """Why this node may not race for the key for a reason of this module, or None."""
    why = s.local.pre_promote_failure
    if why is not None:
        return Code.PRE_PROMOTE_FAILED, (
            f"pre_promote cancelled this node's promotion less than ttl ({s.config.ttl}s) "
            f"ago ({why}): not racing"
        )
    pg = s.postgres
    cluster_timeline = s.cluster.last_timeline
    if s.config.check_timeline and pg.in_recovery and (pg.timeline or 0) < cluster_timeline:
        shown = "unknown" if pg.timeline is None else str(pg.timeline)
        return Code.TIMELINE_BEHIND, (
            f"check_timeline: this replica's timeline ({shown}) is behind the cluster's "
            f"timeline {cluster_timeline} from the history"
        )
    return None
