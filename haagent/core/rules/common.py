"""Small pieces the rules share."""

from __future__ import annotations

from collections.abc import Sequence

from haagent.core.actions import Action, KeepaliveLease, UpdateMember
from haagent.core.fitness import lag, primary_position, unfit_reason
from haagent.core.reasons import Code, Reason
from haagent.core.roles import Role
from haagent.core.snapshot import Decision, Snapshot
from haagent.dcs.model import Member


def decision(
    actions: Sequence[Action],
    code: Code,
    text: str,
    role: Role,
    *,
    again: bool = False,
    soon: bool = False,
) -> Decision:
    return Decision(tuple(actions), Reason(code, text), role, again=again, soon=soon)


def idle(s: Snapshot, code: Code, text: str, role: Role | None = None) -> Decision:
    """Keep our lease and member key fresh and do nothing else."""
    return decision(
        [KeepaliveLease(), UpdateMember()], code, text, role if role is not None else current(s)
    )


def current(s: Snapshot) -> Role:
    """The role the observed PostgreSQL state amounts to right now."""
    pg = s.postgres
    if not pg.data_dir_initialized:
        return Role.UNINITIALIZED
    if not pg.running:
        return Role.STOPPED
    if pg.accepting and not pg.in_recovery:
        return Role.PRIMARY if s.holds_key else Role.DEMOTED
    if s.holds_key and s.config.standby_cluster is not None:
        return Role.STANDBY_LEADER
    return Role.REPLICA


def lag_behind_leader(s: Snapshot) -> int | None:
    """Bytes between the last known primary position and ours; None if either is unknown."""
    return lag(primary_position(s.cluster), s.postgres.lsn)


def healthy_replica(s: Snapshot, member: Member) -> bool:
    """A member other than us that could take over now."""
    return member.name != s.name and unfit_reason(s.cluster, s.config, member) is None
