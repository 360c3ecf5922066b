"""The DCS on a real etcd v3 cluster, over `EtcdChannel` and aetcd's generated stubs.

`EtcdKV` turns the `KVBackend` calls into etcd RPCs and the protobuf answers
into plain values (no protobuf object leaves this module); `EtcdDCS` is the
shared `KVDCS` core on it.  The watch runs on the endpoint in use and is
restarted on another one when calls move (a member that died or lost quorum).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from aetcd import rpc

from haagent.config.model import DynamicConfig, Settings
from haagent.dcs.channel import EtcdChannel, Metadata, TlsConfig
from haagent.dcs.client import KVDCS
from haagent.dcs.errors import DCSError, DCSUnavailable, WatchCompacted
from haagent.dcs.kv import (
    Compare,
    Delete,
    KeyValue,
    Op,
    Put,
    TxnResult,
    WatchBatch,
    WatchEvent,
    prefix_range_end,
)

log = logging.getLogger("haagent.dcs")

# The watch's pause between attempts while etcd cannot be reached.
BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0

_TARGETS = {
    "value": rpc.Compare.VALUE,
    "create": rpc.Compare.CREATE,
    "mod": rpc.Compare.MOD,
    "version": rpc.Compare.VERSION,
    "lease": rpc.Compare.LEASE,
}
_FIELDS = {
    "value": "value",
    "create": "create_revision",
    "mod": "mod_revision",
    "version": "version",
    "lease": "lease",
}


def _kv(message: Any) -> KeyValue:
    return KeyValue(
        key=bytes(message.key),
        value=bytes(message.value),
        create_revision=int(message.create_revision),
        mod_revision=int(message.mod_revision),
        version=int(message.version),
        lease=int(message.lease),
    )


def _compare(compare: Compare) -> Any:
    result = rpc.Compare.EQUAL if compare.op == "==" else rpc.Compare.NOT_EQUAL
    message = rpc.Compare(key=compare.key, target=_TARGETS[compare.target], result=result)
    setattr(message, _FIELDS[compare.target], compare.value)
    return message


def _request_op(op: Op) -> Any:
    if isinstance(op, Put):
        return rpc.RequestOp(request_put=rpc.PutRequest(key=op.key, value=op.value, lease=op.lease))
    if isinstance(op, Delete):
        request = rpc.DeleteRangeRequest(key=op.key, range_end=op.range_end or b"")
        return rpc.RequestOp(request_delete_range=request)
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=op.key, range_end=op.range_end or b""))


class EtcdKV:
    """`KVBackend` on an etcd cluster."""

    def __init__(self, channel: EtcdChannel) -> None:
        self.channel = channel

    @property
    def endpoint(self) -> str:
        return self.channel.current

    @property
    def last_contact(self) -> float | None:
        return self.channel.last_contact

    async def connect(self, budget: float) -> None:
        """Authenticate (when a username is configured), so a wrong password shows at once."""
        if not self.channel.needs_token:
            return

        async def noop(endpoint: Any, attempt: float, metadata: Metadata) -> None:
            return None  # `call` authenticates before running the attempt

        await self.channel.call("authenticate", noop, budget)

    async def close(self) -> None:
        await self.channel.close()

    async def pause_before_retry(self, failures: int) -> None:
        await asyncio.sleep(min(BACKOFF_MAX, BACKOFF_MIN * 2 ** max(0, failures - 1)))

    async def range(
        self, key: bytes, range_end: bytes | None, *, budget: float
    ) -> tuple[int, tuple[KeyValue, ...]]:
        request = rpc.RangeRequest(key=key, range_end=range_end or b"")

        async def attempt(endpoint: Any, timeout: float, metadata: Metadata) -> Any:
            return await endpoint.kv.Range(request, timeout=timeout, metadata=metadata)

        response = await self.channel.call("read", attempt, budget)
        return int(response.header.revision), tuple(_kv(m) for m in response.kvs)

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op] = (),
        *,
        budget: float,
    ) -> TxnResult:
        request = rpc.TxnRequest(
            compare=[_compare(c) for c in compare],
            success=[_request_op(op) for op in success],
            failure=[_request_op(op) for op in failure],
        )

        async def attempt(endpoint: Any, timeout: float, metadata: Metadata) -> Any:
            return await endpoint.kv.Txn(request, timeout=timeout, metadata=metadata)

        response = await self.channel.call("txn", attempt, budget)
        ranges: list[tuple[KeyValue, ...]] = []
        wrote = False
        for item in response.responses:
            kind = item.WhichOneof("response")
            if kind == "response_range":
                ranges.append(tuple(_kv(m) for m in item.response_range.kvs))
            elif kind == "response_put":
                wrote = True
            elif kind == "response_delete_range":
                wrote = wrote or item.response_delete_range.deleted > 0
        return TxnResult(
            bool(response.succeeded), int(response.header.revision), tuple(ranges), wrote
        )

    async def grant(self, ttl: int, *, budget: float) -> int:
        request = rpc.LeaseGrantRequest(TTL=ttl, ID=0)

        async def attempt(endpoint: Any, timeout: float, metadata: Metadata) -> Any:
            return await endpoint.lease.LeaseGrant(request, timeout=timeout, metadata=metadata)

        response = await self.channel.call("grant a lease", attempt, budget)
        if response.error:
            raise DCSError(f"etcd refused a lease of {ttl}s: {response.error}")
        return int(response.ID)

    async def keepalive(self, lease_id: int, *, budget: float) -> int:
        async def attempt(endpoint: Any, timeout: float, metadata: Metadata) -> int:
            call = endpoint.lease.LeaseKeepAlive(timeout=timeout, metadata=metadata)
            try:
                await call.write(rpc.LeaseKeepAliveRequest(ID=lease_id))
                response = await call.read()
            finally:
                call.cancel()
            if response is grpc.aio.EOF:
                raise DCSUnavailable(f"etcd {endpoint.address} closed the lease keepalive stream")
            return int(response.TTL)

        return await self.channel.call("keep the lease alive", attempt, budget)

    async def revoke(self, lease_id: int, *, budget: float) -> None:
        request = rpc.LeaseRevokeRequest(ID=lease_id)

        async def attempt(endpoint: Any, timeout: float, metadata: Metadata) -> Any:
            return await endpoint.lease.LeaseRevoke(request, timeout=timeout, metadata=metadata)

        await self.channel.call("revoke the lease", attempt, budget)

    async def watch(
        self,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        on_batch: Callable[[WatchBatch], None],
        *,
        budget: float,
        on_created: Callable[[], None] | None = None,
    ) -> None:
        await self.connect(budget)
        endpoint = self.channel.endpoint()
        create = rpc.WatchCreateRequest(
            key=key, range_end=range_end, start_revision=start_revision, progress_notify=True
        )
        call = endpoint.watch.Watch(metadata=self.channel.metadata(require_leader=True))
        try:
            await call.write(rpc.WatchRequest(create_request=create))
            async with asyncio.timeout(budget):
                response = await call.read()
            self._check(response, endpoint.address)
            if on_created is not None:
                on_created()
            while True:
                response = await call.read()
                self._check(response, endpoint.address)
                self.channel.contact()
                events = tuple(
                    WatchEvent("put" if e.type == rpc.Event.PUT else "delete", _kv(e.kv))
                    for e in response.events
                )
                revision = max((e.kv.mod_revision for e in events), default=0)
                on_batch(WatchBatch(revision or int(response.header.revision), events))
        except TimeoutError as e:
            self.channel.failed(endpoint.address, "watch not created in time")
            raise DCSUnavailable(f"etcd {endpoint.address} did not create the watch") from e
        except grpc.aio.AioRpcError as e:
            if "auth token" in str(e.details()):
                self.channel.forget_token()
            else:
                self.channel.failed(endpoint.address, str(e.details()))
            raise DCSUnavailable(f"watch via etcd {endpoint.address} broke: {e.details()}") from e
        finally:
            call.cancel()

    def _check(self, response: Any, address: str) -> None:
        if response is grpc.aio.EOF:
            raise DCSUnavailable(f"etcd {address} closed the watch stream")
        if response.compact_revision:
            raise WatchCompacted(
                f"revision compacted up to {response.compact_revision}",
                int(response.compact_revision),
            )
        if response.canceled:
            if "auth token" in response.cancel_reason:
                self.channel.forget_token()
            raise DCSUnavailable(f"etcd {address} cancelled the watch: {response.cancel_reason}")


class EtcdDCS(KVDCS):
    """The DCS of one member on an etcd v3 cluster."""

    def __init__(
        self,
        channel: EtcdChannel,
        *,
        name: str,
        prefix: str,
        ttl: int = 30,
        retry_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            EtcdKV(channel), name=name, prefix=prefix, ttl=ttl, retry_timeout=retry_timeout
        )
        self.channel = channel
        channel.add_listener(self._watch.restart)

    @classmethod
    def from_settings(cls, settings: Settings, dynamic: DynamicConfig | None = None) -> EtcdDCS:
        dynamic = dynamic or settings.bootstrap.dcs
        return cls(
            channel_from_settings(settings),
            name=settings.name,
            prefix=settings.dcs_prefix,
            ttl=dynamic.ttl,
            retry_timeout=dynamic.retry_timeout,
        )


def channel_from_settings(settings: Settings) -> EtcdChannel:
    etcd = settings.etcd3
    tls = None
    if etcd.protocol == "https" or etcd.cacert or etcd.cert:
        tls = TlsConfig(etcd.cacert, etcd.cert, etcd.key)
    return EtcdChannel(etcd.hosts, tls=tls, username=etcd.username, password=etcd.password)


async def read_raw(settings: Settings, *, budget: float = 10.0) -> dict[str, bytes]:
    """Every key under the cluster prefix and its raw value (`patronictl`'s one range read)."""
    channel = channel_from_settings(settings)
    kv = EtcdKV(channel)
    prefix = settings.dcs_prefix.encode("utf-8")
    try:
        _, kvs = await kv.range(prefix, prefix_range_end(prefix), budget=budget)
    finally:
        with contextlib.suppress(Exception):
            await kv.close()
    return {item.key.decode("utf-8", errors="replace"): item.value for item in kvs}
