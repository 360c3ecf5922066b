"""The watchdog as the HA engine uses it: modes, lifecycle and the keepalive rule.

The engine's contract:

- `configure(ttl, loop_wait)` once the dynamic config is known, and
  `reconfigure(ttl, loop_wait)` whenever it changes (re-sets the timeout while armed);
- before taking the leader role, `can_be_leader()`: False only in mode `required`
  when the watchdog cannot be used, with the reason to publish under the code
  `REQUIRED_UNAVAILABLE`;
- `arm()` before promoting: False means "do not promote" (mode `required` only);
- after every leader-key renewal, `keepalive_after_renewal(renewed)`: the device is
  kept alive only when the renewal succeeded, never otherwise;
- `disarm()` (magic close) on demote, on pause and on clean shutdown.

Every call is a quick syscall or local round trip; none blocks the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from haagent.config.errors import ConfigError
from haagent.config.model import WatchdogSettings
from haagent.core.reasons import required_watchdog_unavailable
from haagent.plugins import watchdog_drivers
from haagent.watchdog.driver import WatchdogDriver, WatchdogError, WatchdogInfo
from haagent.watchdog.linux import LinuxWatchdogDriver
from haagent.watchdog.timing import check_device_timeout, check_timing, watchdog_timeout

log = logging.getLogger("haagent.watchdog")

REQUIRED_UNAVAILABLE = "watchdog_required_unavailable"

DriverFactory = Callable[[WatchdogSettings], WatchdogDriver]


def make_driver(settings: WatchdogSettings) -> WatchdogDriver:
    """The driver `watchdog.driver` names, for `watchdog.device`: `linux`, or one an
    installed package adds (`haagent.plugins`)."""
    if settings.driver == "linux":
        return LinuxWatchdogDriver(settings.device)
    entry = watchdog_drivers().get(settings.driver)
    if entry is None:
        raise ConfigError(
            "watchdog.driver", f"{settings.driver!r} is not an installed driver", "linux"
        )
    factory: DriverFactory = entry.load()
    return factory(settings)


@dataclass(frozen=True)
class WatchdogState:
    """A frozen view of the watchdog for the engine's snapshot and the status."""

    mode: str
    armed: bool
    timeout: int | None
    last_keepalive: float | None
    can_be_leader: bool
    reason: str | None
    description: str


class Watchdog:
    def __init__(
        self,
        settings: WatchdogSettings,
        driver_factory: DriverFactory = make_driver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._driver = None if settings.mode == "off" else driver_factory(settings)
        self._clock = clock
        self._ttl: int | None = None
        self._loop_wait: int | None = None
        self._timeout: int | None = None
        self._problems: list[str] = []
        self._armed = False
        self._actual: int | None = None
        self._failure: str | None = None
        self._failure_at = 0.0
        self.info: WatchdogInfo | None = None
        self.last_keepalive: float | None = None

    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def armed(self) -> bool:
        return self._armed

    @property
    def timeout(self) -> int | None:
        """The timeout the device runs with when armed, else the one it would be asked for."""
        return self._actual if self._armed else self._timeout

    def configure(self, ttl: int, loop_wait: int) -> None:
        """Compute the timeout for this ttl and check the timing; no I/O."""
        self._ttl, self._loop_wait = ttl, loop_wait
        self._timeout = watchdog_timeout(ttl, self.settings.safety_margin)
        problems = (
            [] if self.mode == "off" else check_timing(ttl, loop_wait, self.settings.safety_margin)
        )
        if problems and problems != self._problems:
            log.warning("watchdog (mode %s) cannot be used: %s", self.mode, "; ".join(problems))
        self._problems = problems

    @property
    def reason(self) -> str | None:
        """Why the watchdog cannot protect this node now; None when it can (or does)."""
        if self._driver is None:
            return "watchdog.mode is off"
        if self._timeout is None:
            return "the watchdog timeout is not known yet (ttl and loop_wait not configured)"
        if self._problems:
            return "; ".join(self._problems)
        if self._armed:
            return None
        ttl = self._ttl or 0
        if self._failure is not None and self._clock() - self._failure_at < ttl:
            return self._failure
        return self._driver.probe()

    @property
    def usable(self) -> bool:
        return self.reason is None

    def can_be_leader(self) -> tuple[bool, str | None]:
        """`(False, reason)` only in mode `required` when the watchdog cannot be used.

        A failed `arm()` keeps the answer False for one ttl, so a node whose device
        is broken does not take and give back the leader key every cycle.
        """
        if self.mode != "required":
            return True, None
        reason = self.reason
        if reason is None:
            return True, None
        return False, required_watchdog_unavailable(reason)

    def _fail(self, message: str) -> bool:
        self._failure, self._failure_at = message, self._clock()
        if self.mode == "required":
            log.error("watchdog unavailable (watchdog.mode: required, no leadership): %s", message)
            return False
        log.warning(
            "watchdog unavailable, going on without one (watchdog.mode: automatic): %s", message
        )
        return True

    def _close_quietly(self) -> None:
        assert self._driver is not None
        try:
            self._driver.close(magic=True)
        except WatchdogError as exc:
            log.error("watchdog close failed, its timer may still run: %s", exc)
        self._armed = False

    def _set_and_check(self, driver: WatchdogDriver, timeout: int, loop_wait: int) -> list[str]:
        if self.info is None or self.info.can_set_timeout:
            driver.set_timeout(timeout)
        self._actual = driver.get_timeout()
        return check_device_timeout(timeout, self._actual, loop_wait, driver.device)

    def arm(self) -> bool:
        """Open and set the device before promotion.  False means: do not promote.

        Mode `off`: nothing, True.  Mode `automatic`: a failure is logged and the
        node goes on unprotected (True).  Mode `required`: a failure gives False.
        """
        driver = self._driver
        if driver is None or self._armed:
            return True
        if self._timeout is None or self._loop_wait is None:
            raise RuntimeError("Watchdog.arm() before configure(ttl, loop_wait)")
        if self._problems:
            return self._fail("; ".join(self._problems))
        try:
            driver.open()
            self.info = driver.get_support()
            problems = self._set_and_check(driver, self._timeout, self._loop_wait)
        except WatchdogError as exc:
            self._close_quietly()
            return self._fail(str(exc))
        if problems:
            self._close_quietly()
            return self._fail("; ".join(problems))
        if self.info is not None and self.info.alarm_only:
            log.warning("watchdog %s only raises an alarm: it will not reset this node", self.info)
        self._armed, self._failure = True, None
        self.last_keepalive = self._clock()
        log.info("watchdog armed: %s, %s, timeout %ds", driver.device, self.info, self._actual)
        return True

    def keepalive(self) -> bool:
        """Keep the device alive; never touches a device that is not armed."""
        if not self._armed or self._driver is None:
            return False
        try:
            self._driver.keepalive()
        except WatchdogError as exc:
            log.error("watchdog keepalive failed: %s", exc)
            if not self._driver.is_open:
                self._armed = False
                self._failure, self._failure_at = str(exc), self._clock()
            return False
        self.last_keepalive = self._clock()
        return True

    def keepalive_after_renewal(self, renewed: bool) -> bool:
        """The engine's one keepalive call: only after a successful leader-key renewal."""
        if not renewed:
            if self._armed:
                log.warning("leader key not renewed: no watchdog keepalive")
            return False
        return self.keepalive()

    def disarm(self) -> None:
        """Stop the device with the magic close (demote, pause, clean shutdown).  Idempotent."""
        driver = self._driver
        if driver is None or not (driver.is_open or self._armed):
            self._armed = False
            return
        try:
            driver.close(magic=True)
        except WatchdogError as exc:
            log.error("watchdog magic close failed: its timer may still reset this node: %s", exc)
        else:
            log.info("watchdog disarmed (magic close)")
        self._armed = False

    def reconfigure(self, ttl: int, loop_wait: int) -> None:
        """Take a new ttl / loop_wait; while armed, re-set the device's timeout."""
        if (ttl, loop_wait) == (self._ttl, self._loop_wait):
            return
        old = self._timeout
        self.configure(ttl, loop_wait)
        driver = self._driver
        if not self._armed or driver is None or self._timeout is None:
            return
        if self._problems:
            self.disarm()
            self._fail("; ".join(self._problems))
            return
        if self._timeout == old and self._actual is not None:
            # Only loop_wait changed: re-check, without an extra ping of the device.
            problems = check_device_timeout(self._timeout, self._actual, loop_wait, driver.device)
        else:
            # The kernel counts WDIOC_SETTIMEOUT as a keepalive too; nothing avoids that.
            try:
                problems = self._set_and_check(driver, self._timeout, loop_wait)
            except WatchdogError as exc:
                problems = [str(exc)]
        if problems:
            self.disarm()
            self._fail("; ".join(problems))
            return
        log.info("watchdog timeout changed from %ss to %ds (ttl %d)", old, self._actual, ttl)

    def describe(self) -> str:
        """For the status: `off`, `armed 25s`, `disarmed` or `unavailable: <why>`."""
        return self._describe(self.reason)

    def _describe(self, reason: str | None) -> str:
        if self._driver is None:
            return "off"
        if self._armed:
            return f"armed {self._actual}s"
        return "disarmed" if reason is None else f"unavailable: {reason}"

    def state(self) -> WatchdogState:
        reason = self.reason
        return WatchdogState(
            mode=self.mode,
            armed=self._armed,
            timeout=self.timeout,
            last_keepalive=self.last_keepalive,
            can_be_leader=self.mode != "required" or reason is None,
            reason=reason,
            description=self._describe(reason),
        )
