"""The bytes in etcd, read back with `etcdctl`, are exactly Patroni's keys and values."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from haagent.config.model import Etcd3Settings, PostgresqlSettings, Settings
from haagent.dcs.channel import EtcdChannel
from haagent.dcs.errors import DCSError, LeaseNotFound
from haagent.dcs.etcd import EtcdDCS, EtcdKV, read_raw
from haagent.dcs.kv import Compare, CompareOp, CompareTarget, Delete, Get, Op, Put
from haagent.dcs.memory import MemoryStore
from haagent.dcs.model import HistoryEntry
from haagent_lab.lab.etcd import EtcdCluster

pytestmark = pytest.mark.integration

MEMBER = {
    "conn_url": "postgres://127.0.0.11:5432/postgres",
    "api_url": "http://127.0.0.11:8008/patroni",
    "state": "running",
    "role": "primary",
    "version": "4.1.0",
    "xlog_location": 67109064,
    "timeline": 2,
}


def etcdctl_get_prefix(cluster: EtcdCluster, prefix: str) -> dict[str, tuple[bytes, int]]:
    """`etcdctl get --prefix -w json`: each key's raw value and lease."""
    out = subprocess.run(
        ["/usr/bin/etcdctl", "--endpoints", cluster.endpoints, "get", "--prefix", prefix, "-w",
         "json"],
        env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    kvs: list[dict[str, Any]] = json.loads(out).get("kvs", [])
    return {
        base64.b64decode(kv["key"]).decode(): (base64.b64decode(kv.get("value", "")),
                                               int(kv.get("lease", 0)))
        for kv in kvs
    }  # fmt: skip


def etcdctl_put(cluster: EtcdCluster, key: str, value: str) -> None:
    subprocess.run(
        ["/usr/bin/etcdctl", "--endpoints", cluster.endpoints, "put", key, value],
        env={**os.environ, "ETCDCTL_API": "3"}, check=True, capture_output=True, timeout=30,
    )  # fmt: skip


async def test_every_key_has_patronis_bytes(etcd: EtcdCluster, workdir: Path) -> None:
    settings = Settings(
        scope="batman",
        name="node1",
        namespace="//service//",
        postgresql=PostgresqlSettings(data_dir=workdir / "pgdata"),
        etcd3=Etcd3Settings(hosts=etcd.hosts),
    )
    dcs = EtcdDCS.from_settings(settings)
    assert dcs.prefix == "/service/batman/"
    await dcs.open()
    try:
        assert await dcs.race_initialize()
        await dcs.set_initialize("7331955813123612345")
        assert await dcs.write_config(
            {
                "ttl": 30,
                "loop_wait": 10,
                "retry_timeout": 10,
                "postgresql": {"use_pg_rewind": True},
            },
            expected_revision=0,
        )
        assert await dcs.take_leader()
        await dcs.touch_member(MEMBER)
        await dcs.write_status(67109064, {"node2": 67108960}, ["node2"])
        await dcs.write_history(
            [HistoryEntry(1, 25623960, "no recovery target specified",
                          "2026-01-01T10:00:00.123456+00:00", "node1")]
        )  # fmt: skip
        assert await dcs.write_sync("node1", ["node3", "node2"], expected_revision=0)
        at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
        assert await dcs.write_failover(leader="node1", candidate="node2", scheduled_at=at)
        await dcs.write_failsafe({"node1": "http://127.0.0.11:8008/patroni"})
        lease = dcs.lease_id
        stored = etcdctl_get_prefix(etcd, "/service/batman/")
        p = "/service/batman/"
        assert stored == {
            p + "initialize": (b"7331955813123612345", 0),
            p + "config": (
                b'{"ttl":30,"loop_wait":10,"retry_timeout":10,"postgresql":{"use_pg_rewind":true}}',
                0,
            ),
            p + "leader": (b"node1", lease),
            p + "members/node1": (
                b'{"conn_url":"postgres://127.0.0.11:5432/postgres",'
                b'"api_url":"http://127.0.0.11:8008/patroni","state":"running","role":"primary",'
                b'"version":"4.1.0","xlog_location":67109064,"timeline":2}',
                lease,
            ),
            p + "status": (
                b'{"optime":67109064,"slots":{"node2":67108960},"retain_slots":["node2"]}',
                0,
            ),
            p + "history": (
                b'[[1,25623960,"no recovery target specified",'
                b'"2026-01-01T10:00:00.123456+00:00","node1"]]',
                0,
            ),
            p + "sync": (b'{"leader":"node1","sync_standby":"node2,node3","quorum":0}', 0),
            p + "failover": (
                b'{"leader":"node1","member":"node2","scheduled_at":"2026-03-01T12:30:00+00:00"}',
                0,
            ),
            p + "failsafe": (b'{"node1":"http://127.0.0.11:8008/patroni"}', 0),
        }
        assert await dcs.clear_failover()
        assert etcdctl_get_prefix(etcd, p + "failover")[p + "failover"] == (b"{}", 0)
        assert await read_raw(settings) == {
            k: v for k, (v, _) in etcdctl_get_prefix(etcd, p).items()
        }
        # The view decodes what etcdctl shows.
        view = await dcs.refresh()
        assert view.initialize == "7331955813123612345"
        assert view.leader is not None and view.leader.lease_id == lease
        assert view.members["node1"].xlog_location == 67109064
        assert view.sync is not None and view.sync.sync_standby == ("node2", "node3")
        assert view.failover is None and view.failover_revision > 0
        assert view.status.slots == {"node2": 67108960}
        assert view.config is not None and view.config.postgresql.use_pg_rewind
    finally:
        await dcs.close()


async def test_a_value_written_by_another_tool_is_read(etcd: EtcdCluster, workdir: Path) -> None:
    settings = Settings(
        scope="other",
        name="node2",
        postgresql=PostgresqlSettings(data_dir=workdir / "pgdata"),
        etcd3=Etcd3Settings(hosts=etcd.hosts),
    )
    failover = '{"leader":"node1","member":"node2","scheduled_at":"2026-03-01T12:30:00+00:00"}'
    member = json.dumps({**MEMBER, "xlog_location": 100}, separators=(",", ":"))
    for key, value in (("leader", "node1"), ("failover", failover), ("members/node1", member)):
        etcdctl_put(etcd, f"/service/other/{key}", value)
    dcs = EtcdDCS.from_settings(settings)
    await dcs.open()
    try:
        view = dcs.view()
        assert view.leader_name == "node1" and view.leader is not None
        assert view.leader.lease_id == 0
        assert view.failover is not None and view.failover.candidate == "node2"
        assert view.members["node1"].xlog_location == 100
        assert view.members["node1"].role == "primary"
        assert not await dcs.take_leader()
        with pytest.raises(DCSError, match="held by node1"):
            await dcs.renew_leader()
    finally:
        await dcs.close()


COMPARES: list[tuple[str, CompareTarget, bytes | int, CompareOp]] = [
    ("absent", "value", b"", "=="),
    ("absent", "value", b"", "!="),
    ("absent", "create", 0, "=="),
    ("absent", "mod", 0, "=="),
    ("absent", "version", 0, "=="),
    ("absent", "lease", 0, "=="),
    ("k", "value", b"v", "=="),
    ("k", "value", b"w", "!="),
    ("k", "create", 0, "=="),
    ("k", "version", 1, "=="),
    ("k", "lease", 0, "=="),
]


async def test_the_memory_store_compares_like_etcd(etcd: EtcdCluster) -> None:
    kv = EtcdKV(EtcdChannel(etcd.hosts))
    store = MemoryStore()
    prefix = b"/service/compare/"
    try:
        await kv.txn([], [Put(prefix + b"k", b"v")], budget=5)
        store.txn([], [Put(prefix + b"k", b"v")], [])
        for key, target, value, op in COMPARES:
            compare = [Compare(prefix + key.encode(), target, value, op)]
            real = await kv.txn(compare, [], [], budget=5)
            fake = store.txn(compare, [], [])
            assert real.succeeded == fake.succeeded, (key, target, value, op)
        # Ops run in order at one revision; a Get sees the Put before it; deletes report.
        ops: list[Op] = [Put(prefix + b"a", b"1"), Get(prefix + b"a"), Delete(prefix + b"k")]
        real_txn = await kv.txn([], ops, budget=5)
        fake_txn = store.txn([], ops, [])
        assert [[x.value for x in r] for r in real_txn.ranges] == [[b"1"]]
        assert [[x.value for x in r] for r in fake_txn.ranges] == [[b"1"]]
        assert real_txn.wrote and fake_txn.wrote
        nothing = [Delete(prefix + b"absent")]
        assert not (await kv.txn([], nothing, budget=5)).wrote
        assert not store.txn([], nothing, []).wrote
        with pytest.raises(LeaseNotFound):
            await kv.txn([], [Put(prefix + b"x", b"1", 0x1234)], budget=5)
        with pytest.raises(LeaseNotFound):
            store.txn([], [Put(prefix + b"x", b"1", 0x1234)], [])
    finally:
        await kv.close()
