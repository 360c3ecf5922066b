"""The watchdog: a device that resets this node when the HA loop stops renewing.

`Watchdog` (manager.py) is what the HA engine uses; its driver talks to the kernel
device (`linux.py`), or is one an installed package adds (`haagent/plugins.py`:
haagent's test harness adds `testing`, the client of its watchdog simulator).
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
