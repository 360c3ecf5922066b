"""Synchronous replication: which standbys the leader names, and in which order it says so.

The `sync` key may name a standby only once it holds every commit the primary has
acknowledged: PostgreSQL reports it as synchronous AND it has flushed the WAL up to
the primary's position at the moment `synchronous_standby_names` named it (a standby
that PostgreSQL just started to wait for may still miss commits acknowledged by the
previous synchronous standby).  Adding: `synchronous_standby_names` first, the key
after the standby caught up.  Removing: the key first, then `synchronous_standby_names`.

Choosing (as Patroni): streaming members that may be synchronous (`nosync`,
`sync_priority`), highest `sync_priority` first, then the current synchronous
standbys, then the furthest ahead; with `maximum_lag_on_syncnode` > 0, a standby
lagging more than that behind the most advanced one is dropped.

Quorum commit (`synchronous_mode: quorum`) names every such standby (those tagged
nofailover only as far as needed to reach synchronous_node_count) and keeps
`synchronous_standby_names` and the `sync` key in step by the rules of `rules/quorum.py`.
A change from quorum commit to `synchronous_mode: on` first empties the key: a standby
named by `ANY` may lack commits another one acknowledged alone.
"""

from __future__ import annotations

from haagent.core.actions import Action, SetSyncStandbys, WriteSyncKey
from haagent.core.rules import quorum
from haagent.core.snapshot import Snapshot
from haagent.postgres.model import ReplicationConnection
from haagent.postgres.sync_names import parse_synchronous_standby_names


def _position(row: ReplicationConnection) -> int:
    return row.flush_lsn if row.flush_lsn is not None else (row.write_lsn or 0)


def wanted_sync_standbys(s: Snapshot) -> tuple[str, ...]:
    """Healthy streaming replicas that may be synchronous, best first, as many as asked for."""
    return eligible_sync_standbys(s)[: max(0, s.config.synchronous_node_count)]


def quorum_standbys(s: Snapshot) -> tuple[str, ...]:
    """Quorum commit: every eligible standby, but those tagged nofailover only as far as
    needed to reach synchronous_node_count (they cannot take over, as Patroni has it)."""
    members = s.cluster.members
    chosen: list[str] = []
    for name in eligible_sync_standbys(s):
        if not members[name].nofailover or len(chosen) < s.config.synchronous_node_count:
            chosen.append(name)
    return tuple(chosen)


def eligible_sync_standbys(s: Snapshot) -> tuple[str, ...]:
    """Healthy streaming replicas that may be synchronous, best first."""
    members = s.cluster.members
    key = s.cluster.sync
    rows: list[tuple[int, int, int, str]] = []
    for row in s.postgres.replication:
        name = row.application_name
        member = members.get(name)
        if member is None or name == s.name or row.state != "streaming":
            continue
        if member.nosync or member.tags.get("nostream"):
            continue
        current = 0 if key is not None and key.is_sync(name) else 1
        rows.append((-member.sync_priority, current, -_position(row), name))
    rows.sort()
    limit = s.config.maximum_lag_on_syncnode
    if limit > 0 and rows:
        positions = [-position for _, _, position, _ in rows]
        most = max(positions) if len(rows) > 1 else (s.postgres.write_lsn or max(positions))
        rows = [r for r, p in zip(rows, positions, strict=True) if most - p <= limit]
    return tuple(name for _, _, _, name in rows)


def caught_up(s: Snapshot) -> set[str]:
    """Standbys PostgreSQL treats as synchronous that flushed everything since being named."""
    named = s.local.sync_named_at
    return {
        row.application_name
        for row in s.postgres.replication
        if row.sync_state in ("sync", "quorum")
        and row.application_name in named
        and _position(row) >= named[row.application_name]
    }


def before_promotion(s: Snapshot) -> list[Action]:
    """In synchronous mode, what a node does before it promotes (as Patroni): name itself
    the leader in the `sync` key with no standby yet (compare-and-swap: a failure stops the
    promotion), and give PostgreSQL no synchronous standby (strict: one nobody matches), so
    that no other node may take over from it with fewer acknowledged commits."""
    cfg = s.config
    if not cfg.synchronous:
        return []
    if cfg.quorum:
        return quorum.before_promotion_quorum(s)
    key = s.cluster.sync
    revision = key.mod_revision if key is not None else 0
    return [
        WriteSyncKey(s.name, (), revision),
        SetSyncStandbys((), cfg.synchronous_node_count, cfg.synchronous_mode_strict),
    ]


def sync_pending(s: Snapshot) -> bool:
    """A standby the leader wants synchronous is not in the `sync` key yet: look again soon
    (it usually catches up within milliseconds of being named)."""
    if not s.config.synchronous:
        return False
    if s.config.quorum:
        return not quorum.plan(s, quorum_standbys(s)).settled
    key = s.cluster.sync
    listed = key.sync_standby if key is not None and key.leader == s.name else ()
    return any(m not in listed for m in wanted_sync_standbys(s))


def sync_actions(s: Snapshot) -> list[Action]:
    """What the leader does this cycle to keep `synchronous_standby_names` and `sync` right."""
    cfg = s.config
    key = s.cluster.sync
    revision = key.mod_revision if key is not None else 0
    listed = key.sync_standby if key is not None and key.leader == s.name else ()
    pg_value = s.postgres.synchronous_standby_names
    if not cfg.synchronous:
        actions: list[Action] = []
        if key is not None and (key.leader is not None or key.sync_standby):
            actions.append(WriteSyncKey(None, (), revision))
        if pg_value:
            actions.append(SetSyncStandbys((), 0))
        return actions
    if cfg.quorum:
        return list(quorum.plan(s, quorum_standbys(s)).actions)
    wanted = wanted_sync_standbys(s)
    confirmed = caught_up(s)
    new_listed = tuple(m for m in wanted if m in listed or m in confirmed)
    setter = SetSyncStandbys(wanted, cfg.synchronous_node_count, cfg.synchronous_mode_strict)
    if parse_synchronous_standby_names(pg_value)[0] == "ANY":
        # From quorum commit: empty the key first (commits acknowledged by one standby of
        # the ANY set may be missing on another), then name the standbys; they enter the
        # key once they have flushed past the position of the new value.
        actions = (
            []
            if not listed and key is not None and key.leader == s.name
            else [WriteSyncKey(s.name, (), revision)]
        )
        return [*actions, setter]
    actions = []
    kept = tuple(m for m in listed if m in new_listed)
    if kept != tuple(listed) or key is None or key.leader != s.name:
        actions.append(WriteSyncKey(s.name, kept, revision))
        revision = -1  # the key changes: the next write is unconditional on this leader
    if setter.value != pg_value:
        actions.append(setter)
    if new_listed != kept:
        actions.append(WriteSyncKey(s.name, new_listed, None if revision == -1 else revision))
    return actions
