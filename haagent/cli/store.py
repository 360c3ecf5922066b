"""`haactl`'s reads and writes of the cluster's etcd keys.

One linearizable range read of the prefix per look (as `patronictl list` does), no lease,
no watch: the CLI works while any member's agent or REST API is down.  Every call is
bounded by the connection's `retry_timeout` (or `--timeout`); when etcd does not answer
in that time the command ends with exit status 1 and a message naming the hosts and
where they were configured.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from haagent.cli.context import Connection, Ctl
from haagent.cli.errors import ActionFailed
from haagent.dcs import codec
from haagent.dcs.errors import AuthenticationFailed, DCSError, DCSUnavailable
from haagent.dcs.events import EventsRead, read_events
from haagent.dcs.kv import Compare, Delete, KeyValue, KVBackend, Put, prefix_range_end
from haagent.dcs.model import ClusterView
from haagent.dcs.view import read_cluster

T = TypeVar("T")

_LAST_ERROR = re.compile(r"\(last error: (.*)\); check")


@dataclass(frozen=True)
class Snapshot:
    """Every key of one cluster at one etcd revision: raw (relative keys) and decoded."""

    scope: str
    revision: int
    raw: Mapping[str, KeyValue]
    view: ClusterView

    def json_value(self, key: str) -> Any:
        """The JSON value of `key` as stored (None when absent or not JSON)."""
        kv = self.raw.get(key)
        if kv is None:
            return None
        try:
            return json.loads(kv.value.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return None

    def revision_of(self, key: str) -> int:
        """The key's mod_revision; 0 when it is absent (a CAS "create only")."""
        kv = self.raw.get(key)
        return kv.mod_revision if kv is not None else 0

    @property
    def exists(self) -> bool:
        return bool(self.raw)


class Store:
    """The keys under `/<namespace>/<scope>/`, read and written from the CLI."""

    def __init__(self, backend: KVBackend, conn: Connection, scope: str) -> None:
        self.backend = backend
        self.conn = conn
        self.scope = scope
        self.prefix = conn.prefix(scope)
        self._prefix = self.prefix.encode("utf-8")
        self.budget = conn.retry_timeout

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self.backend.close()
        except Exception:  # closing must never hide the real outcome
            return

    def unreachable(self, detail: str) -> ActionFailed:
        return ActionFailed(
            f"etcd at {self.conn.etcd_hosts} cannot be reached: {detail} "
            f"(check {self.conn.source} or that etcd runs)"
        )

    async def _call(self, what: str, call: Callable[[float], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.budget + 1.0):
                return await call(self.budget)
        except TimeoutError:
            raise self.unreachable(f"no answer within {self.budget:g}s") from None
        except DCSUnavailable as e:
            match = _LAST_ERROR.search(str(e))
            detail = f"no answer within {self.budget:g}s"
            if match:
                detail += f" (last error: {match.group(1)})"
            raise self.unreachable(detail) from None
        except AuthenticationFailed as e:
            raise ActionFailed(f"etcd refused to {what}: {e}") from None
        except DCSError as e:
            raise ActionFailed(f"etcd could not {what}: {e}") from None

    async def read(self) -> Snapshot:
        """One linearizable read of every key of the cluster."""

        async def call(budget: float) -> tuple[int, tuple[KeyValue, ...]]:
            return await read_cluster(self.backend, self._prefix, budget=budget)

        revision, kvs = await self._call("read the cluster keys", call)
        raw = {kv.key[len(self._prefix) :].decode("utf-8", errors="replace"): kv for kv in kvs}
        view = codec.decode_view(raw, revision=revision, prefix=self.prefix)
        return Snapshot(self.scope, revision, raw, view)

    async def events(self, *, member: str | None, since: float | None) -> EventsRead:
        """The event history (`haactl events`), merged across members in time order."""

        async def call(budget: float) -> EventsRead:
            return await read_events(
                self.backend, self._prefix, budget=budget, member=member, since=since
            )

        return await self._call("read the event history", call)

    async def put_if(self, key: str, value: bytes, revision: int) -> bool:
        """Write `key` only if its mod_revision is still `revision` (0: only if absent)."""
        full = self._prefix + key.encode("utf-8")
        compare = Compare(full, "create", 0) if revision == 0 else Compare(full, "mod", revision)

        async def call(budget: float) -> bool:
            result = await self.backend.txn([compare], [Put(full, value)], budget=budget)
            return result.succeeded

        return await self._call(f"write {self.prefix}{key}", call)

    async def delete_cluster(self) -> None:
        """Delete every key under the prefix (`haactl remove`)."""

        async def call(budget: float) -> None:
            end = prefix_range_end(self._prefix)
            await self.backend.txn([], [Delete(self._prefix, end)], budget=budget)

        await self._call(f"delete {self.prefix}", call)

    async def wait_for(
        self, done: Callable[[Snapshot], bool], timeout: float, interval: float = 0.5
    ) -> Snapshot | None:
        """Re-read until `done(snapshot)`; None when `timeout` seconds passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            snapshot = await self.read()
            if done(snapshot):
                return snapshot
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))


def cluster_missing(scope: str, conn: Connection) -> ActionFailed:
    return ActionFailed(
        f"cluster {scope!r} has no keys under {conn.prefix(scope)} in etcd at {conn.etcd_hosts}; "
        "check the cluster name (scope) and namespace"
    )


def open_store(ctl: Ctl, scope: str) -> Store:
    """The store of cluster `scope`, on the etcd the options name; use with `async with`."""
    conn = ctl.connection
    return Store(ctl.backend_factory(conn), conn, scope)
