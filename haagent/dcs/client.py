"""The `DCS` protocol on any `KVBackend`: Patroni's keys, one lease, atomic leader ops.

`EtcdDCS` and `MemoryDCS` are this class on two backends, so both follow the
same rules.  One lease carries the leader key and the member key.  Each public
call gets one `retry_timeout` budget shared by the etcd calls it makes; a
successful write waits (briefly) until the watch has brought the view up to
the write's revision, so the caller reads its own writes from `view()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from haagent.dcs import codec, events
from haagent.dcs.errors import DCSError, LeaderKeyLost, LeaseNotFound
from haagent.dcs.events import ClusterEvent, EventsRead
from haagent.dcs.kv import Compare, Delete, Get, KeyValue, KVBackend, Put, TxnResult
from haagent.dcs.kv import prefix_range_end as range_end_of
from haagent.dcs.lease import Budget, Lease
from haagent.dcs.model import ClusterView, HistoryEntry
from haagent.dcs.view import ViewState, read_cluster
from haagent.dcs.watching import WatchLoop

log = logging.getLogger("haagent.dcs")

# How long a write waits for the watch to deliver it before falling back to a full read.
SETTLE_TIMEOUT = 1.0


class KVDCS:
    """A member's connection to the DCS: its lease, its view, and the writes it makes."""

    def __init__(
        self,
        backend: KVBackend,
        *,
        name: str,
        prefix: str,
        ttl: int = 30,
        retry_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.prefix = prefix
        self.changed = asyncio.Event()
        self._backend = backend
        self._retry_timeout = float(retry_timeout)
        self._lease = Lease(backend, ttl)
        self._prefix = prefix.encode("utf-8")
        self._state = ViewState(self._prefix, self.changed.set)
        self._watch = WatchLoop(
            backend,
            self._state,
            self._prefix,
            retry_timeout=lambda: self._retry_timeout,
            name=name,
        )

    # -- lifecycle and view --------------------------------------------------------------

    async def open(self) -> None:
        budget = self._budget("open")
        try:
            await self._backend.connect(budget.left())
            await self._lease.ensure(budget)
            revision, kvs = await read_cluster(self._backend, self._prefix, budget=budget.left())
            self._state.replace(revision, kvs, force=True)
            self._watch.start()
            await self._watch.wait_live(budget.left())
        except BaseException:
            await self._watch.stop()
            await self._backend.close()
            raise
        log.info(
            "DCS open: %s as %s via %s, lease %x ttl %ds, revision %d",
            self.prefix, self.name, self._backend.endpoint, self._lease.id or 0, self._lease.ttl,
            self._state.revision,
        )  # fmt: skip

    async def close(self) -> None:
        await self._watch.stop()
        await self._backend.close()
        log.info("DCS closed: %s as %s (the lease is left to expire)", self.prefix, self.name)

    def view(self) -> ClusterView:
        return self._state.view

    async def next_view(self) -> ClusterView:
        return await self._state.next_view()

    @property
    def last_contact(self) -> float | None:
        return self._backend.last_contact

    @property
    def lease_id(self) -> int | None:
        return self._lease.id

    @property
    def lease_ttl(self) -> int:
        return self._lease.granted_ttl

    @property
    def watch_live(self) -> bool:
        """True while a watch stream is delivering events into the view."""
        return self._watch.live

    async def refresh(self) -> ClusterView:
        budget = self._budget("refresh")
        revision, kvs = await read_cluster(self._backend, self._prefix, budget=budget.left())
        self._state.replace(revision, kvs)
        return self._state.view

    def set_ttl(self, ttl: int) -> None:
        if ttl != self._lease.ttl:
            log.info("lease ttl %ds -> %ds (applied at the next renewal)", self._lease.ttl, ttl)
        self._lease.ttl = int(ttl)

    def set_retry_timeout(self, seconds: float) -> None:
        self._retry_timeout = float(seconds)

    def raw(self) -> dict[str, KeyValue]:
        """The raw key-values of the view, keyed relative to the prefix (for tests and tools)."""
        return self._state.raw()

    # -- helpers ---------------------------------------------------------------------------

    def _budget(self, what: str) -> Budget:
        return Budget(self._retry_timeout, what, lambda: self._backend.endpoint)

    def _key(self, name: str) -> bytes:
        return self._prefix + name.encode("utf-8")

    async def _txn(
        self, budget: Budget, compare: Sequence[Compare], success: Sequence[Put | Delete | Get],
        failure: Sequence[Get] = (),
    ) -> TxnResult:  # fmt: skip
        return await self._backend.txn(compare, success, failure, budget=budget.left())

    async def _settle(self, result: TxnResult, budget: Budget) -> None:
        """Let the view catch up with our own write: the watch first, a full read as a fallback.

        Bounded by what is left of the call's budget; never fails the call.
        """
        if not result.wrote or self._state.revision >= result.revision:
            return
        try:
            if await self._state.wait_for_revision(
                result.revision, min(SETTLE_TIMEOUT, budget.left())
            ):
                return
            revision, kvs = await read_cluster(self._backend, self._prefix, budget=budget.left())
            self._state.replace(revision, kvs)
        except DCSError as e:
            log.debug("view not brought up to revision %d: %s", result.revision, e)

    async def _put(self, budget: Budget, key: str, value: bytes) -> None:
        result = await self._txn(budget, [], [Put(self._key(key), value)])
        await self._settle(result, budget)

    async def _cas_put(self, key: str, value: bytes, expected_revision: int | None) -> bool:
        budget = self._budget(f"write {key}")
        full = self._key(key)
        compare: list[Compare] = []
        if expected_revision == 0:
            compare.append(Compare(full, "create", 0))
        elif expected_revision is not None:
            compare.append(Compare(full, "mod", expected_revision))
        result = await self._txn(budget, compare, [Put(full, value)])
        if not result.succeeded:
            log.info("%s not written: it changed since revision %s", key, expected_revision)
        await self._settle(result, budget)
        return result.succeeded

    def _unchanged(self, key: str, value: bytes, lease: int = 0) -> bool:
        """True when the live view shows `key` with exactly these bytes (and this lease)."""
        current = self._state.get(key)
        return (
            self._watch.live
            and current is not None
            and current.value == value
            and current.lease == lease
        )

    # -- the leader key --------------------------------------------------------------------

    async def take_leader(self) -> bool:
        budget = self._budget("take the leader key")
        key = self._key(codec.LEADER)
        value = codec.encode_leader(self.name)

        async def attempt(lease: int) -> TxnResult:
            return await self._txn(
                budget, [Compare(key, "create", 0)], [Put(key, value, lease)], [Get(key)]
            )

        # Refresh the lease first, so that a key we take lives at least `ttl` from now.
        await self._lease.refresh(budget)
        result = await self._lease.write(budget, attempt)
        if result.succeeded:
            log.info("took the leader key %s (lease %x)", key.decode(), self._lease.id or 0)
            await self._settle(result, budget)
            return True
        current = result.ranges[0][0] if result.ranges and result.ranges[0] else None
        if current is None or current.value != value:
            return False
        # Ours already (a retry after a lost answer, or a restart): make sure it is on our lease.
        lease = await self._lease.ensure(budget)
        return current.lease == lease or await self._move_leader(budget, current, lease)

    async def _move_leader(self, budget: Budget, current: KeyValue, lease: int) -> bool:
        """Re-put our leader key under `lease`, only if it is still exactly `current`."""
        result = await self._txn(
            budget,
            [Compare(current.key, "value", current.value),
             Compare(current.key, "mod", current.mod_revision)],
            [Put(current.key, current.value, lease)],
        )  # fmt: skip
        if result.succeeded:
            log.info("leader key moved from lease %x to lease %x", current.lease, lease)
            await self._settle(result, budget)
        return result.succeeded

    async def renew_leader(self) -> None:
        budget = self._budget("renew the leader key")
        key = self._key(codec.LEADER)
        value = codec.encode_leader(self.name)
        await self._lease.refresh(budget)
        lease = await self._lease.ensure(budget)
        result = await self._txn(
            budget,
            [Compare(key, "value", value), Compare(key, "lease", lease)],
            [],
            [Get(key)],
        )
        if result.succeeded:
            return
        current = result.ranges[0][0] if result.ranges and result.ranges[0] else None
        if current is None:
            raise LeaderKeyLost(
                f"the leader key {key.decode()} is gone (its lease expired or it was deleted); "
                f"{self.name} no longer holds it"
            )
        if current.value != value:
            raise LeaderKeyLost(
                f"the leader key {key.decode()} is held by "
                f"{current.value.decode(errors='replace')}, not {self.name}"
            )
        try:
            moved = await self._move_leader(budget, current, lease)
        except LeaseNotFound:
            self._lease.lost(lease)
            moved = False
        if not moved:
            raise LeaderKeyLost(f"the leader key {key.decode()} changed while being renewed")

    async def release_leader(self) -> bool:
        budget = self._budget("release the leader key")
        key = self._key(codec.LEADER)
        result = await self._txn(
            budget, [Compare(key, "value", codec.encode_leader(self.name))], [Delete(key)],
            [Get(key)],
        )  # fmt: skip
        if result.succeeded:
            log.info("released the leader key %s", key.decode())
            await self._settle(result, budget)
            return True
        current = result.ranges[0][0] if result.ranges and result.ranges[0] else None
        if current is None:
            return True
        log.warning(
            "not releasing the leader key: it is held by %s", current.value.decode(errors="replace")
        )
        return False

    async def keepalive(self) -> None:
        budget = self._budget("keep the lease alive")
        if not await self._lease.refresh(budget):
            await self._lease.ensure(budget)

    # -- members, initialize ---------------------------------------------------------------

    async def touch_member(self, data: Mapping[str, Any]) -> None:
        budget = self._budget("write the member key")
        member_key = codec.MEMBERS + self.name
        value = codec.encode_member(data)
        lease = self._lease.id
        if lease is not None and self._lease.current and self._unchanged(member_key, value, lease):
            return
        key = self._key(member_key)

        async def put(lease: int) -> TxnResult:
            return await self._txn(budget, [], [Put(key, value, lease)])

        await self._settle(await self._lease.write(budget, put), budget)

    async def delete_member(self, name: str | None = None) -> None:
        budget = self._budget("delete a member key")
        key = self._key(codec.MEMBERS + (name or self.name))
        result = await self._txn(budget, [], [Delete(key)])
        await self._settle(result, budget)

    async def race_initialize(self, value: str = "") -> bool:
        won = await self._cas_put(codec.INITIALIZE, codec.encode_initialize(value), 0)
        if won:
            log.info("won the initialize race (%r)", value)
        return won

    async def set_initialize(self, sysid: str) -> None:
        await self._put(self._budget("write initialize"), codec.INITIALIZE,
                        codec.encode_initialize(sysid))  # fmt: skip

    async def cancel_initialize(self) -> None:
        budget = self._budget("delete initialize")
        result = await self._txn(budget, [], [Delete(self._key(codec.INITIALIZE))])
        log.info("initialize key deleted")
        await self._settle(result, budget)

    # -- cluster-wide values -----------------------------------------------------------------

    async def write_config(
        self, config: Mapping[str, Any], *, expected_revision: int | None
    ) -> bool:
        return await self._cas_put(codec.CONFIG, codec.encode_config(config), expected_revision)

    async def write_sync(
        self,
        leader: str | None,
        sync_standby: Sequence[str],
        *,
        quorum: int = 0,
        expected_revision: int | None,
    ) -> bool:
        value = codec.encode_sync(leader, sync_standby, quorum)
        return await self._cas_put(codec.SYNC, value, expected_revision)

    async def write_history(self, history: Sequence[HistoryEntry]) -> None:
        await self._put(self._budget("write history"), codec.HISTORY, codec.encode_history(history))

    async def write_status(
        self,
        optime: int,
        slots: Mapping[str, int],
        retain_slots: Sequence[str] = (),
        timeline: int | None = None,
        lost_slots: Sequence[str] = (),
    ) -> None:
        value = codec.encode_status(optime, slots, retain_slots, timeline, lost_slots)
        if not self._unchanged(codec.STATUS, value):
            await self._put(self._budget("write status"), codec.STATUS, value)

    async def write_failover(
        self,
        *,
        leader: str | None,
        candidate: str | None,
        scheduled_at: datetime | None,
        expected_revision: int | None = None,
    ) -> bool:
        value = codec.encode_failover(leader, candidate, scheduled_at)
        return await self._cas_put(codec.FAILOVER, value, expected_revision)

    async def clear_failover(self, *, expected_revision: int | None = None) -> bool:
        return await self._cas_put(codec.FAILOVER, codec.CLEARED_FAILOVER, expected_revision)

    async def write_failsafe(self, members: Mapping[str, str]) -> None:
        value = codec.encode_failsafe(members)
        if not self._unchanged(codec.FAILSAFE, value):
            await self._put(self._budget("write failsafe"), codec.FAILSAFE, value)

    async def delete_cluster(self) -> None:
        budget = self._budget("delete the cluster")
        result = await self._txn(budget, [], [Delete(self._prefix, range_end_of(self._prefix))])
        log.warning("deleted every key under %s", self.prefix)
        await self._settle(result, budget)

    # -- event history (never part of the view) --------------------------------------------

    async def write_event(self, event: ClusterEvent) -> None:
        await events.write_event(
            self._backend, self._prefix, event, budget=self._budget("write an event").left()
        )

    async def read_events(
        self, *, member: str | None = None, since: float | None = None
    ) -> EventsRead:
        return await events.read_events(
            self._backend, self._prefix, member=member, since=since,
            budget=self._budget("read the event history").left(),
        )  # fmt: skip
