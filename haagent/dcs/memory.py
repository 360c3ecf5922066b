"""An in-memory etcd for unit tests and simulations: same semantics, injected clock.

`MemoryStore` is the shared "etcd": revisions, txns with etcd's compare rules,
leases that expire on an injected clock, and prefix watches with history (so
compaction can be tested).  Lease timers run lazily: the store expires leases
whenever anyone calls it, and `expire()` does it on demand (a simulation calls
it after advancing its clock).  `partition(name)` cuts one client off: its calls
raise `DCSUnavailable` and its watch breaks, until `heal(name)`.

`MemoryDCS` is the production `KVDCS` core on this store, so it follows exactly
the same rules as `EtcdDCS`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from haagent.config.model import DynamicConfig, Settings
from haagent.dcs.client import KVDCS
from haagent.dcs.errors import DCSUnavailable, LeaseNotFound, WatchCompacted
from haagent.dcs.kv import (
    Compare,
    Delete,
    Get,
    KeyValue,
    Op,
    Put,
    TxnResult,
    WatchBatch,
    WatchEvent,
)

log = logging.getLogger("haagent.dcs")

Clock = Callable[[], float]


class ManualClock:
    """A clock that moves only when told to: `clock.advance(5)`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Lease:
    ttl: int
    expires_at: float
    keys: set[bytes] = field(default_factory=set)


@dataclass
class _Watcher:
    client: str
    key: bytes
    range_end: bytes
    on_batch: Callable[[WatchBatch], None]
    done: asyncio.Future[None]

    def covers(self, key: bytes) -> bool:
        return in_range(key, self.key, self.range_end)


def in_range(key: bytes, start: bytes, end: bytes | None) -> bool:
    if end is None:
        return key == start
    return key >= start and (end == b"\0" or key < end)


class MemoryStore:
    """The shared in-memory etcd that several `MemoryDCS` clients talk to."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.revision = 1
        self.compacted = 0
        self._kvs: dict[bytes, KeyValue] = {}
        self._leases: dict[int, _Lease] = {}
        self._lease_ids = itertools.count(0x694D0000_00000001)
        self._history: list[WatchEvent] = []
        self._watchers: list[_Watcher] = []
        self._partitioned: set[str] = set()
        self._healed: dict[str, asyncio.Event] = {}
        self._latency: dict[str, float] = {}

    # -- fault injection ---------------------------------------------------------------------

    def partition(self, client: str) -> None:
        """Cut `client` off: its calls raise DCSUnavailable and its watch breaks."""
        self._partitioned.add(client)
        for watcher in [w for w in self._watchers if w.client == client]:
            self._drop(watcher, DCSUnavailable(f"{client} is partitioned from the memory store"))
        log.info("memory store: %s partitioned", client)

    def set_latency(self, client: str, seconds: float) -> None:
        """Every call of `client` takes `seconds` before it reaches the store (inf: hangs
        until the latency is set back, or the client healed)."""
        if seconds:
            self._latency[client] = seconds
        else:
            self._latency.pop(client, None)

    async def delay(self, client: str) -> None:
        """Wait out the latency set for `client` (in the caller's time)."""
        # Polled, not an Event: the store is shared by clients on different event loops.
        while (seconds := self._latency.get(client, 0.0)) == float("inf"):  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        if seconds:
            await asyncio.sleep(seconds)

    def heal(self, client: str) -> None:
        self._latency.pop(client, None)
        self._partitioned.discard(client)
        healed = self._healed.pop(client, None)
        if healed is not None:
            healed.set()
        log.info("memory store: %s healed", client)

    async def wait_reachable(self, client: str) -> None:
        """Return once `client` is not (or no longer) partitioned."""
        while client in self._partitioned:
            await self._healed.setdefault(client, asyncio.Event()).wait()

    def check(self, client: str) -> None:
        """Run the lease timer, then refuse a partitioned client."""
        self.expire()
        if client in self._partitioned:
            raise DCSUnavailable(f"memory store unreachable from {client} (partitioned)")

    # -- leases ------------------------------------------------------------------------------

    def grant(self, ttl: int) -> int:
        lease_id = next(self._lease_ids)
        self._leases[lease_id] = _Lease(ttl, self.clock() + ttl)
        return lease_id

    def keepalive(self, lease_id: int) -> int:
        self.expire()
        lease = self._leases.get(lease_id)
        if lease is None:
            return 0
        lease.expires_at = self.clock() + lease.ttl
        return lease.ttl

    def revoke(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id, None)
        if lease is not None and lease.keys:
            self._commit([Delete(k) for k in sorted(lease.keys)])

    def expire(self) -> int:
        """Revoke every lease whose time is up (one revision each); returns how many."""
        now = self.clock()
        expired = sorted(i for i, lease in self._leases.items() if lease.expires_at <= now)
        for lease_id in expired:
            self.revoke(lease_id)
        return len(expired)

    def lease_ttl(self, lease_id: int) -> float:
        """Seconds left on a lease (0 when gone), like `etcdctl lease timetolive`."""
        lease = self._leases.get(lease_id)
        return max(0.0, lease.expires_at - self.clock()) if lease else 0.0

    # -- KV ----------------------------------------------------------------------------------

    def get(self, key: bytes) -> KeyValue | None:
        return self._kvs.get(key)

    def range(self, key: bytes, range_end: bytes | None) -> tuple[KeyValue, ...]:
        return tuple(kv for k, kv in sorted(self._kvs.items()) if in_range(k, key, range_end))

    def dump(self, prefix: bytes = b"") -> dict[bytes, bytes]:
        """Every key starting with `prefix` and its value (what `etcdctl get --prefix` shows)."""
        return {k: kv.value for k, kv in sorted(self._kvs.items()) if k.startswith(prefix)}

    def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]
    ) -> TxnResult:
        succeeded = all(c.holds(self._kvs.get(c.key)) for c in compare)
        ops = success if succeeded else failure
        for op in ops:
            if isinstance(op, Put) and op.lease and op.lease not in self._leases:
                raise LeaseNotFound(f"etcdserver: requested lease not found ({op.lease:x})")
        wrote, ranges = self._commit(ops)
        return TxnResult(succeeded, self.revision, ranges, wrote)

    def _commit(self, ops: Sequence[Op]) -> tuple[bool, tuple[tuple[KeyValue, ...], ...]]:
        """Apply `ops` in order at one new revision and notify the watchers.

        Returns whether anything changed, and what each Get saw."""
        revision = self.revision + 1
        events: list[WatchEvent] = []
        ranges: list[tuple[KeyValue, ...]] = []
        for op in ops:
            if isinstance(op, Get):
                ranges.append(self.range(op.key, op.range_end))
            elif isinstance(op, Put):
                old = self._kvs.get(op.key)
                self._unlease(old)
                kv = KeyValue(
                    op.key,
                    op.value,
                    old.create_revision if old else revision,
                    revision,
                    old.version + 1 if old else 1,
                    op.lease,
                )
                self._kvs[op.key] = kv
                if op.lease:
                    self._leases[op.lease].keys.add(op.key)
                events.append(WatchEvent("put", kv))
            else:
                for key in [k for k in self._kvs if in_range(k, op.key, op.range_end)]:
                    old = self._kvs.pop(key)
                    self._unlease(old)
                    gone = KeyValue(key, b"", 0, revision, 0, 0)
                    events.append(WatchEvent("delete", gone))
        if not events:
            return False, tuple(ranges)
        self.revision = revision
        self._history.extend(events)
        for watcher in list(self._watchers):
            mine = tuple(e for e in events if watcher.covers(e.kv.key))
            if mine:
                try:
                    watcher.on_batch(WatchBatch(revision, mine))
                except Exception as e:  # a broken watcher must not fail the writer
                    log.exception("memory store: watch callback of %s failed", watcher.client)
                    self._drop(watcher, e)
        return True, tuple(ranges)

    def _unlease(self, kv: KeyValue | None) -> None:
        if kv is not None and kv.lease in self._leases:
            self._leases[kv.lease].keys.discard(kv.key)

    def compact(self, revision: int | None = None) -> None:
        """Forget history up to `revision` (default: now); older watches get WatchCompacted."""
        self.compacted = self.revision if revision is None else revision
        self._history = [e for e in self._history if e.kv.mod_revision > self.compacted]

    # -- watch -------------------------------------------------------------------------------

    def watch(
        self,
        client: str,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        on_batch: Callable[[WatchBatch], None],
    ) -> asyncio.Future[None]:
        """Register a watch; replays history from `start_revision` first.

        The returned future fails when the watch breaks (partition, compaction)."""
        self.check(client)
        if start_revision <= self.compacted:
            raise WatchCompacted(
                f"required revision {start_revision} has been compacted ({self.compacted})",
                self.compacted,
            )
        watcher = _Watcher(
            client, key, range_end, on_batch, asyncio.get_running_loop().create_future()
        )
        past = [
            e
            for e in self._history
            if e.kv.mod_revision >= start_revision and watcher.covers(e.kv.key)
        ]
        for revision, group in itertools.groupby(past, key=lambda e: e.kv.mod_revision):
            on_batch(WatchBatch(revision, tuple(group)))
        self._watchers.append(watcher)
        return watcher.done

    def unwatch(self, done: asyncio.Future[None]) -> None:
        self._watchers = [w for w in self._watchers if w.done is not done]

    def break_watches(self, client: str | None = None) -> None:
        """Fail the watches of `client` (all when None), as a dropped stream would."""
        for watcher in [w for w in self._watchers if client in (None, w.client)]:
            self._drop(watcher, DCSUnavailable("watch stream broken by the test"))

    def _drop(self, watcher: _Watcher, error: Exception) -> None:
        self._watchers.remove(watcher)
        if not watcher.done.done():
            watcher.done.set_exception(error)


class MemoryKV:
    """One client's `KVBackend` on a `MemoryStore`."""

    def __init__(self, store: MemoryStore, client: str) -> None:
        self._store = store
        self._client = client
        self._last_contact: float | None = None

    @property
    def endpoint(self) -> str:
        return "memory"

    @property
    def last_contact(self) -> float | None:
        return self._last_contact

    async def _enter(self) -> None:
        await asyncio.sleep(0)  # let concurrent callers interleave, as on a network
        await self._store.delay(self._client)
        self._store.check(self._client)
        self._last_contact = self._store.clock()

    async def connect(self, budget: float) -> None:
        await self._enter()

    async def close(self) -> None:
        return None

    async def pause_before_retry(self, failures: int) -> None:
        # No real-time backoff: a simulation on a manual clock must see a heal at once.
        await asyncio.sleep(0 if failures < 3 else 0.01)
        await self._store.wait_reachable(self._client)

    async def range(
        self, key: bytes, range_end: bytes | None, *, budget: float
    ) -> tuple[int, tuple[KeyValue, ...]]:
        await self._enter()
        return self._store.revision, self._store.range(key, range_end)

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op] = (),
        *,
        budget: float,
    ) -> TxnResult:
        await self._enter()
        return self._store.txn(compare, success, failure)

    async def grant(self, ttl: int, *, budget: float) -> int:
        await self._enter()
        return self._store.grant(ttl)

    async def keepalive(self, lease_id: int, *, budget: float) -> int:
        await self._enter()
        return self._store.keepalive(lease_id)

    async def revoke(self, lease_id: int, *, budget: float) -> None:
        await self._enter()
        self._store.revoke(lease_id)

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
        await self._enter()
        done = self._store.watch(self._client, key, range_end, start_revision, on_batch)
        if on_created is not None:
            on_created()
        try:
            await done
        finally:
            self._store.unwatch(done)


class MemoryDCS(KVDCS):
    """The DCS of member `name` on a shared `MemoryStore`."""

    def __init__(
        self,
        store: MemoryStore,
        name: str,
        *,
        prefix: str = "/service/batman/",
        ttl: int = 30,
        retry_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            MemoryKV(store, name), name=name, prefix=prefix, ttl=ttl, retry_timeout=retry_timeout
        )
        self.store = store

    @classmethod
    def from_settings(
        cls, store: MemoryStore, settings: Settings, dynamic: DynamicConfig | None = None
    ) -> MemoryDCS:
        dynamic = dynamic or settings.bootstrap.dcs
        return cls(
            store,
            settings.name,
            prefix=settings.dcs_prefix,
            ttl=dynamic.ttl,
            retry_timeout=dynamic.retry_timeout,
        )
