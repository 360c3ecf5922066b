"""The JSON documents of the read-only endpoints, built from the published status.

`node_status()` is the body of `GET /`, `/patroni` and every health check,
with the fields of Patroni's `GET /patroni` document plus a `haagent`
object carrying the last decision's reason.  `cluster()`, `history()` and
`failsafe()` are the bodies of `/cluster`, `/history` and `/failsafe`.
Optional fields are left out when unknown rather than sent as null, as Patroni
does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from haagent import __version__
from haagent.api.health import is_quorum_standby, is_sync_standby, replication_state
from haagent.core.fitness import lag, member_lag, primary_position
from haagent.dcs.model import ClusterView, Member
from haagent.engine.status import PublishedStatus
from haagent.postgres.lsn import format_lsn


def encode(document: Any) -> bytes:
    return json.dumps(document, default=str).encode()


def _xlog(status: PublishedStatus) -> dict[str, Any]:
    pg = status.postgres
    if not pg.in_recovery:
        return {"location": pg.write_lsn if pg.write_lsn is not None else 0}
    received = pg.receive_lsn if pg.receive_lsn is not None else pg.replay_lsn
    return {
        "received_location": received or 0,
        "replayed_location": pg.replay_lsn or 0,
        "replayed_timestamp": pg.replay_timestamp,
        "paused": pg.replay_paused,
    }


def node_status(status: PublishedStatus) -> dict[str, Any]:
    """The body of `GET /` and `GET /patroni`."""
    pg = status.postgres
    doc: dict[str, Any] = {"state": status.state}
    if pg.postmaster_start_time is not None:
        doc["postmaster_start_time"] = pg.postmaster_start_time
    doc["role"] = status.role
    if pg.running:
        if pg.server_version is not None:
            doc["server_version"] = pg.server_version
        doc["xlog"] = _xlog(status)
        if pg.timeline is not None:
            doc["timeline"] = pg.timeline
        state = replication_state(status)
        if state is not None:
            doc["replication_state"] = state
        doc["replication"] = [
            {
                "usename": row.usename,
                "application_name": row.application_name,
                "client_addr": row.client_addr,
                "state": row.state,
                "sync_state": row.sync_state,
                "sync_priority": row.sync_priority,
            }
            for row in pg.replication
        ]
        if pg.in_recovery and is_sync_standby(status):
            doc["sync_standby"] = True
        if pg.in_recovery and is_quorum_standby(status):
            doc["quorum_standby"] = True
    doc["cluster_unlocked"] = status.cluster.leader is None
    if status.failsafe_active:
        doc["failsafe_mode_is_active"] = True
    doc["pause"] = status.paused
    if status.watchdog_failed:
        doc["watchdog_failed"] = True
    if status.pre_promote_failed:
        doc["pre_promote_failed"] = True
    if status.dcs_last_seen is not None:
        doc["dcs_last_seen"] = int(status.dcs_last_seen)
    doc["tags"] = dict(status.tags)
    system_id = pg.system_identifier or status.cluster.initialize
    if system_id:
        doc["database_system_identifier"] = system_id
    if status.pending_restart or pg.pending_restart:
        doc["pending_restart"] = True
    if status.scheduled_restart:
        doc["scheduled_restart"] = dict(status.scheduled_restart)
    doc["patroni"] = {
        "version": status.version or __version__,
        "scope": status.scope,
        "name": status.name,
    }
    doc["haagent"] = {
        "reason_code": status.reason_code,
        "reason_text": status.reason_text,
        "watchdog": status.watchdog,
    }
    return doc


def _member(
    view: ClusterView, member: Member, synchronous_mode: bool, quorum: bool
) -> dict[str, Any]:
    role = view.member_role(member, synchronous_mode, quorum=quorum)
    doc: dict[str, Any] = {"name": member.name, "role": role, "state": view.member_state(member)}
    doc["api_url"] = member.api_url
    address = member.host_port
    if address is not None:
        host, port = address
        doc["host"] = host
        if port:
            doc["port"] = port
    if member.timeline is not None:
        doc["timeline"] = member.timeline
    if member.pending_restart:
        doc["pending_restart"] = True
    if member.scheduled_restart:
        doc["scheduled_restart"] = dict(member.scheduled_restart)
    if member.tags:
        doc["tags"] = dict(member.tags)
    if role in ("leader", "standby_leader"):
        return doc
    primary = primary_position(view)
    for kind, lsn in (("receive", member.receive_lsn), ("replay", member.replay_lsn)):
        if lsn is not None:
            if primary is not None:
                doc[f"{kind}_lag"] = lag(primary, lsn)
            doc[f"{kind}_lsn"] = format_lsn(lsn)
    behind = member_lag(view, member)
    doc["lag"] = "unknown" if behind is None else behind
    if member.lsn is not None:
        doc["lsn"] = format_lsn(member.lsn)
    return doc


def cluster(status: PublishedStatus) -> dict[str, Any]:
    """The body of `GET /cluster`: members sorted by name, pause, a scheduled switchover."""
    view = status.cluster
    sync_mode, quorum = status.config.synchronous, status.config.quorum
    members = [_member(view, m, sync_mode, quorum) for m in view.members.values()]
    members.sort(key=lambda m: str(m["name"]))
    doc: dict[str, Any] = {"members": members, "scope": status.scope}
    if status.paused:
        doc["pause"] = True
    failover = view.failover
    if failover is not None and failover.scheduled_at is not None:
        scheduled: dict[str, Any] = {"at": failover.scheduled_at.isoformat()}
        if failover.leader:
            scheduled["from"] = failover.leader
        if failover.candidate:
            scheduled["to"] = failover.candidate
        doc["scheduled_switchover"] = scheduled
    return doc


def history(status: PublishedStatus) -> list[list[Any]]:
    """The body of `GET /history`: `[timeline, lsn, reason, timestamp(, new_leader)]` rows."""
    rows: list[list[Any]] = []
    for entry in status.cluster.history:
        row: list[Any] = [entry.timeline, entry.lsn, entry.reason, entry.timestamp]
        if entry.new_leader is not None:
            row.append(entry.new_leader)
        rows.append(row)
    return rows


def config(status: PublishedStatus) -> Mapping[str, Any] | None:
    """The body of `GET /config`: the DCS `config` key as stored; None when absent."""
    view_config = status.cluster.config
    return view_config.raw if view_config is not None else None


def failsafe(status: PublishedStatus) -> Mapping[str, str] | None:
    """The body of `GET /failsafe`: the failsafe topology; None when failsafe mode is off."""
    if not status.config.failsafe_mode:
        return None
    return status.cluster.failsafe or {}


__all__ = [
    "cluster",
    "config",
    "encode",
    "failsafe",
    "history",
    "node_status",
]
