"""Builders for HA snapshots in tests: a healthy three-node cluster, then tweak."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from haagent.config.model import DynamicConfig, DynamicPostgresql, Tags
from haagent.core.snapshot import LocalFacts, PeerPosition, Snapshot
from haagent.dcs.model import ClusterStatus, ClusterView, Failover, Leader, Member, SyncState
from haagent.postgres.model import PostgresStatus, ReplicationConnection

SYSID = "7300000000000000001"
NOW = 1000.0
WALL = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def member(name: str, role: str = "replica", lsn: int = 1000, **kw: Any) -> Member:
    fields: dict[str, Any] = dict(
        conn_url=f"postgres://{name}:5432/postgres",
        api_url=f"http://{name}:8008/patroni",
        state="running",
        role=role,
        timeline=1,
    )
    if role == "primary":
        fields["xlog_location"] = lsn
    else:
        fields["receive_lsn"] = lsn
        fields["replay_lsn"] = lsn
    fields.update(kw)
    return Member(name=name, **fields)


def primary_pg(lsn: int = 1000, **kw: Any) -> PostgresStatus:
    fields: dict[str, Any] = dict(
        data_dir_exists=True,
        data_dir_initialized=True,
        running=True,
        accepting=True,
        in_recovery=False,
        timeline=1,
        system_identifier=SYSID,
        write_lsn=lsn,
    )
    fields.update(kw)
    return PostgresStatus(**fields)


def replica_pg(lsn: int = 1000, **kw: Any) -> PostgresStatus:
    fields: dict[str, Any] = dict(
        data_dir_exists=True,
        data_dir_initialized=True,
        running=True,
        accepting=True,
        in_recovery=True,
        timeline=1,
        system_identifier=SYSID,
        receive_lsn=lsn,
        replay_lsn=lsn,
        receiver_streaming=True,
    )
    fields.update(kw)
    return PostgresStatus(**fields)


def stopped_pg(initialized: bool = True, **kw: Any) -> PostgresStatus:
    fields: dict[str, Any] = dict(
        data_dir_exists=initialized,
        data_dir_initialized=initialized,
        running=False,
        system_identifier=SYSID if initialized else None,
    )
    fields.update(kw)
    return PostgresStatus(**fields)


def streaming(*names: str, sync: tuple[str, ...] = ()) -> tuple[ReplicationConnection, ...]:
    return tuple(
        ReplicationConnection(
            usename="replicator",
            application_name=n,
            client_addr="127.0.0.1",
            state="streaming",
            sync_state="sync" if n in sync else "async",
            sync_priority=1 if n in sync else 0,
            flush_lsn=1000,
        )
        for n in names
    )


def cluster(
    leader: str | None = "node1",
    members: tuple[Member, ...] | None = None,
    *,
    optime: int | None = 1000,
    **kw: Any,
) -> ClusterView:
    if members is None:
        members = (member("node1", "primary"), member("node2"), member("node3"))
    return ClusterView(
        revision=10,
        initialize=SYSID,
        config=DynamicConfig(),
        leader=Leader(leader, lease_id=1, mod_revision=5) if leader else None,
        members={m.name: m for m in members},
        status=ClusterStatus(optime=optime),
        **kw,
    )


def snapshot(
    name: str = "node1",
    pg: PostgresStatus | None = None,
    view: ClusterView | None = None,
    *,
    config: DynamicConfig | None = None,
    tags: Tags | None = None,
    local: LocalFacts | None = None,
    **kw: Any,
) -> Snapshot:
    return Snapshot(
        name=name,
        now=NOW,
        wall=WALL,
        tags=tags or Tags(),
        config=config or DynamicConfig(),
        cluster=view if view is not None else cluster(),
        dcs_ok=True,
        postgres=pg if pg is not None else (primary_pg() if name == "node1" else replica_pg()),
        local=local or LocalFacts(),
        **kw,
    )


def peers(**positions: int) -> dict[str, PeerPosition]:
    return {
        n: PeerPosition(name=n, reachable=True, lsn=lsn, timeline=1, running=True)
        for n, lsn in positions.items()
    }


__all__ = [
    "NOW",
    "SYSID",
    "WALL",
    "DynamicConfig",
    "DynamicPostgresql",
    "Failover",
    "LocalFacts",
    "SyncState",
    "Tags",
    "cluster",
    "member",
    "peers",
    "primary_pg",
    "replace",
    "replica_pg",
    "snapshot",
    "stopped_pg",
    "streaming",
]
