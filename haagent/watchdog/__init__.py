"""The watchdog: a device that resets this node when the HA loop stops renewing.

`Watchdog` (manager.py) is what the HA engine uses; drivers talk to the kernel
device (`linux.py`) or, for tests only, to a simulator (`testing.py`,
`simulator.py`).
"""

from haagent.watchdog.driver import WatchdogDriver, WatchdogError, WatchdogInfo
from haagent.watchdog.manager import (
    REQUIRED_UNAVAILABLE,
    DriverFactory,
    Watchdog,
    WatchdogState,
    make_driver,
)
from haagent.watchdog.timing import check_device_timeout, check_timing, watchdog_timeout

__all__ = [
    "REQUIRED_UNAVAILABLE",
    "DriverFactory",
    "Watchdog",
    "WatchdogDriver",
    "WatchdogError",
    "WatchdogInfo",
    "WatchdogState",
    "check_device_timeout",
    "check_timing",
    "make_driver",
    "watchdog_timeout",
]
