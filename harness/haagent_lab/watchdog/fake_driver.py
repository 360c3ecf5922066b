"""An in-memory watchdog driver for tests of the manager and of the HA engine.

It records every call in `calls` (optionally also in a shared `journal`, so a
test can check the order of renewals and keepalives), and can be told to fail.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from haagent.watchdog.driver import (
    WDIOF_KEEPALIVEPING,
    WDIOF_MAGICCLOSE,
    WDIOF_SETTIMEOUT,
    WatchdogError,
    WatchdogInfo,
)


@dataclass
class FakeWatchdogDriver:
    device: str = "/dev/watchdog"
    timeout: int = 60
    min_timeout: int = 1
    can_set_timeout: bool = True
    probe_problem: str | None = None
    open_error: str | None = None
    support_error: str | None = None
    keepalive_error: str | None = None
    close_error: str | None = None
    # A failed keepalive closes the device (as a vanished simulator connection does).
    keepalive_error_closes: bool = False
    calls: list[str] = field(default_factory=list)
    journal: list[str] | None = None
    is_open: bool = False
    running: bool = False  # the device's timer: stopped only by a magic close

    def _record(self, call: str) -> None:
        self.calls.append(call)
        if self.journal is not None:
            self.journal.append(call)

    def _fail(self, message: str, code: int = errno.EIO) -> WatchdogError:
        return WatchdogError(
            f"watchdog.device {self.device}: {message}", device=self.device, errno_=code
        )

    def _require_open(self, action: str) -> None:
        if not self.is_open:
            raise self._fail(f"cannot {action}: the device is not open")

    def probe(self) -> str | None:
        self._record("probe")
        return self.probe_problem

    def open(self) -> None:
        self._record("open")
        if self.open_error is not None:
            raise self._fail(self.open_error)
        self.is_open = self.running = True

    def get_support(self) -> WatchdogInfo | None:
        self._record("get_support")
        self._require_open("get_support")
        if self.support_error is not None:
            raise self._fail(self.support_error, errno.ENOTTY)
        options = WDIOF_MAGICCLOSE | WDIOF_KEEPALIVEPING
        if self.can_set_timeout:
            options |= WDIOF_SETTIMEOUT
        return WatchdogInfo(identity="fake", options=options)

    def set_timeout(self, seconds: int) -> None:
        self._record(f"set_timeout {seconds}")
        self._require_open("set_timeout")
        if seconds < self.min_timeout:
            raise self._fail(f"refused a timeout of {seconds}s", errno.EINVAL)
        self.timeout = seconds

    def get_timeout(self) -> int:
        self._record("get_timeout")
        self._require_open("get_timeout")
        return self.timeout

    def keepalive(self) -> None:
        self._record("keepalive")
        self._require_open("keepalive")
        if self.keepalive_error is not None:
            if self.keepalive_error_closes:
                self.is_open = False
            raise self._fail(self.keepalive_error)

    def close(self, magic: bool = True) -> None:
        self._record(f"close magic={magic}")
        if not self.is_open:
            return
        self.is_open = False
        if self.close_error is not None:
            raise self._fail(self.close_error)
        if magic:
            self.running = False
