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
    ) -> None:
        self.watchdog = watchdog
        self.fence = fence
        self._timings = timings
        self._clock = clock
        self._armed = False

    @property
    def armed(self) -> bool:
        return self._armed

    @property
    def margin(self) -> float:
        return self._timings().fence_margin

    def can_be_leader(self) -> tuple[bool, str | None]:
        return self.watchdog.can_be_leader()

    def arm(self, expires: float) -> bool:
        """Before PostgreSQL runs as a primary: False means do not (watchdog required, unusable)."""
        if not self.watchdog.arm():
            return False
        if not self._armed:
            log.info(
                "fencing armed: PostgreSQL is stopped %.1fs before the lease can expire unless "
                "renewed",
                self.margin,
            )
        self._armed = True
        self.fence.hold(expires, self.margin)
        return True

    def extend(self, expires: float) -> None:
        """After a successful renewal: the lease holds until `expires`."""
        if not self._armed:
            return
        self.watchdog.keepalive()
        self.fence.hold(expires, self.margin)

    def fire(self, expires: float | None, why: str) -> None:
        """The lease is lost or may be: stop PostgreSQL now (immediate at the old expiry)."""
        if not self._armed:
            return
        now = self._clock()
        # Immediate shutdown when the lease can expire (or after a short fast one).
        until = expires if expires is not None and expires > now else now + FAST_GRACE
        log.warning("fencing: %s: stopping PostgreSQL now", why)
        self.fence.hold(until, until - now)

    def disarm(self) -> None:
        self.watchdog.disarm()
        self.fence.release()
        if self._armed:
            log.info("fencing disarmed")
        self._armed = False

    def reconfigure(self, ttl: int, loop_wait: int) -> None:
        self.watchdog.reconfigure(ttl, loop_wait)

    def describe(self) -> str:
        return self.watchdog.describe()


class NoFence:
    """No lease fence at all (tests of the parts that do not need one)."""

    armed = False

    def hold(self, expires: float, margin: float) -> bool:
        return False

    def release(self) -> None:
        pass
