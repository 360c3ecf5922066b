"""The watchdog driver interface, what a device supports, and the one error type.

A driver talks to one watchdog: the kernel's `/dev/watchdog` (`linux.py`) or, for
haagent's tests only, the watchdog simulator of its harness (`haagent_lab.watchdog`).
It has the kernel's semantics: opening starts the timer, every write is a keepalive,
and closing stops the timer only after the magic character `V` was written; a close
without it (or a crash of the process holding the device) leaves the timer running,
so the machine is reset when it expires.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# Option bits of `struct watchdog_info` (linux/watchdog.h).
WDIOF_OVERHEAT = 0x0001
WDIOF_FANFAULT = 0x0002
WDIOF_EXTERN1 = 0x0004
WDIOF_EXTERN2 = 0x0008
WDIOF_POWERUNDER = 0x0010
WDIOF_CARDRESET = 0x0020
WDIOF_POWEROVER = 0x0040
WDIOF_SETTIMEOUT = 0x0080
WDIOF_MAGICCLOSE = 0x0100
WDIOF_PRETIMEOUT = 0x0200
WDIOF_ALARMONLY = 0x0400
WDIOF_KEEPALIVEPING = 0x8000

_OPTION_NAMES = {
    WDIOF_OVERHEAT: "overheat",
    WDIOF_FANFAULT: "fanfault",
    WDIOF_EXTERN1: "extern1",
    WDIOF_EXTERN2: "extern2",
    WDIOF_POWERUNDER: "powerunder",
    WDIOF_CARDRESET: "cardreset",
    WDIOF_POWEROVER: "powerover",
    WDIOF_SETTIMEOUT: "settimeout",
    WDIOF_MAGICCLOSE: "magicclose",
    WDIOF_PRETIMEOUT: "pretimeout",
    WDIOF_ALARMONLY: "alarmonly",
    WDIOF_KEEPALIVEPING: "keepaliveping",
}


@dataclass(frozen=True)
class WatchdogInfo:
    """What a device says about itself (`WDIOC_GETSUPPORT`)."""

    identity: str
    options: int = 0
    firmware_version: int = 0

    @property
    def can_set_timeout(self) -> bool:
        return bool(self.options & WDIOF_SETTIMEOUT)

    @property
    def magic_close(self) -> bool:
        return bool(self.options & WDIOF_MAGICCLOSE)

    @property
    def alarm_only(self) -> bool:
        """The device only raises an alarm and does not reset the machine."""
        return bool(self.options & WDIOF_ALARMONLY)

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(name for bit, name in _OPTION_NAMES.items() if self.options & bit)

    def __str__(self) -> str:
        names = ",".join(self.option_names) or "none"
        return f"{self.identity!r} (firmware {self.firmware_version}, options {names})"


class WatchdogError(Exception):
    """A watchdog operation failed; the message says which device and what to do."""

    def __init__(self, message: str, *, device: str = "", errno_: int | None = None) -> None:
        super().__init__(message)
        self.device = device
        self.errno = errno_


@runtime_checkable
class WatchdogDriver(Protocol):
    """One watchdog device.  Every method is a quick syscall or local round trip."""

    @property
    def device(self) -> str:
        """The path of the device (or of the simulator's socket)."""
        ...

    @property
    def is_open(self) -> bool: ...

    def probe(self) -> str | None:
        """Without opening (which would start the timer): why the device cannot be used,
        or None when it looks usable (it exists and this process may write to it)."""
        ...

    def open(self) -> None:
        """Open the device, which starts its timer with the timeout it has."""
        ...

    def get_support(self) -> WatchdogInfo | None:
        """What the device supports, or None when it cannot tell."""
        ...

    def set_timeout(self, seconds: int) -> None:
        """Set the timeout (this also counts as a keepalive); may be rounded by the device."""
        ...

    def get_timeout(self) -> int:
        """The timeout the device really uses, in seconds."""
        ...

    def keepalive(self) -> None: ...

    def close(self, magic: bool = True) -> None:
        """Close; with `magic` write `V` first, so the timer stops.  Idempotent."""
        ...


def missing_device_hint(device: str) -> str:
    return (
        f"watchdog.device {device} does not exist: load the softdog module "
        "(`modprobe softdog`, and remove any `blacklist softdog` line in /etc/modprobe.d "
        "or /lib/modprobe.d) or set watchdog.mode: off"
    )


def permission_hint(device: str, user: str) -> str:
    return (
        f"watchdog.device {device} is not writable by {user}: give it to that user with "
        f'a udev rule such as KERNEL=="watchdog", OWNER="{user}", GROUP="{user}" in '
        "/etc/udev/rules.d/61-watchdog.rules (then reload udev or reboot), or set "
        "watchdog.mode: off"
    )


def busy_hint(device: str) -> str:
    return (
        f"watchdog.device {device} is already open by another process (a second haagent, "
        "a watchdog daemon, or systemd's RuntimeWatchdogSec): only one process can hold a "
        "watchdog device"
    )


def error_from_oserror(device: str, action: str, exc: OSError, user: str) -> WatchdogError:
    """A `WatchdogError` that says what `exc` means for a watchdog device."""
    code = exc.errno
    if code == errno.ENOENT:
        message = missing_device_hint(device)
    elif code in (errno.EACCES, errno.EPERM):
        message = permission_hint(device, user)
    elif code == errno.EBUSY:
        message = busy_hint(device)
    elif code in (errno.ENOTTY, errno.ENXIO, errno.ENODEV):
        message = (
            f"watchdog.device {device} is not a watchdog device ({action}: "
            f"{exc.strerror or exc}): point watchdog.device at /dev/watchdog or set "
            "watchdog.mode: off"
        )
    else:
        message = f"watchdog.device {device}: {action} failed: {exc.strerror or exc}"
    return WatchdogError(message, device=device, errno_=code)
