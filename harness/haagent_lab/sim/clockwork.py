"""Virtual time for the simulation: one asyncio event loop per node, all on one clock.

Each simulated agent runs its real code (the HA loop, the lease keeper, the etcd
watch) on an event loop of its own whose `time()` is the simulation's clock.  The
simulation drives the loops by hand, in one thread: it runs every loop until it has
nothing left to do at the current time, then moves the clock to the next timer any
of them (or the simulated world) has set.  Timeouts, sleeps and `loop_wait` all
happen in simulated seconds, in no real time.

A node whose loop is not driven is frozen exactly as a SIGSTOPped process is: none of
its code runs and none of its timers fire until it is driven again, when they all
fire at once.  Its PostgreSQL and its guard (the world's objects) go on meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

MAX_ITERATIONS = 100_000


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance_to(self, when: float) -> None:
        self.now = max(self.now, when)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is the simulation's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self._virtual_clock = clock

    def time(self) -> float:
        return self._virtual_clock()

    # --- driven by the simulation

    def _due(self) -> bool:
        if self._ready:  # type: ignore[attr-defined]
            return True
        scheduled = self._scheduled  # type: ignore[attr-defined]
        return bool(scheduled) and scheduled[0].when() <= self.time()

    def next_timer(self) -> float | None:
        """When this loop's earliest pending timer fires (None: no timer)."""
        for handle in sorted(self._scheduled, key=lambda h: h.when()):  # type: ignore[attr-defined]
            if not handle.cancelled():
                return float(handle.when())
        return None

    def drive(self) -> bool:
        """Run everything due at the current time; True when anything ran."""
        ran = False
        for _ in range(MAX_ITERATIONS):
            if not self._due():
                return ran
            self.call_soon(self.stop)
            self.run_forever()
            ran = True
        raise RuntimeError("a simulated node keeps running without time passing: a busy loop?")

    def shut(self) -> None:
        """Cancel every task left and close the loop (the end of a simulation)."""
        tasks = [t for t in asyncio.all_tasks(self) if not t.done()]
        for task in tasks:
            task.cancel()
        for _ in range(100):
            if not any(not t.done() for t in tasks):
                break
            self.call_soon(self.stop)
            self.run_forever()
        self.close()
