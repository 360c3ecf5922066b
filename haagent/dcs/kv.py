"""The small slice of the etcd v3 KV/Lease/Watch API the DCS layer is built on.

`KVBackend` is what both the real etcd (`haagent.dcs.etcd`) and the in-memory
store (`haagent.dcs.memory`) offer; `haagent.dcs.client.KVDCS` implements the
whole `DCS` protocol on top of it, so the two share every rule about keys,
leases and compare-and-swap.  Values here are plain frozen dataclasses: no
protobuf or gRPC object crosses this boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

CompareTarget = Literal["value", "create", "mod", "version", "lease"]
CompareOp = Literal["==", "!="]
EventKind = Literal["put", "delete"]


def prefix_range_end(prefix: bytes) -> bytes:
    """The `range_end` that makes a range or watch cover every key starting with `prefix`."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int = 1
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Compare:
    """One txn condition, as etcd evaluates it (an absent key has create/mod/version 0)."""

    key: bytes
    target: CompareTarget
    value: bytes | int
    op: CompareOp = "=="

    def holds(self, kv: KeyValue | None) -> bool:
        """etcd's evaluation of this condition against the key's current state."""
        if kv is None and self.target == "value":
            # etcd: a value comparison on an absent key always fails; the others compare to 0.
            return False
        actual: bytes | int
        if self.target == "value":
            actual = kv.value if kv else b""
        elif self.target == "create":
            actual = kv.create_revision if kv else 0
        elif self.target == "mod":
            actual = kv.mod_revision if kv else 0
        elif self.target == "version":
            actual = kv.version if kv else 0
        else:
            actual = kv.lease if kv else 0
        equal = actual == self.value
        return equal if self.op == "==" else not equal


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes
    range_end: bytes | None = None


@dataclass(frozen=True, slots=True)
class Get:
    key: bytes
    range_end: bytes | None = None


Op = Put | Delete | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    # The store revision after the txn (the txn's own revision when it wrote).
    revision: int
    # One tuple per Get in the branch that ran, in order.
    ranges: tuple[tuple[KeyValue, ...], ...] = ()
    # True when the branch that ran changed a key (a put, or a delete that removed something).
    wrote: bool = False


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: EventKind
    kv: KeyValue  # for a delete: the key and the deletion's revision as mod_revision


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Events of whole revisions, in order; `revision` is the newest one they reach."""

    revision: int
    events: tuple[WatchEvent, ...]


class KVBackend(Protocol):
    """etcd's KV, Lease and Watch services, each call bounded by `budget` seconds.

    Calls raise `DCSUnavailable` when no endpoint answered in time,
    `AuthenticationFailed` when credentials are refused, `LeaseNotFound` when a
    write names a lease etcd does not know, and `WatchCompacted` from `watch`.
    """

    @property
    def endpoint(self) -> str:
        """The endpoint currently in use, for messages."""
        ...

    @property
    def last_contact(self) -> float | None:
        """`time.monotonic()` of the last successful exchange."""
        ...

    async def connect(self, budget: float) -> None: ...

    async def pause_before_retry(self, failures: int) -> None:
        """Wait before the watch retries after `failures` failures in a row (a backoff)."""
        ...

    async def close(self) -> None: ...

    async def range(
        self, key: bytes, range_end: bytes | None, *, budget: float
    ) -> tuple[int, tuple[KeyValue, ...]]:
        """A linearizable read: (store revision, key-values sorted by key)."""
        ...

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op],
        failure: Sequence[Op] = (),
        *,
        budget: float,
    ) -> TxnResult: ...

    async def grant(self, ttl: int, *, budget: float) -> int:
        """A new lease of `ttl` seconds; returns its id."""
        ...

    async def keepalive(self, lease_id: int, *, budget: float) -> int:
        """Refresh the lease; returns its TTL, 0 when etcd no longer knows it."""
        ...

    async def revoke(self, lease_id: int, *, budget: float) -> None: ...

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
        """Stream events from `start_revision` into `on_batch` until the stream breaks.

        Creating the watch is bounded by `budget`; afterwards it runs until it
        raises (`DCSUnavailable`, `WatchCompacted`) or is cancelled.
        """
        ...
