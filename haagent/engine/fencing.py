"""Fencing: the watchdog and the lease fence, armed, kept alive and disarmed together.

Layers (see `haagent.config.timing` for the arithmetic):

| failure                                   | what stops PostgreSQL                       |
|-------------------------------------------|---------------------------------------------|
| a renewal fails (etcd said no, or silent) | the lease keeper fires the fence at once    |
| the agent stalls (SIGSTOP, CPU, a hang)   | the guard process, `margin` s before expiry |
| the agent dies                            | the guard process, at once (pipe closed)    |
| the whole machine hangs                   | the hardware watchdog resets it             |

`arm(expires)` before PostgreSQL becomes (or is adopted as) a primary; `extend(expires)`
after each successful renewal, and only then (the watchdog's keepalive too);
`fire(expires)` when the lease is lost or may be; `disarm()` only once PostgreSQL is
confirmed not to be a primary (or in maintenance mode, where nothing is fenced).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from haagent.config.timing import Timings
from haagent.engine.ports import LeaseFence, WatchdogControl

log = logging.getLogger("haagent.engine")

FAST_GRACE = 3.0  # a fast shutdown's time before the immediate one, when no lease bounds it


class Fencing:
    def __init__(
        self,
        watchdog: WatchdogControl,
        fence: LeaseFence,
        timings: Callable[[], Timings],
        clock: Callable[[], float],
        fallback: Callable[[], LeaseFence] | None = None,
        lease_id: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.watchdog = watchdog
        self._lease_id = lease_id
        self.fence = fence
        self._timings = timings
        self._clock = clock
        self._fallback = fallback
        self._armed = False
        # When the fence will stop PostgreSQL unless moved on (None: not held).
        self.stop_at: float | None = None
        self._watchdog_ttl: int | None = None
        self._loop_wait: int | None = None

    @property
    def armed(self) -> bool:
        return self._armed

    @property
    def margin(self) -> float:
        return self._timings().fence_margin

    def can_be_leader(self) -> tuple[bool, str | None]:
        return self.watchdog.can_be_leader()

    def _hold(self, expires: float, margin: float) -> None:
        self.stop_at = expires - margin
        lease = self._lease_id()
        if self.fence.hold(expires, margin, lease) or self._fallback is None:
            return
        # The guard process is gone: the fence inside the agent takes over at once.
        log.error("the lease fence falls back to the one inside the agent")
        self.fence, self._fallback = self._fallback(), None
        self.fence.hold(expires, margin, lease)

    def arm(self, expires: float) -> bool:
        """Before PostgreSQL runs as a primary: False means do not (watchdog required, unusable).

        The lease fence is held first, whatever the watchdog says: a primary that is
        already running stays fenced while the agent gives up."""
        if not self._armed:
            log.info(
                "fencing armed: PostgreSQL is stopped %.1fs before the lease can expire unless "
                "renewed",
                self.margin,
            )
        self._armed = True
        self._hold(expires, self.margin)
        return self.watchdog.arm()

    def extend(self, expires: float, ttl: int | None = None) -> None:
        """After a successful renewal: the lease (of `ttl` seconds) holds until `expires`."""
        if not self._armed:
            return
        if ttl is not None and ttl != self._watchdog_ttl and self._loop_wait is not None:
            # The watchdog's timeout follows the lease the key is really on.
            self._watchdog_ttl = ttl
            self.watchdog.reconfigure(ttl, self._loop_wait)
        self.watchdog.keepalive()
        self._hold(expires, self.margin)

    def fire(self, expires: float | None, why: str) -> None:
        """The lease is lost or may be: stop PostgreSQL now (immediate at the old expiry)."""
        if not self._armed:
            return
        now = self._clock()
        # Immediate shutdown when the lease can expire (or after a short fast one).
        until = expires if expires is not None and expires > now else now + FAST_GRACE
        log.warning("fencing: %s: stopping PostgreSQL now", why)
        self._hold(until, until - now)

    def disarm(self) -> None:
        self.watchdog.disarm()
        self.fence.release()
        if self._armed:
            log.info("fencing disarmed")
        self._armed = False
        self.stop_at = None

    def reconfigure(self, ttl: int, loop_wait: int) -> None:
        """A new dynamic config: a shorter ttl applies to the watchdog at once, a longer one
        only from the first renewal on a lease of that ttl (`extend`)."""
        self._loop_wait = loop_wait
        if self._watchdog_ttl is None or ttl < self._watchdog_ttl:
            self._watchdog_ttl = ttl
        self.watchdog.reconfigure(self._watchdog_ttl, loop_wait)

    def describe(self) -> str:
        return self.watchdog.describe()


class NoFence:
    """No lease fence at all (tests of the parts that do not need one)."""

    armed = False

    def hold(self, expires: float, margin: float, lease: int | None = None) -> bool:
        return False

    def release(self) -> None:
        pass
