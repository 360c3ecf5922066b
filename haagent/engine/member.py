"""The `members/<name>` JSON this node publishes about itself (Patroni's fields)."""

from __future__ import annotations

from typing import Any

from haagent.config.model import Settings
from haagent.core.roles import Role
from haagent.postgres.model import PostgresStatus

PUBLISHED_ROLES: dict[Role, str] = {
    Role.PRIMARY: "primary",
    Role.REPLICA: "replica",
    Role.STANDBY_LEADER: "standby_leader",
    Role.DEMOTED: "demoted",
    Role.STOPPED: "replica",
    Role.BOOTSTRAPPING: "uninitialized",
    Role.UNINITIALIZED: "uninitialized",
}


def published_role(role: Role, pg: PostgresStatus) -> str:
    if role == Role.STOPPED and not pg.data_dir_initialized:
        return "uninitialized"
    return PUBLISHED_ROLES[role]


def postgres_state(pg: PostgresStatus, role: Role) -> str:
    """Patroni's `state` words for what PostgreSQL is doing."""
    if role == Role.BOOTSTRAPPING:
        return "creating replica" if pg.data_dir_initialized is False else "starting"
    if pg.running and pg.accepting:
        return "running"
    if pg.running:
        return "starting"
    if pg.data_dir_initialized:
        return "stopped"
    return "stopped"


def member_data(
    settings: Settings, pg: PostgresStatus, role: Role, *, paused: bool, version: str
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "conn_url": settings.postgresql.conn_url,
        "api_url": settings.restapi.api_url,
        "state": postgres_state(pg, role),
        "role": published_role(role, pg),
        "version": version,
    }
    tags = dict(settings.tags.raw)
    if tags:
        data["tags"] = tags
    if pg.running and pg.accepting:
        if pg.in_recovery:
            position = pg.lsn
            if position is not None:
                data["xlog_location"] = position
            data["replication_state"] = (
                "streaming" if pg.receiver_streaming else "in archive recovery"
            )
            if pg.receive_lsn is not None:
                data["receive_lsn"] = pg.receive_lsn
            if pg.replay_lsn is not None:
                data["replay_lsn"] = pg.replay_lsn
        elif pg.write_lsn is not None:
            data["xlog_location"] = pg.write_lsn
        if pg.timeline is not None:
            data["timeline"] = pg.timeline
    if pg.pending_restart:
        data["pending_restart"] = True
    if paused:
        data["pause"] = True
    return data
