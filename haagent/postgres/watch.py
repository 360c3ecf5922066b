"""Watching the postmaster: its exit is noticed at once, not at the next HA loop.

With a pidfd (Linux 5.3+) the event loop is woken by the kernel the moment the
process exits; elsewhere the pid is polled every 50 ms.  The agent spawns the
postmaster in a session of its own (`instance.py`), so it outlives an agent
restart; the new agent adopts it by its postmaster.pid and watches it the same
way (it is not the new agent's child).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable

POLL_INTERVAL = 0.05


class PostmasterWatch:
    def __init__(self, pid: int, on_exit: Callable[[PostmasterWatch], None]) -> None:
        self.pid = pid
        self.exited = asyncio.Event()
        self.exited_at: float | None = None  # time.monotonic() when the exit was noticed
        self._on_exit = on_exit
        self._fd: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self.method = "pidfd"
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._loop.call_soon(self._fire)
        except (AttributeError, OSError):
            self.method = "polling"
            self._task = self._loop.create_task(self._poll(), name=f"postmaster-watch-{pid}")
        else:
            self._loop.add_reader(self._fd, self._fire)

    def alive(self) -> bool:
        return not self.exited.is_set()

    async def _poll(self) -> None:
        while True:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self._fire()
                return
            except PermissionError:  # the pid was reused by another user's process
                self._fire()
                return
            await asyncio.sleep(POLL_INTERVAL)

    def _fire(self) -> None:
        if self.exited.is_set() or self._closed:
            return
        self.exited_at = time.monotonic()
        self._release()
        self.exited.set()
        self._on_exit(self)

    async def wait(self, timeout: float) -> bool:
        """True once the postmaster exited, False if still alive after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.exited.wait(), timeout)
        return self.exited.is_set()

    def _release(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None

    def close(self) -> None:
        """Stop watching (the postmaster keeps running)."""
        self._closed = True
        self._release()
