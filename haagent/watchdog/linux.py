"""The Linux watchdog driver: `/dev/watchdog` through `ioctl(2)` and `write(2)`.

The ioctl numbers are computed from the kernel's `_IOR` / `_IOWR` macros
(include/uapi/asm-generic/ioctl.h), the layout of x86, arm, arm64, riscv and
s390.  On powerpc, mips, sparc and alpha the layout differs: there the ioctls
fail with ENOTTY and the driver reports that the device is not a watchdog.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct

from haagent.watchdog.driver import (
    WatchdogError,
    WatchdogInfo,
    error_from_oserror,
    missing_device_hint,
    permission_hint,
)

log = logging.getLogger("haagent.watchdog")

_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_WRITE = 1
_IOC_READ = 2

# struct watchdog_info { __u32 options; __u32 firmware_version; __u8 identity[32]; }
WATCHDOG_INFO = struct.Struct("=II32s")
_INT = struct.Struct("=i")


def _ioc(direction: int, type_: str, nr: int, size: int) -> int:
    if size >= 1 << _IOC_SIZEBITS:
        raise ValueError(f"ioctl argument size {size} does not fit")
    return (
        (direction << _IOC_DIRSHIFT)
        | (ord(type_) << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def ior(type_: str, nr: int, size: int) -> int:
    return _ioc(_IOC_READ, type_, nr, size)


def iowr(type_: str, nr: int, size: int) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, type_, nr, size)


WATCHDOG_IOCTL_BASE = "W"
WDIOC_GETSUPPORT = ior(WATCHDOG_IOCTL_BASE, 0, WATCHDOG_INFO.size)
WDIOC_GETSTATUS = ior(WATCHDOG_IOCTL_BASE, 1, _INT.size)
WDIOC_KEEPALIVE = ior(WATCHDOG_IOCTL_BASE, 5, _INT.size)
WDIOC_SETTIMEOUT = iowr(WATCHDOG_IOCTL_BASE, 6, _INT.size)
WDIOC_GETTIMEOUT = ior(WATCHDOG_IOCTL_BASE, 7, _INT.size)


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


class LinuxWatchdogDriver:
    """A kernel watchdog device such as `/dev/watchdog` (softdog or hardware)."""

    def __init__(self, device: str = "/dev/watchdog") -> None:
        self._device = device
        self._fd: int | None = None

    @property
    def device(self) -> str:
        return self._device

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def probe(self) -> str | None:
        try:
            st = os.stat(self._device)
        except FileNotFoundError:
            return missing_device_hint(self._device)
        except OSError as exc:
            return f"watchdog.device {self._device}: {exc.strerror or exc}"
        if not stat.S_ISCHR(st.st_mode):
            return self._not_a_device_message()
        if not os.access(self._device, os.W_OK):
            return permission_hint(self._device, _user())
        return None

    def _not_a_device_message(self) -> str:
        return (
            f"watchdog.device {self._device} is not a character device, so it cannot be a "
            "watchdog: point watchdog.device at /dev/watchdog or set watchdog.mode: off"
        )

    def open(self) -> None:
        if self._fd is not None:
            return
        # Non-blocking: a FIFO or a slow device must never hang the HA loop here.
        try:
            fd = os.open(self._device, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise error_from_oserror(self._device, "open", exc, _user()) from exc
        try:
            if not stat.S_ISCHR(os.fstat(fd).st_mode):
                raise WatchdogError(self._not_a_device_message(), device=self._device)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        log.info("watchdog device %s opened: its timer is running", self._device)

    def _require_fd(self, action: str) -> int:
        if self._fd is None:
            raise WatchdogError(
                f"watchdog.device {self._device}: cannot {action}: the device is not open",
                device=self._device,
            )
        return self._fd

    def _ioctl(self, action: str, request: int, buf: bytearray) -> None:
        fd = self._require_fd(action)
        try:
            fcntl.ioctl(fd, request, buf, True)
        except OSError as exc:
            raise error_from_oserror(self._device, action, exc, _user()) from exc

    def get_support(self) -> WatchdogInfo | None:
        buf = bytearray(WATCHDOG_INFO.size)
        self._ioctl("WDIOC_GETSUPPORT", WDIOC_GETSUPPORT, buf)
        options, firmware, identity = WATCHDOG_INFO.unpack(buf)
        name = identity.split(b"\0", 1)[0].decode("ascii", "replace")
        return WatchdogInfo(identity=name, options=options, firmware_version=firmware)

    def set_timeout(self, seconds: int) -> None:
        buf = bytearray(_INT.pack(seconds))
        try:
            self._ioctl("WDIOC_SETTIMEOUT", WDIOC_SETTIMEOUT, buf)
        except WatchdogError as exc:
            if exc.errno == errno.EINVAL:
                raise WatchdogError(
                    f"watchdog.device {self._device} refused a timeout of {seconds}s: it is "
                    "outside the range the device supports; change ttl or "
                    "watchdog.safety_margin (the timeout is ttl - safety_margin)",
                    device=self._device,
                    errno_=exc.errno,
                ) from exc
            raise

    def get_timeout(self) -> int:
        buf = bytearray(_INT.size)
        self._ioctl("WDIOC_GETTIMEOUT", WDIOC_GETTIMEOUT, buf)
        (seconds,) = _INT.unpack(buf)
        return int(seconds)

    def keepalive(self) -> None:
        fd = self._require_fd("keepalive")
        try:
            os.write(fd, b"1")
        except OSError as exc:
            raise error_from_oserror(self._device, "keepalive write", exc, _user()) from exc

    def close(self, magic: bool = True) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if magic:
                os.write(fd, b"V")
        except OSError as exc:
            raise error_from_oserror(self._device, "magic close write", exc, _user()) from exc
        finally:
            os.close(fd)
        if magic:
            log.info("watchdog device %s closed with the magic character: stopped", self._device)
        else:
            log.warning(
                "watchdog device %s closed without the magic character: its timer keeps "
                "running and will reset this machine",
                self._device,
            )
