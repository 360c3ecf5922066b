"""Which user callbacks an action fires: Patroni's `on_*` events, as values.

Patroni runs `postgresql.callbacks.<event>` as `script EVENT ROLE SCOPE` when
PostgreSQL starts, stops, restarts, reloads or changes role.  This module says which
events an action that has just succeeded stands for, from what PostgreSQL was before
it (`before`), the role the decision leads to and the role the last callback
announced (Patroni's own idea of the node's role, which a failed attempt in between
does not change); the engine's callback queue runs them, in order
(`haagent.engine.callbacks`).  As in Patroni:

- a start is `on_start` with the role it starts in, except for a node that was the
  primary (or was demoted) and now starts as a replica: that is `on_role_change replica`;
- a promotion is `on_role_change primary`;
- a stop is `on_stop`: `demoted` when the primary stops to hand over (a switchover),
  `primary` when it stops otherwise (a shutdown), `replica` on a replica;
- a demotion (the primary stops writes and runs on as a replica) is `on_stop primary`,
  then `on_role_change replica`;
- a restart requested over the REST API is `on_restart` with the role it restarts in;
- the new cluster of a bootstrap is `on_start primary`.

Reloads are not actions (haagent reloads PostgreSQL when its config changes): the
engine fires `on_reload` itself.  Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from haagent.core.actions import (
    Action,
    BootstrapCluster,
    Demote,
    Follow,
    Promote,
    RestartPostgres,
    StartPostgres,
    StopPostgres,
)
from haagent.core.roles import Role
from haagent.postgres.model import PostgresStatus

CallbackName = Literal["on_start", "on_stop", "on_restart", "on_reload", "on_role_change"]
CALLBACK_NAMES: tuple[CallbackName, ...] = (
    "on_start",
    "on_stop",
    "on_restart",
    "on_reload",
    "on_role_change",
)
# The actions whose callbacks depend on what PostgreSQL was just before them.
WATCHED_ACTIONS: tuple[type, ...] = (
    BootstrapCluster,
    StartPostgres,
    StopPostgres,
    RestartPostgres,
    Promote,
    Demote,
    Follow,
)


@dataclass(frozen=True)
class CallbackEvent:
    """One callback to run: `script NAME ROLE SCOPE`."""

    name: CallbackName
    role: str  # primary, replica, demoted (standby_leader in a standby cluster)


def callback_role(pg: PostgresStatus) -> str:
    """The role a running PostgreSQL has, in Patroni's words."""
    return "primary" if pg.running and not pg.in_recovery else "replica"


def callbacks_after(
    action: Action, before: PostgresStatus, decided: Role, announced: str | None
) -> tuple[CallbackEvent, ...]:
    """The callbacks `action` fires now that it succeeded.

    `before`: PostgreSQL just before the action; `decided`: the role of the decision the
    action belongs to; `announced`: the role of the last start, stop, restart or role
    change fired (None: none yet)."""
    was_primary = before.running and not before.in_recovery
    was_replica = before.running and before.in_recovery
    was_leading = announced in ("primary", "demoted")
    match action:
        case BootstrapCluster():
            return (CallbackEvent("on_start", "primary"),)
        case StartPostgres(role="primary"):
            if was_replica:
                return (CallbackEvent("on_role_change", "primary"),)
            return () if was_primary else (CallbackEvent("on_start", "primary"),)
        case StartPostgres(role="replica") | Follow():
            if was_primary or (not before.running and was_leading):
                return (CallbackEvent("on_role_change", "replica"),)
            return () if was_replica else (CallbackEvent("on_start", "replica"),)
        case StopPostgres():
            if not before.running:
                return ()
            if was_primary:
                role = "demoted" if decided == Role.DEMOTED else "primary"
            else:
                role = "replica"
            return (CallbackEvent("on_stop", role),)
        case RestartPostgres(role=role):
            name: CallbackName = "on_restart" if before.running else "on_start"
            return (CallbackEvent(name, role),)
        case Promote():
            return (CallbackEvent("on_role_change", "primary"),) if was_replica else ()
        case Demote():
            if not was_primary:
                return ()
            return (CallbackEvent("on_stop", "primary"), CallbackEvent("on_role_change", "replica"))
    return ()
