"""The roles a node can take, and the table of allowed transitions.

The decider names the role each decision leads to; `TRANSITIONS` lists every
change of role it may ask for, each with why.  A test checks that `decide`
never asks for a transition missing from this table.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    UNINITIALIZED = "uninitialized"  # no data directory yet
    BOOTSTRAPPING = "bootstrapping"  # running initdb or building a replica
    PRIMARY = "primary"  # holds the leader key, PostgreSQL read-write
    REPLICA = "replica"  # PostgreSQL in recovery, following the leader (or waiting for one)
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
}


def allowed(current: Role, new: Role) -> bool:
    return current == new or (current, new) in TRANSITIONS
