"""The watch on real etcd: how fast a deletion shows, outages, re-sync and compaction."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from haagent.dcs.channel import EtcdChannel
from haagent.dcs.errors import DCSUnavailable, WatchCompacted
from haagent.dcs.etcd import EtcdDCS, EtcdKV
from haagent.dcs.kv import Put, WatchBatch, prefix_range_end
from haagent_lab.lab.etcd import EtcdCluster

pytestmark = pytest.mark.integration

PREFIX = "/service/watch/"


def client(etcd: EtcdCluster, name: str, **kwargs: float) -> EtcdDCS:
    ttl = int(kwargs.pop("ttl", 10))
    retry_timeout = kwargs.pop("retry_timeout", 2.0)
    return EtcdDCS(
        EtcdChannel(etcd.hosts), name=name, prefix=PREFIX, ttl=ttl, retry_timeout=retry_timeout
    )


async def test_a_watcher_sees_the_expired_leader_key_within_200ms(etcd: EtcdCluster) -> None:
    ttl = 2
    holder = client(etcd, "a", ttl=ttl)
    watcher = client(etcd, "b")
    poller = EtcdKV(EtcdChannel(etcd.hosts))
    await holder.open()
    await watcher.open()
    try:
        assert await holder.take_leader()
        renewed = time.monotonic()
        await holder.close()  # no more renewals
        assert watcher.view().leader_name == "a"

        async def etcd_deleted() -> float:
            key = (PREFIX + "leader").encode()
            while True:
                _, kvs = await poller.range(key, None, budget=2)
                if not kvs:
                    return time.monotonic()
                await asyncio.sleep(0.005)

        async def watcher_saw() -> float:
            while watcher.view().leader is not None:
                watcher.changed.clear()
                await watcher.changed.wait()
            return time.monotonic()

        deleted, seen = await asyncio.wait_for(
            asyncio.gather(etcd_deleted(), watcher_saw()), ttl + 3
        )
        print(
            f"\n[etcd] leader key removed by etcd {deleted - renewed:.3f}s after the last "
            f"renewal (ttl {ttl}s); watcher saw it {1000 * (seen - deleted):+.1f} ms later"
        )
        assert deleted - renewed <= ttl + 1
        assert seen - deleted <= 0.2
    finally:
        await watcher.close()
        await poller.close()


async def test_an_etcd_outage_is_unavailable_then_the_view_re_syncs(etcd: EtcdCluster) -> None:
    a = client(etcd, "a", retry_timeout=1.5)
    b = client(etcd, "b")
    await a.open()
    await b.open()
    try:
        assert await a.take_leader()
        contact = a.last_contact
        etcd.stop_member(0)
        started = time.monotonic()
        with pytest.raises(DCSUnavailable) as error:
            await a.renew_leader()
        elapsed = time.monotonic() - started
        assert elapsed <= 1.5 + 0.5
        assert str(etcd.hosts[0]) in str(error.value)
        assert "retry" in str(error.value) or "did not answer" in str(error.value)
        assert a.last_contact == contact
        etcd.start_member(0)
        etcd.wait_healthy(0)
        a.changed.clear()
        await b.write_failover(leader="a", candidate="b", scheduled_at=None)
        await asyncio.wait_for(a.changed.wait(), 5)
        for _ in range(100):
            if a.watch_live and a.view().failover is not None:
                break
            await asyncio.sleep(0.05)
        assert a.watch_live
        failover = a.view().failover
        assert failover is not None and failover.candidate == "b"
        await a.renew_leader()
    finally:
        await a.close()
        await b.close()


async def test_every_call_is_bounded_by_retry_timeout_when_etcd_hangs(etcd: EtcdCluster) -> None:
    retry_timeout = 1.0
    a = client(etcd, "a", ttl=20, retry_timeout=retry_timeout)
    await a.open()
    process = etcd.members[0].process
    assert process is not None
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "renew_leader": a.renew_leader,
        "keepalive": a.keepalive,
        "take_leader": a.take_leader,
        "refresh": a.refresh,
        "touch_member": lambda: a.touch_member({"conn_url": "c", "api_url": "u"}),
        "write_config": lambda: a.write_config({"ttl": 30}, expected_revision=0),
    }
    try:
        assert await a.take_leader()
        process.send_signal(signal.SIGSTOP)
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(DCSUnavailable):
                await call()
            elapsed = time.monotonic() - started
            assert elapsed <= retry_timeout + 0.3, f"{name} took {elapsed:.2f}s"
    finally:
        process.send_signal(signal.SIGCONT)
    try:
        # Writes that timed out may still be applied: etcd reads them once it runs again.
        await a.renew_leader()
        assert a.view().leader_name == "a"
    finally:
        await a.close()


async def test_a_watch_from_a_compacted_revision_is_refused(etcd: EtcdCluster) -> None:
    kv = EtcdKV(EtcdChannel(etcd.hosts))
    prefix = PREFIX.encode()
    try:
        for i in range(3):
            result = await kv.txn([], [Put(prefix + b"k", str(i).encode())], budget=2)

        async def compact(endpoint: object, timeout: float, metadata: object) -> None:
            from aetcd import rpc

            request = rpc.CompactionRequest(revision=result.revision, physical=True)
            await endpoint.kv.Compact(request, timeout=timeout)  # type: ignore[attr-defined]

        await kv.channel.call("compact", compact, 2)
        batches: list[WatchBatch] = []
        with pytest.raises(WatchCompacted) as error:
            await kv.watch(prefix, prefix_range_end(prefix), 1, batches.append, budget=2)
        assert error.value.compact_revision == result.revision
        assert batches == []
    finally:
        await kv.close()


async def test_the_view_follows_restarted_streams(etcd: EtcdCluster) -> None:
    a = client(etcd, "a")
    b = client(etcd, "b")
    await a.open()
    await b.open()
    try:
        for i in range(5):
            a.changed.clear()
            # Drop the stream (as a move to another endpoint does) while b writes.
            a._watch.restart("test")
            await b.write_failover(leader="b", candidate=f"n{i}", scheduled_at=None)
            await asyncio.wait_for(a.changed.wait(), 5)
            for _ in range(100):
                failover = a.view().failover
                if failover is not None and failover.candidate == f"n{i}":
                    break
                await asyncio.sleep(0.02)
            assert failover is not None and failover.candidate == f"n{i}"
        assert a.view().revision == (await b.refresh()).revision
    finally:
        await a.close()
        await b.close()
