"""The lease fence inside the agent, for when there is no guard process.

Same contract as the guard (`guard.py`): `hold(expires, margin)` after each renewal,
a fast shutdown at `expires - margin` unless renewed, an immediate one at `expires`.
It runs on the agent's event loop, so it stops PostgreSQL when a renewal fails or
comes too late while the agent runs; it cannot when the agent itself stalls or dies
(that is what the guard process, and the watchdog, are for).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from haagent.watchdog.guard import boottime, process_alive, verified_postmaster

log = logging.getLogger("haagent.watchdog")


class LocalFence:
    def __init__(self, data_dir: Path, clock: Callable[[], float] = boottime) -> None:
        self.data_dir = data_dir
        self._clock = clock
        self._armed = False
        self._expires = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def armed(self) -> bool:
        return self._armed

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_at(loop.time() + max(0.0, when - self._clock()), callback)

    def hold(self, expires: float, margin: float, lease: int | None = None) -> bool:
        self._cancel()
        self._armed, self._expires = True, expires
        self._timer = self._at(expires - margin, self._fire)
        return True

    def release(self) -> None:
        self._cancel()
        self._armed = False

    def _fire(self) -> None:
        self._timer = None
        self._armed = False
        pid, why = verified_postmaster(self.data_dir)
        if pid is None:
            log.warning("lease fence (in the agent): nothing to stop: %s", why)
            return
        log.warning(
            "lease fence (in the agent): the leader key was not renewed and its lease can "
            "expire in %.1fs: fast shutdown of PostgreSQL (pid %d)",
            self._expires - self._clock(),
            pid,
        )
        _signal(pid, signal.SIGINT)
        self._timer = self._at(self._expires, lambda: self._escalate(pid))

    def _escalate(self, pid: int) -> None:
        self._timer = None
        again, _ = verified_postmaster(self.data_dir)
        if again == pid and process_alive(pid):
            log.warning(
                "lease fence (in the agent): immediate shutdown of PostgreSQL (pid %d)", pid
            )
            _signal(pid, signal.SIGQUIT)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        log.error("lease fence (in the agent): cannot signal PostgreSQL (pid %d): %s", pid, exc)
