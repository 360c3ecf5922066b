"""The roles a node can take, the table of allowed transitions, and the role reached.

The decider names the role each decision leads to; `TRANSITIONS` lists every
change of role it may ask for, each with why.  A property test checks that `decide`
never asks for a transition missing from this table; at run time the HA loop logs
and counts (`haagent_role_change_refused_total`) a decision that does.
`transition_table()` renders it for the README.
"""

from __future__ import annotations

from enum import StrEnum

from haagent.postgres.model import PostgresStatus


class Role(StrEnum):
    UNINITIALIZED = "uninitialized"  # no data directory yet
    BOOTSTRAPPING = "bootstrapping"  # running initdb or building a replica
    PRIMARY = "primary"  # holds the leader key, PostgreSQL read-write
    REPLICA = "replica"  # PostgreSQL in recovery, following the leader (or waiting for one)
    # Holds the leader key of a standby cluster: PostgreSQL in recovery, following the remote
    # primary (standby_cluster), the other members following it.
    STANDBY_LEADER = "standby_leader"
    DEMOTED = "demoted"  # stopped accepting writes, leadership given up
    STOPPED = "stopped"  # PostgreSQL stopped on purpose (shutdown, refusal)


# (from, to) -> why that change happens.  Staying in a role is always allowed.
TRANSITIONS: dict[tuple[Role, Role], str] = {
    (Role.UNINITIALIZED, Role.BOOTSTRAPPING): "won the initialize race, or cloning a replica",
    (Role.UNINITIALIZED, Role.REPLICA): "an existing data directory starts as a replica",
    (Role.UNINITIALIZED, Role.PRIMARY): "found a running primary and holds the key",
    (Role.UNINITIALIZED, Role.DEMOTED): "found a running primary without the key",
    (Role.UNINITIALIZED, Role.STOPPED): "refuses to run: a wrong system identifier",
    (Role.BOOTSTRAPPING, Role.PRIMARY): "bootstrap finished and the key is taken",
    (Role.BOOTSTRAPPING, Role.REPLICA): "the replica was built and started",
    (Role.BOOTSTRAPPING, Role.UNINITIALIZED): "bootstrap or cloning failed; tries again",
    (Role.REPLICA, Role.PRIMARY): "won the leader race, or was chosen by a switchover",
    (Role.REPLICA, Role.BOOTSTRAPPING): "reinitialize on request",
    (Role.REPLICA, Role.STOPPED): "shutdown",
    (Role.PRIMARY, Role.DEMOTED): "lost or gave up the leader key",
    (Role.PRIMARY, Role.STOPPED): "shutdown",
    (Role.PRIMARY, Role.REPLICA): "another node holds the key",
    (Role.DEMOTED, Role.REPLICA): "follows the new leader",
    (Role.DEMOTED, Role.PRIMARY): "took the key again after a failed handover",
    (Role.DEMOTED, Role.STOPPED): "shutdown",
    (Role.STOPPED, Role.REPLICA): "PostgreSQL started again as a replica",
    (Role.STOPPED, Role.PRIMARY): "PostgreSQL restarted in place while holding the key",
    (Role.STOPPED, Role.BOOTSTRAPPING): "reinitialize on request",
    (Role.STOPPED, Role.DEMOTED): "gives up the key while PostgreSQL is down",
    (Role.REPLICA, Role.DEMOTED): "was promoting but lost the key",
    (Role.BOOTSTRAPPING, Role.STOPPED): "shutdown",
    (Role.UNINITIALIZED, Role.UNINITIALIZED): "waits",
    (Role.UNINITIALIZED, Role.STANDBY_LEADER): "found a running standby and holds the key of a "
    "standby cluster",
    (Role.BOOTSTRAPPING, Role.STANDBY_LEADER): "cloned from the remote primary and took the key "
    "of a standby cluster",
    (Role.REPLICA, Role.STANDBY_LEADER): "won the leader race of a standby cluster",
    (Role.STOPPED, Role.STANDBY_LEADER): "PostgreSQL started again while holding the key of a "
    "standby cluster",
    (Role.PRIMARY, Role.STANDBY_LEADER): "demote-cluster: follows the remote primary, keeps "
    "the key",
    (Role.DEMOTED, Role.STANDBY_LEADER): "demote-cluster: the demoted primary follows the remote "
    "primary",
    (Role.STANDBY_LEADER, Role.PRIMARY): "promote-cluster: the standby cluster became a primary "
    "cluster",
    (Role.STANDBY_LEADER, Role.REPLICA): "lost or gave up the key of a standby cluster",
    (Role.STANDBY_LEADER, Role.STOPPED): "shutdown",
}


def allowed(current: Role, new: Role) -> bool:
    return current == new or (current, new) in TRANSITIONS


def role_reached(before: Role, decided: Role, failed: bool) -> Role:
    """The role a cycle leaves the node in: the one its decision led to, unless an action
    failed on the way to the primary's or the standby leader's (then the node stays what it
    was)."""
    leading = decided in (Role.PRIMARY, Role.STANDBY_LEADER)
    return before if failed and leading else decided


def role_shown(role: Role, holds_key: bool, postgres: PostgresStatus) -> Role:
    """The role published after a cycle: the primary's only while the node holds the key
    and PostgreSQL runs read-write; a PostgreSQL still in recovery shows as a replica; the
    standby leader's only while the node holds the key."""
    if role == Role.PRIMARY and not (holds_key and postgres.running and not postgres.in_recovery):
        return Role.REPLICA if postgres.in_recovery else role
    if role == Role.STANDBY_LEADER and not holds_key:
        return Role.REPLICA
    return role


def transition_table() -> str:
    """`TRANSITIONS` as a Markdown table (the README shows it), in the order of `Role`."""
    order = {role: i for i, role in enumerate(Role)}
    rows = sorted(TRANSITIONS.items(), key=lambda item: (order[item[0][0]], order[item[0][1]]))
    lines = ["| from | to | why |", "|---|---|---|"]
    lines += [f"| {old} | {new} | {why} |" for (old, new), why in rows]
    return "\n".join(lines) + "\n"
