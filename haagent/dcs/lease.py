"""A member's one lease (it carries the leader key and the member key), and call budgets.

The lease is granted with the current `ttl`; after a TTL change the next
renewal grants a new one (the keys move to it, the old one is left to expire).
When etcd says a lease is gone, the next write grants a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from haagent.dcs.errors import DCSUnavailable, LeaseNotFound
from haagent.dcs.kv import KVBackend, TxnResult

log = logging.getLogger("haagent.dcs")


class Budget:
    """The `retry_timeout` of one public call, shared by the backend calls it makes."""

    def __init__(self, seconds: float, what: str, endpoint: Callable[[], str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._seconds = seconds
        self._deadline = self._loop.time() + seconds
        self._what = what
        self._endpoint = endpoint

    def left(self) -> float:
        """Seconds left; raises `DCSUnavailable` when the budget is spent."""
        remaining = self._deadline - self._loop.time()
        if remaining <= 0:
            raise DCSUnavailable(
                f"{self._what}: etcd at {self._endpoint()} did not answer within "
                f"retry_timeout={self._seconds:g}s; check that etcd is running and reachable"
            )
        return remaining


class Lease:
    def __init__(self, backend: KVBackend, ttl: int) -> None:
        self._backend = backend
        self.ttl = ttl
        self.id: int | None = None
        self._granted_ttl = 0
        self._lock = asyncio.Lock()

    @property
    def granted_ttl(self) -> int:
        """The ttl of the lease we hold (the configured one until the first grant)."""
        return self._granted_ttl or self.ttl

    @property
    def current(self) -> bool:
        """True when we hold a lease granted with the current TTL."""
        return self.id is not None and self._granted_ttl == self.ttl

    async def ensure(self, budget: Budget) -> int:
        """Our lease id, granting a new lease when there is none or the TTL changed."""
        async with self._lock:
            if self.id is None or self._granted_ttl != self.ttl:
                old = self.id
                self.id = await self._backend.grant(self.ttl, budget=budget.left())
                self._granted_ttl = self.ttl
                log.info(
                    "granted lease %x (ttl %ds)%s", self.id, self.ttl,
                    f", replacing lease {old:x}" if old is not None else "",
                )  # fmt: skip
            return self.id

    def lost(self, lease: int) -> None:
        """etcd no longer knows `lease`: grant a new one next time."""
        if self.id == lease:
            log.warning("lease %x is gone in etcd (expired or revoked)", lease)
            self.id = None

    async def refresh(self, budget: Budget) -> bool:
        """Keep the current lease alive; False when there is none (or it has an old TTL)."""
        lease = self.id
        if lease is None or not self.current:
            return False
        if await self._backend.keepalive(lease, budget=budget.left()) > 0:
            return True
        self.lost(lease)
        return False

    async def write(
        self, budget: Budget, write: Callable[[int], Awaitable[TxnResult]]
    ) -> TxnResult:
        """Run a write that names our lease; if etcd lost the lease, grant one and retry once."""
        lease = await self.ensure(budget)
        try:
            return await write(lease)
        except LeaseNotFound:
            self.lost(lease)
            return await write(await self.ensure(budget))
