"""The leader key's lease: taken, renewed on schedule whatever the HA loop is doing, released.

A leader renews its key every `loop_wait` seconds (see `haagent.config.timing`).
The HA cycle asks for a renewal before it acts as the leader (`renew()`), and a
background task (`run()`) renews on schedule while the cycle is busy with
something long (a CHECKPOINT before a switchover, a slow reload, a slow etcd
write), so nothing the leader does can delay a renewal.  Every successful renewal
extends the fencing (watchdog keepalive, lease fence deadline); nothing else does.

A renewal that fails (etcd says the key is gone or someone else's, or does not
answer within retry_timeout) fires the fence at once and wakes the HA loop: the
primary stops accepting writes no later than `loop_wait + retry_timeout` after
its last good renewal, at least `retry_timeout` before the key can expire.  In
failsafe mode an etcd that does not answer is not the end: the keeper asks every
member listed in the `failsafe` key to confirm this primary (they then do not race
for ttl), and their confirmation extends the lease and the fence as a renewal
would; only when one of them does not confirm is the fence fired.

The background renewal stops when the HA loop shows no sign of life for longer
than any of its actions may take (`stuck_after`): a wedged agent lets its key
expire (and its fence fire) rather than hold the cluster hostage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from haagent.config.timing import Timings
from haagent.dcs.errors import DCSError, DCSUnavailable, LeaderKeyLost
from haagent.dcs.protocol import DCS
from haagent.engine.fencing import Fencing

log = logging.getLogger("haagent.engine")

# A renewal sent this recently counts as "renewed now" for the HA cycle.
FRESH = 1.0


class RenewFailed(Exception):
    """The leader key could not be renewed; `lost` when etcd said it is not ours."""

    def __init__(self, message: str, *, lost: bool) -> None:
        super().__init__(message)
        self.lost = lost


@dataclass(frozen=True)
class LeaseFacts:
    """What the keeper knows, for the HA snapshot."""

    expires: float | None  # the earliest moment our leader key can expire; None: no key
    failure: str | None  # why the last renewal failed; None after a success
    lost: bool  # etcd said the key is gone or someone else's
    failsafe_confirmed: bool = False  # etcd away, and every failsafe member confirmed us


class LeaseKeeper:
    def __init__(
        self,
        dcs: DCS,
        fencing: Fencing,
        *,
        timings: Callable[[], Timings],
        failsafe: Callable[[], bool],
        clock: Callable[[], float],
        wake: Callable[[], None],
        stuck_after: Callable[[], float],
        confirm_failsafe: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.dcs = dcs
        self.fencing = fencing
        self._timings = timings
        self._failsafe = failsafe
        self._clock = clock
        self._wake = wake
        self._stuck_after = stuck_after
        self._confirm_failsafe = confirm_failsafe
        self.failsafe_confirmed = False
        self.expires: float | None = None
        self.failure: str | None = None
        self.lost = False
        self._last_sent: float | None = None
        self._last_attempt: float | None = None
        self._keeping = False
        self._lock = asyncio.Lock()
        self._kick = asyncio.Event()
        self._alive_at = clock()
        self._stuck_logged = False

    # --- what the HA loop reads and tells

    def facts(self) -> LeaseFacts:
        return LeaseFacts(self.expires, self.failure, self.lost, self.failsafe_confirmed)

    def alive(self) -> None:
        """The HA loop made progress (a cycle or an action started)."""
        self._alive_at = self._clock()
        if self._stuck_logged:
            self._stuck_logged = False
            log.info("the HA loop is making progress again: renewing the leader key on schedule")
            self._kick.set()

    @property
    def keeping(self) -> bool:
        return self._keeping

    # --- the key

    async def take(self) -> bool:
        """Create the leader key under our lease; True if we hold it now."""
        async with self._lock:
            sent = self._clock()
            won = await self._bounded(self.dcs.take_leader(), "take the leader key")
            if won:
                self._renewed(sent)
                self._keeping = True
                self._kick.set()
            return won

    async def renew(self) -> None:
        """Make sure the key was renewed just now; raises RenewFailed when it cannot be."""
        async with self._lock:
            if self._fresh():
                return
            await self._renew()
        self._keeping = True
        self._kick.set()

    async def release(self) -> bool:
        """Stop renewing, then delete the key if it holds our name."""
        self._keeping = False
        async with self._lock:
            # Forgotten before asking: a delete that etcd applied but whose answer was lost
            # must not let a later renew() skip etcd as "fresh".
            self.expires = None
            self._last_sent = None
            return await self._bounded(self.dcs.release_leader(), "release the leader key")

    def stop(self) -> None:
        """Stop renewing (the key is left to expire: maintenance mode, shutdown in pause)."""
        self._keeping = False

    def confirmed_by_failsafe(self, asked: float) -> None:
        """Every member confirmed us (failsafe mode, etcd away): they will not race for ttl."""
        expires = asked + self._timings().ttl
        self.expires = max(self.expires or expires, expires)
        self.failsafe_confirmed = True
        self.fencing.extend(self.expires)

    async def _ask_members(self, why: str) -> None:
        """etcd did not answer in failsafe mode: ask the members, or fence."""
        asked = self._clock()
        confirmed = self._confirm_failsafe is not None and await self._confirm_failsafe()
        if confirmed:
            if not self.failsafe_confirmed:
                log.warning(
                    "leader key not renewed (%s); failsafe mode: every member confirmed this "
                    "primary, it stays one",
                    why,
                )
            self.confirmed_by_failsafe(asked)
            return
        self.failsafe_confirmed = False
        self.fencing.fire(
            self.expires, f"failsafe mode: etcd away ({why}) and not every member confirmed"
        )

    # --- internals

    def _fresh(self) -> bool:
        sent = self._last_sent
        return sent is not None and self.failure is None and self._clock() - sent < FRESH

    async def _bounded(self, call: object, what: str) -> bool:
        seconds = self._timings().retry_timeout
        try:
            return bool(await asyncio.wait_for(call, seconds))  # type: ignore[arg-type]
        except TimeoutError as e:
            raise DCSUnavailable(f"{what}: etcd did not answer within {seconds}s") from e

    async def _renew(self) -> None:
        sent = self._last_attempt = self._clock()
        seconds = self._timings().retry_timeout
        try:
            await asyncio.wait_for(self.dcs.renew_leader(), seconds)
        except LeaderKeyLost as e:
            await self._failed(str(e), lost=True)
            raise RenewFailed(str(e), lost=True) from e
        except TimeoutError as e:
            why = f"etcd did not answer within retry_timeout ({seconds}s)"
            await self._failed(why, lost=False)
            raise RenewFailed(why, lost=False) from e
        except DCSError as e:
            await self._failed(str(e), lost=False)
            raise RenewFailed(str(e), lost=False) from e
        self._renewed(sent)

    def _renewed(self, sent: float) -> None:
        if self.failure is not None:
            log.info("leader key renewed again")
        # The ttl of the lease the key is on now, not the configured one: a ttl change
        # applies from the next renewal, which moves the key to a lease of the new ttl.
        ttl = self.dcs.lease_ttl
        self._last_sent = sent
        self.expires = sent + ttl
        self.failure, self.lost, self.failsafe_confirmed = None, False, False
        self.fencing.extend(self.expires, ttl)

    async def _failed(self, why: str, *, lost: bool) -> None:
        self.failure, self.lost = why, lost
        if lost:
            self._keeping = False
            self.failsafe_confirmed = False
            self.fencing.fire(self.expires, f"the leader key is lost ({why})")
            self.expires = None
        elif self._failsafe():
            await self._ask_members(why)
        else:
            self.fencing.fire(self.expires, f"the leader key could not be renewed ({why})")
        self._wake()

    def _stuck(self) -> bool:
        silent = self._clock() - self._alive_at
        if silent <= self._stuck_after():
            return False
        if not self._stuck_logged:
            self._stuck_logged = True
            log.error(
                "the HA loop has shown no progress for %.0fs: no longer renewing the leader key, "
                "so that the lease fence stops PostgreSQL and another member can take over",
                silent,
            )
        return True

    # --- the background task

    async def run(self) -> None:
        """Renew on schedule while we lead, whatever the HA cycle is doing."""
        while True:
            self._kick.clear()
            delay: float | None = None
            if self._keeping:
                timings = self._timings()
                if self.failure is not None and self._last_attempt is not None:
                    due = self._last_attempt + min(1.0, timings.renew_every)
                else:
                    base = self._last_sent if self._last_sent is not None else self._clock()
                    due = base + timings.renew_every
                if self.failure is None and self.fencing.stop_at is not None:
                    # Never so late that a renewal taking retry_timeout would miss the fence
                    # (after loop_wait was raised, the held deadline still has the old margin).
                    due = min(due, self.fencing.stop_at - timings.retry_timeout)
                delay = due - self._clock()
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), delay)
                continue
            if self._stuck():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), self._timings().renew_every)
                continue
            async with self._lock:
                if not self._keeping:
                    continue
                with contextlib.suppress(RenewFailed):
                    await self._renew()
