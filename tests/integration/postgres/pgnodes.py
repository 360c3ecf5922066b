"""Nodes for the PostgreSQL management tests: real PostgreSQL 15 on 127.0.0.11/.12."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from haagent.config.model import (
    Address,
    BootstrapSettings,
    Credentials,
    DynamicConfig,
    DynamicPostgresql,
    ListenAddress,
    PostgresqlAuthentication,
    PostgresqlSettings,
)
from haagent.postgres.local import LocalPostgres
from haagent.postgres.model import PostgresStatus, Upstream
from haagent.postgres.slots import SlotChanges, SlotSpec
from haagent_lab.lab.processes import free_port

SCOPE = "pgtest"
AUTH = PostgresqlAuthentication(
    superuser=Credentials("postgres", "su-secret-1"),
    replication=Credentials("replicator", "rep-secret-2"),
    rewind=Credentials("rewinder", "rw-secret-3"),
)
HBA = (
    "local all all trust",
    "host replication replicator 127.0.0.1/8 scram-sha-256",
    "host all all 127.0.0.1/8 scram-sha-256",
)


def dynamic(use_pg_rewind: bool = True, **parameters: Any) -> DynamicConfig:
    return DynamicConfig(
        postgresql=DynamicPostgresql(use_pg_rewind=use_pg_rewind, parameters=parameters)
    )


@dataclass
class Node:
    name: str
    host: str
    pg: LocalPostgres
    settings: PostgresqlSettings

    @property
    def port(self) -> int:
        return self.settings.listen.port

    @property
    def upstream(self) -> Upstream:
        return Upstream(self.name, self.host, self.port)

    def dsn(self) -> str:
        return (
            f"host={self.host} port={self.port} user=postgres password={AUTH.superuser.password}"
            " dbname=postgres connect_timeout=5"
        )

    async def sql(self, query: str) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.dsn(), autocommit=True) as conn:
            cur = await conn.execute(query.encode())
            return list(await cur.fetchall()) if cur.description else []


@dataclass
class Nodes:
    workdir: Path
    made: list[Node] = field(default_factory=list)

    def settings(self, name: str, host: str, **changes: Any) -> PostgresqlSettings:
        port = free_port(host)
        base = PostgresqlSettings(
            data_dir=self.workdir / name / "data",
            listen=ListenAddress((host,), port),
            connect_address=Address(host, port),
            pgpass=self.workdir / name / "pgpass",
            authentication=AUTH,
            parameters={
                "fsync": False,
                "unix_socket_directories": str(self.workdir),
                "shared_buffers": "16MB",
                "max_connections": 30,
            },
            pg_ctl_timeout=60,
        )
        return replace(base, **changes)

    def make(
        self,
        name: str,
        host: str,
        *,
        dyn: DynamicConfig | None = None,
        bootstrap: BootstrapSettings | None = None,
        **changes: Any,
    ) -> Node:
        settings = self.settings(name, host, **changes)
        boot = bootstrap or BootstrapSettings(initdb=(("encoding", "UTF8"), "no-sync"), pg_hba=HBA)
        pg = LocalPostgres(settings, boot, name, SCOPE, dyn or dynamic())
        node = Node(name, host, pg, settings)
        self.made.append(node)
        return node


async def wait_status(
    node: Node, predicate: object, what: str, timeout: float = 30
) -> PostgresStatus:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        status = await node.pg.status()
        if predicate(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{node.name}: timed out waiting for {what}; last {status}")
        await asyncio.sleep(0.1)


async def pair(nodes: Nodes, use_pg_rewind: bool = True, **changes: Any) -> tuple[Node, Node]:
    """node1 primary and node2 streaming from it through its slot, with table t."""
    dyn = dynamic(use_pg_rewind=use_pg_rewind)
    primary = nodes.make("node1", "127.0.0.11", dyn=dyn, **changes)
    replica = nodes.make("node2", "127.0.0.12", dyn=dyn)
    await primary.pg.bootstrap(timeout=120)
    await primary.pg.change_slots(SlotChanges(create=(SlotSpec("node2"),)))
    await primary.sql("CREATE TABLE t (id int, origin text); INSERT INTO t VALUES (1, 'both')")
    await replica.pg.create_replica([primary.upstream], timeout=300)
    await replica.pg.start_on_disk(timeout=60)
    await wait_status(replica, lambda s: s.receiver_streaming, "streaming")
    await primary.sql("CHECKPOINT")
    return primary, replica


async def rows(node: Node) -> list[tuple[object, ...]]:
    return await node.sql("SELECT id, origin FROM t ORDER BY id")


async def diverge(primary: Node, replica: Node) -> None:
    """Promote the replica while the primary keeps running, and write on both."""
    await wait_status(replica, lambda s: s.replay_lsn is not None, "replaying")
    assert await replica.pg.promote()
    await replica.pg.change_slots(SlotChanges(create=(SlotSpec("node1"),)))
    await primary.sql("INSERT INTO t SELECT g, 'old primary alone' FROM generate_series(10, 500) g")
    await replica.sql("INSERT INTO t VALUES (2, 'new primary')")
