"""What other installed packages add to haagent, found through entry points.

haagent ships one watchdog driver, `linux` (the kernel's `/dev/watchdog`).  An
installed package may add others in the entry point group `haagent.watchdog_drivers`:
the entry point's name is a value of `watchdog.driver`, its object a callable that
takes the `WatchdogSettings` and returns a driver.  haagent's test harness (the
`haagent_lab` package in the repository's `harness/`, never shipped) adds `testing`,
the client of its watchdog simulator; without it, `driver: testing` is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

WATCHDOG_DRIVERS = "haagent.watchdog_drivers"
TESTING_DRIVER = "testing"


def watchdog_drivers() -> dict[str, EntryPoint]:
    """The watchdog drivers installed packages add, by name.  Imported here, when a
    driver other than `linux` is named: importlib.metadata and what it pulls in (email,
    zipfile, csv) cost an agent that never asks about 2 MB."""
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=WATCHDOG_DRIVERS)}
