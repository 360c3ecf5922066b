"""Synchronous replication: which standbys the leader names, and in which order it says so.

The `sync` key may name a standby only once PostgreSQL already treats it as
synchronous, so a node listed there has every acknowledged commit.  Adding:
`synchronous_standby_names` first, the key after PostgreSQL confirms.
Removing: the key first, then `synchronous_standby_names`.
"""

from __future__ import annotations

from haagent.core.actions import Action, SetSyncStandbys, WriteSyncKey
from haagent.core.snapshot import Snapshot


def quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def render_synchronous_standby_names(members: tuple[str, ...], count: int, strict: bool) -> str:
    """The exact `synchronous_standby_names` value for these members."""
    if not members:
        return "*" if strict else ""
    n = max(1, min(count, len(members)))
    return f"FIRST {n} ({','.join(quote_name(m) for m in members)})"


def wanted_sync_standbys(s: Snapshot) -> tuple[str, ...]:
    """Healthy streaming replicas not tagged nosync, best first, as many as asked for."""
    members = s.cluster.members
    candidates: list[tuple[int, int, str]] = []
    for row in s.postgres.replication:
        name = row.application_name
        member = members.get(name)
        if member is None or name == s.name or row.state != "streaming":
            continue
        if member.tags.get("nosync") or member.tags.get("nostream"):
            continue
        position = row.flush_lsn if row.flush_lsn is not None else (row.write_lsn or 0)
        candidates.append((0 if s.cluster.sync and s.cluster.sync.is_sync(name) else 1,
                           -position, name))  # fmt: skip
    candidates.sort()
    return tuple(name for _, _, name in candidates[: max(0, s.config.synchronous_node_count)])


def sync_actions(s: Snapshot) -> list[Action]:
    """What the leader does this cycle to keep `synchronous_standby_names` and `sync` right."""
    cfg = s.config
    key = s.cluster.sync
    revision = key.mod_revision if key is not None else 0
    listed = key.sync_standby if key is not None and key.leader == s.name else ()
    pg_value = s.postgres.synchronous_standby_names
    if not cfg.synchronous_mode:
        actions: list[Action] = []
        if key is not None and (key.leader is not None or key.sync_standby):
            actions.append(WriteSyncKey(None, (), revision))
        if pg_value:
            actions.append(SetSyncStandbys((), 0))
        return actions
    wanted = wanted_sync_standbys(s)
    confirmed = {
        r.application_name for r in s.postgres.replication if r.sync_state in ("sync", "quorum")
    }
    new_listed = tuple(m for m in wanted if m in listed or m in confirmed)
    desired_pg = render_synchronous_standby_names(
        wanted, cfg.synchronous_node_count, cfg.synchronous_mode_strict
    )
    actions = []
    kept = tuple(m for m in listed if m in new_listed)
    if kept != tuple(listed) or key is None or key.leader != s.name:
        actions.append(WriteSyncKey(s.name, kept, revision))
        revision = -1  # the key changes: the next write is unconditional on this leader
    if desired_pg != pg_value:
        actions.append(
            SetSyncStandbys(wanted, cfg.synchronous_node_count, cfg.synchronous_mode_strict)
        )
    if new_listed != kept:
        actions.append(WriteSyncKey(s.name, new_listed, None if revision == -1 else revision))
    return actions
