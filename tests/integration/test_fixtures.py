"""The test fixtures start real etcd and PostgreSQL processes that answer."""

from __future__ import annotations

import aetcd
import psycopg
import pytest

from haagent_lab.lab.etcd import EtcdCluster
from support.postgres_instance import PostgresInstance

pytestmark = pytest.mark.integration


async def _put_get(host: str, port: int, key: bytes, value: bytes) -> bytes | None:
    async with aetcd.Client(host=host, port=port, timeout=5) as client:
        await client.put(key, value)
        result = await client.get(key)
        return None if result is None else bytes(result.value)


async def test_etcd_answers_put_and_get(etcd: EtcdCluster) -> None:
    address = etcd.hosts[0]
    assert await _put_get(address.host, address.port, b"/t/k", b"v1") == b"v1"


async def test_three_member_etcd_keeps_answering_with_one_member_stopped(
    etcd_cluster: EtcdCluster,
) -> None:
    assert [m.client.host for m in etcd_cluster.members] == [
        "127.0.0.11",
        "127.0.0.12",
        "127.0.0.13",
    ]
    first = etcd_cluster.hosts[0]
    assert await _put_get(first.host, first.port, b"/t/before", b"1") == b"1"
    etcd_cluster.stop_member(0)
    assert not etcd_cluster.members[0].alive()
    for address in etcd_cluster.hosts[1:]:
        assert await _put_get(address.host, address.port, b"/t/after", b"2") == b"2"


def test_postgres_answers_a_query(postgres: PostgresInstance) -> None:
    with psycopg.connect(postgres.dsn) as conn:
        row = conn.execute("SELECT current_user, version()").fetchone()
    assert row is not None
    assert row[0] == "postgres"
    assert "PostgreSQL 15" in row[1]
