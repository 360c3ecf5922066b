"""Run a coroutine on virtual time (the simulation's clockwork): sleeps and timeouts take
simulated seconds and no real time."""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from haagent.engine.clock import Clocks
from haagent_lab.sim.clockwork import ManualClock, VirtualLoop

T = TypeVar("T")


class VirtualTime:
    def __init__(self, start: float = 1000.0) -> None:
        self.clock = ManualClock(start)
        self.loop = VirtualLoop(self.clock)

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.clock())

    @property
    def clocks(self) -> Clocks:
        """The engine's clocks on virtual time."""
        return Clocks(monotonic=self.clock, wall=self.wall)

    def run(self, coro: Coroutine[Any, Any, T], limit: float = 3600.0) -> T:
        """Run `coro` to completion, moving the clock from timer to timer."""
        task = self.loop.create_task(coro)
        end = self.clock() + limit
        while True:
            self.loop.drive()
            if task.done():
                return task.result()
            when = self.loop.next_timer()
            assert when is not None and when <= end, "the coroutine waits forever"
            self.clock.advance_to(when)

    def advance(self, seconds: float) -> None:
        """Let every task on the loop run for `seconds` of virtual time."""
        end = self.clock() + seconds
        while True:
            self.loop.drive()
            when = self.loop.next_timer()
            if when is None or when > end:
                self.clock.advance_to(end)
                self.loop.drive()
                return
            self.clock.advance_to(when)

    def close(self) -> None:
        self.loop.shut()
