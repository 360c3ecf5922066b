"""The watch-fed cluster view: every key under the prefix at one revision.

`ViewState` holds the raw key-values, applies watch batches and full reads,
and republishes a frozen `ClusterView` after each change.  Events at or below
the state's revision are skipped, so a full read racing the watch can never
move the view backwards, and every published view is the state of one etcd
revision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from haagent.dcs import codec
from haagent.dcs.kv import Get, KeyValue, KVBackend, WatchBatch, prefix_range_end
from haagent.dcs.model import ClusterView

# Keys whose change wakes the HA loop at once.
WAKE_KEYS = frozenset({codec.LEADER, codec.FAILOVER})


async def read_cluster(
    backend: KVBackend, prefix: bytes, *, budget: float
) -> tuple[int, tuple[KeyValue, ...]]:
    """Every key of the cluster at one revision, without the event history (up to a
    thousand keys per member that no decision reads): one read-only txn of two ranges."""
    hole = prefix + codec.EVENTS.encode("utf-8")
    result = await backend.txn(
        [],
        [Get(prefix, hole), Get(prefix_range_end(hole), prefix_range_end(prefix))],
        budget=budget,
    )
    return result.revision, tuple(kv for kvs in result.ranges for kv in kvs)


class ViewState:
    def __init__(self, prefix: bytes, on_wake: Callable[[], None]) -> None:
        self._prefix = prefix
        self._on_wake = on_wake
        self._kvs: dict[str, KeyValue] = {}
        self._cache: codec.DecodeCache = {}
        self.revision = 0
        self.view = ClusterView()
        self._updated = asyncio.Event()

    def relative(self, key: bytes) -> str | None:
        if not key.startswith(self._prefix):
            return None
        relative = key[len(self._prefix) :].decode("utf-8", errors="replace")
        return None if relative.startswith(codec.EVENTS) else relative

    def get(self, key: str) -> KeyValue | None:
        """The raw key-value of `key` (relative to the prefix) in the view."""
        return self._kvs.get(key)

    def raw(self) -> dict[str, KeyValue]:
        return dict(self._kvs)

    def replace(self, revision: int, kvs: Iterable[KeyValue], *, force: bool = False) -> bool:
        """Adopt a full read at `revision`; refused (False) when the view is already newer.

        `force` adopts it anyway (a re-sync with no watch running: etcd may
        have been rebuilt with lower revisions).
        """
        if revision < self.revision and not force:
            return False
        old = {k: self._kvs.get(k) for k in WAKE_KEYS}
        self._kvs = {}
        for kv in kvs:
            key = self.relative(kv.key)
            if key is not None:
                self._kvs[key] = kv
        self._cache = {k: v for k, v in self._cache.items() if k in self._kvs}
        self.revision = revision
        wake = force or any(old[k] != self._kvs.get(k) for k in WAKE_KEYS)
        self._publish(wake)
        return True

    def apply(self, batch: WatchBatch) -> None:
        """Apply the events of one watch response (whole revisions) and publish once."""
        wake = False
        changed = False
        for event in batch.events:
            if event.kv.mod_revision <= self.revision:
                continue
            key = self.relative(event.kv.key)
            if key is None:
                continue
            if event.kind == "put":
                self._kvs[key] = event.kv
            else:
                self._kvs.pop(key, None)
                self._cache.pop(key, None)
            changed = True
            wake = wake or key in WAKE_KEYS
        if batch.revision > self.revision:
            self.revision = batch.revision
            changed = True
        if changed:
            self._publish(wake)

    def _publish(self, wake: bool) -> None:
        self.view = codec.decode_view(
            self._kvs,
            revision=self.revision,
            cache=self._cache,
            prefix=self._prefix.decode("utf-8", errors="replace"),
        )
        self._updated.set()
        self._updated = asyncio.Event()
        if wake:
            self._on_wake()

    async def next_view(self) -> ClusterView:
        """Wait until the next view is published (a watch batch or a full read); that view."""
        await self._updated.wait()
        return self.view

    async def wait_for_revision(self, revision: int, budget: float) -> bool:
        """Wait until the view reaches `revision`; False after `budget` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        while self.revision < revision:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._updated.wait(), remaining)
            except TimeoutError:
                return False
        return True
