"""The engine's two clocks, handed to everything in it that reads the time.

`monotonic` measures intervals: leases, timeouts, how long PostgreSQL has been
down.  In the daemon it is CLOCK_BOOTTIME (`haagent.watchdog.guard.boottime`), which
goes on while the machine is suspended, as etcd's lease and the guard's deadline do.
`wall` is the time of day with a timezone, for what people read or schedule: history
entries, scheduled switchovers and restarts, the last contact with etcd.  The
simulation and the tests hand in clocks of their own (virtual time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from haagent.watchdog.guard import boottime


@dataclass(frozen=True)
class Clocks:
    monotonic: Callable[[], float]
    wall: Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def system_clocks() -> Clocks:
    """The daemon's clocks: CLOCK_BOOTTIME and the UTC time of day."""
    return Clocks(monotonic=boottime, wall=utc_now)
