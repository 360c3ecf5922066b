"""The Linux driver: ioctl numbers, and clear errors for anything that is not a watchdog.

No /dev/watchdog exists here: the error paths are tested against a missing
path, a regular file, a FIFO, an unwritable file and /dev/null (a character
device that answers every watchdog ioctl with ENOTTY).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from haagent.watchdog import linux
from haagent.watchdog.driver import WatchdogDriver, WatchdogError, error_from_oserror
from haagent.watchdog.linux import LinuxWatchdogDriver


def test_ioctl_numbers_match_the_kernel_headers() -> None:
    assert linux.WDIOC_GETSUPPORT == 0x80285700
    assert linux.WDIOC_SETTIMEOUT == 0xC0045706
    assert linux.WDIOC_GETTIMEOUT == 0x80045707
    assert linux.WDIOC_KEEPALIVE == 0x80045705
    assert linux.WDIOC_GETSTATUS == 0x80045701


def test_watchdog_info_is_forty_bytes() -> None:
    assert linux.WATCHDOG_INFO.size == 40


def test_ioctl_size_must_fit_in_fourteen_bits() -> None:
    with pytest.raises(ValueError):
        linux.ior("W", 0, 1 << 14)


def test_is_a_watchdog_driver() -> None:
    assert isinstance(LinuxWatchdogDriver("/dev/watchdog"), WatchdogDriver)


def test_missing_device_says_how_to_get_one(tmp_path: Path) -> None:
    device = str(tmp_path / "watchdog")
    driver = LinuxWatchdogDriver(device)
    with pytest.raises(WatchdogError) as info:
        driver.open()
    message = str(info.value)
    assert f"watchdog.device {device} does not exist" in message
    assert "modprobe softdog" in message
    assert "watchdog.mode: off" in message
    assert info.value.errno == errno.ENOENT
    assert driver.probe() is not None and "modprobe softdog" in driver.probe()  # type: ignore[operator]
    assert not driver.is_open


def test_regular_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    driver = LinuxWatchdogDriver(str(path))
    with pytest.raises(WatchdogError, match="is not a character device"):
        driver.open()
    assert not driver.is_open
    assert path.read_bytes() == b""
    assert "not a character device" in (driver.probe() or "")


def test_fifo_without_reader_fails_at_once_instead_of_blocking(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    with pytest.raises(WatchdogError, match="is not a watchdog device"):
        LinuxWatchdogDriver(str(path)).open()


@pytest.fixture
def fifo_with_reader(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        yield path
    finally:
        os.close(fd)


def test_fifo_with_reader_is_not_a_character_device(fifo_with_reader: Path) -> None:
    driver = LinuxWatchdogDriver(str(fifo_with_reader))
    with pytest.raises(WatchdogError, match="is not a character device"):
        driver.open()
    assert not driver.is_open


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file")
def test_permission_denied_names_the_udev_rule(tmp_path: Path) -> None:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    path.chmod(0o400)
    driver = LinuxWatchdogDriver(str(path))
    with pytest.raises(WatchdogError) as info:
        driver.open()
    assert 'KERNEL=="watchdog", OWNER=' in str(info.value)
    assert info.value.errno == errno.EACCES


def test_character_device_without_watchdog_ioctls_is_not_a_watchdog() -> None:
    driver = LinuxWatchdogDriver("/dev/null")
    assert driver.probe() is None
    driver.open()
    opened = [driver.is_open]
    try:
        with pytest.raises(WatchdogError, match="/dev/null is not a watchdog device") as info:
            driver.get_support()
        assert info.value.errno == errno.ENOTTY
        assert "WDIOC_GETSUPPORT" in str(info.value)
        with pytest.raises(WatchdogError, match="not a watchdog device"):
            driver.set_timeout(25)
        with pytest.raises(WatchdogError, match="not a watchdog device"):
            driver.get_timeout()
        driver.keepalive()  # a write: /dev/null takes it
    finally:
        driver.close(magic=True)
    opened.append(driver.is_open)
    assert opened == [True, False]
    driver.close()  # idempotent


def test_ioctl_on_a_regular_file_descriptor_is_enotty(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    path.write_bytes(b"")
    driver = LinuxWatchdogDriver(str(path))
    driver._fd = os.open(path, os.O_WRONLY)  # bypass the open() check on purpose
    try:
        with pytest.raises(WatchdogError, match="is not a watchdog device"):
            driver.get_timeout()
    finally:
        driver.close(magic=False)


def test_calls_on_a_closed_driver_fail_clearly() -> None:
    driver = LinuxWatchdogDriver("/dev/null")
    for call in (driver.keepalive, driver.get_timeout, driver.get_support):
        with pytest.raises(WatchdogError, match="the device is not open"):
            call()
    driver.close()


def test_open_is_quick_even_for_a_fifo(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    done = threading.Event()

    def attempt() -> None:
        with contextlib.suppress(WatchdogError):
            LinuxWatchdogDriver(str(path)).open()
        done.set()

    threading.Thread(target=attempt, daemon=True).start()
    assert done.wait(2.0)


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        (errno.ENOENT, "modprobe softdog"),
        (errno.EACCES, 'KERNEL=="watchdog", OWNER="postgres"'),
        (errno.EPERM, "udev rule"),
        (errno.EBUSY, "already open by another process"),
        (errno.ENOTTY, "is not a watchdog device"),
        (errno.EIO, "open failed"),
    ],
)
def test_os_errors_become_actionable_messages(code: int, needle: str) -> None:
    error = error_from_oserror(
        "/dev/watchdog", "open", OSError(code, os.strerror(code)), "postgres"
    )
    assert needle in str(error)
    assert error.errno == code
    assert error.device == "/dev/watchdog"
