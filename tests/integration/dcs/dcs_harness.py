"""Harnesses that run the same DCS contract tests on the in-memory store and on real etcd.

`MemoryHarness` runs on a `MemoryStore` with a manual clock (time moves when a
test says so); `EtcdHarness` on a real etcd, with real time.  Each harness
uses a fresh cluster prefix, so one etcd can serve a whole module.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from haagent.dcs.channel import EtcdChannel
from haagent.dcs.client import KVDCS
from haagent.dcs.etcd import EtcdDCS, EtcdKV
from haagent.dcs.kv import Delete, Put, prefix_range_end
from haagent.dcs.memory import ManualClock, MemoryDCS, MemoryStore
from haagent_lab.lab.etcd import EtcdCluster

_scopes = itertools.count(1)


class Harness:
    """Clients of one cluster prefix, an outside writer, and a way to let time pass."""

    kind = ""

    def __init__(self) -> None:
        self.prefix = f"/service/contract{next(_scopes)}/"
        self.clients: list[KVDCS] = []

    def make(self, name: str, *, ttl: int = 10, retry_timeout: float = 3.0) -> KVDCS:
        raise NotImplementedError

    async def open(self, name: str, **kwargs: Any) -> KVDCS:
        client = self.make(name, **kwargs)
        await client.open()
        self.clients.append(client)
        return client

    async def advance(self, seconds: float) -> None:
        """Let `seconds` pass for the leases (a manual clock jumps, real time is slept)."""
        raise NotImplementedError

    async def raw(self) -> dict[str, bytes]:
        """Every key under the prefix (relative) and its bytes, read past any client."""
        raise NotImplementedError

    async def raw_put(self, key: str, value: bytes) -> None:
        raise NotImplementedError

    async def raw_delete(self, key: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


class MemoryHarness(Harness):
    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.store = MemoryStore(self.clock)

    def make(self, name: str, *, ttl: int = 10, retry_timeout: float = 3.0) -> KVDCS:
        return MemoryDCS(self.store, name, prefix=self.prefix, ttl=ttl, retry_timeout=retry_timeout)

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.store.expire()
        for _ in range(5):
            await asyncio.sleep(0)

    async def raw(self) -> dict[str, bytes]:
        prefix = self.prefix.encode()
        return {k[len(prefix) :].decode(): v for k, v in self.store.dump(prefix).items()}

    async def raw_put(self, key: str, value: bytes) -> None:
        self.store.txn([], [Put((self.prefix + key).encode(), value)], [])

    async def raw_delete(self, key: str) -> None:
        self.store.txn([], [Delete((self.prefix + key).encode())], [])


class EtcdHarness(Harness):
    kind = "etcd"

    def __init__(self, cluster: EtcdCluster) -> None:
        super().__init__()
        self.cluster = cluster
        self.kv = EtcdKV(EtcdChannel(cluster.hosts))

    def make(self, name: str, *, ttl: int = 10, retry_timeout: float = 3.0) -> KVDCS:
        return EtcdDCS(
            EtcdChannel(self.cluster.hosts),
            name=name,
            prefix=self.prefix,
            ttl=ttl,
            retry_timeout=retry_timeout,
        )

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def raw(self) -> dict[str, bytes]:
        prefix = self.prefix.encode()
        _, kvs = await self.kv.range(prefix, prefix_range_end(prefix), budget=5)
        return {kv.key[len(prefix) :].decode(): kv.value for kv in kvs}

    async def raw_put(self, key: str, value: bytes) -> None:
        await self.kv.txn([], [Put((self.prefix + key).encode(), value)], budget=5)

    async def raw_delete(self, key: str) -> None:
        await self.kv.txn([], [Delete((self.prefix + key).encode())], budget=5)

    async def close(self) -> None:
        await super().close()
        await self.kv.close()
