"""TESTING WATCHDOG DRIVER: NOT FOR PRODUCTION.  It protects nothing on its own.

Selected by `watchdog.driver: testing`, which this package adds to haagent through
the `haagent.watchdog_drivers` entry point (`from_settings`, see haagent/plugins.py
and harness/pyproject.toml); `watchdog.device` then holds the path of
the unix socket of a watchdog simulator (`python -m haagent_lab.watchdog.simulator`)
that the test harness started for this node.  The simulator plays the kernel's
part: it resets the node (SIGKILLs its agent and PostgreSQL) when keepalives stop.

The protocol is one ASCII line per request and per reply, over a stream socket:
the simulator greets with `OK <name> <timeout>` (or `ERR EBUSY ...` when another
client holds it); requests are `GETSUPPORT`, `SETTIMEOUT <n>`, `GETTIMEOUT`,
`KEEPALIVE`, `V` (the magic character) and `CLOSE`; every reply is `OK [...]` or
`ERR <ERRNO-NAME> <message>`.  Each exchange is a local round trip of well
under a millisecond, bounded by `io_timeout`.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat

from haagent.config.model import WatchdogSettings
from haagent.watchdog.driver import WatchdogError, WatchdogInfo

log = logging.getLogger("haagent.watchdog")

NOT_FOR_PRODUCTION = "testing watchdog driver: not for production"
_MAX_LINE = 4096


def simulator_missing_hint(path: str) -> str:
    return (
        f"watchdog.device {path} (the socket of the watchdog simulator, watchdog.driver: "
        "testing) does not exist: start `python -m haagent_lab.watchdog.simulator --socket "
        f"{path} ...` for this node first, or set watchdog.mode: off"
    )


def from_settings(settings: WatchdogSettings) -> TestingWatchdogDriver:
    """The driver for `watchdog.driver: testing` (haagent's `haagent.watchdog_drivers` entry)."""
    log.warning("%s: watchdog.device %s is a simulator socket", NOT_FOR_PRODUCTION, settings.device)
    return TestingWatchdogDriver(settings.device)


class TestingWatchdogDriver:
    """A client of the watchdog simulator.  Testing watchdog driver: not for production."""

    __test__ = False  # not a pytest test class

    def __init__(self, socket_path: str, io_timeout: float = 1.0) -> None:
        self._path = socket_path
        self._io_timeout = io_timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    @property
    def device(self) -> str:
        return self._path

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def probe(self) -> str | None:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return simulator_missing_hint(self._path)
        except OSError as exc:
            return f"watchdog.device {self._path}: {exc.strerror or exc}"
        if not stat.S_ISSOCK(st.st_mode):
            return f"watchdog.device {self._path} is not a socket ({NOT_FOR_PRODUCTION})"
        if not os.access(self._path, os.W_OK):
            return f"watchdog.device {self._path} is not writable by this user"
        return None

    def open(self) -> None:
        if self._sock is not None:
            return
        log.warning(
            "%s: connecting to the watchdog simulator at %s", NOT_FOR_PRODUCTION, self._path
        )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._io_timeout)
        try:
            sock.connect(self._path)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.ENOENT:
                raise WatchdogError(
                    simulator_missing_hint(self._path), device=self._path, errno_=exc.errno
                ) from exc
            raise WatchdogError(
                f"watchdog.device {self._path}: cannot connect to the watchdog simulator: "
                f"{exc.strerror or exc} ({NOT_FOR_PRODUCTION})",
                device=self._path,
                errno_=exc.errno,
            ) from exc
        self._sock = sock
        self._buffer = b""
        try:
            self._read_reply("connect")
        except WatchdogError:
            self._drop()
            raise

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _read_reply(self, request: str) -> str:
        assert self._sock is not None
        try:
            while b"\n" not in self._buffer:
                chunk = self._sock.recv(_MAX_LINE)
                if not chunk:
                    raise OSError(errno.ECONNRESET, "the simulator closed the connection")
                self._buffer += chunk
                if len(self._buffer) > _MAX_LINE:
                    raise OSError(errno.EPROTO, "reply too long")
        except OSError as exc:
            self._drop()
            raise WatchdogError(
                f"watchdog.device {self._path}: {request}: {exc.strerror or exc} "
                f"({NOT_FOR_PRODUCTION})",
                device=self._path,
                errno_=exc.errno,
            ) from exc
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = line.decode("ascii", "replace").strip()
        status, _, rest = reply.partition(" ")
        if status == "OK":
            return rest
        name, _, message = rest.partition(" ")
        code = getattr(errno, name, None) if name.isupper() else None
        if name == "EBUSY":
            message = f"already open by another client: {message}"
        raise WatchdogError(
            f"watchdog.device {self._path}: {request}: {message or reply} ({NOT_FOR_PRODUCTION})",
            device=self._path,
            errno_=code if isinstance(code, int) else None,
        )

    def _request(self, request: str) -> str:
        if self._sock is None:
            raise WatchdogError(
                f"watchdog.device {self._path}: cannot {request}: the device is not open",
                device=self._path,
            )
        try:
            self._sock.sendall(request.encode("ascii") + b"\n")
        except OSError as exc:
            self._drop()
            raise WatchdogError(
                f"watchdog.device {self._path}: {request}: {exc.strerror or exc} "
                f"({NOT_FOR_PRODUCTION})",
                device=self._path,
                errno_=exc.errno,
            ) from exc
        return self._read_reply(request)

    def get_support(self) -> WatchdogInfo | None:
        options, firmware, identity = self._request("GETSUPPORT").split(" ", 2)
        return WatchdogInfo(identity=identity, options=int(options), firmware_version=int(firmware))

    def set_timeout(self, seconds: int) -> None:
        try:
            self._request(f"SETTIMEOUT {int(seconds)}")
        except WatchdogError as exc:
            if exc.errno == errno.EINVAL:
                raise WatchdogError(
                    f"watchdog.device {self._path} refused a timeout of {seconds}s: it is "
                    "outside the range the device supports; change ttl or "
                    "watchdog.safety_margin (the timeout is ttl - safety_margin)",
                    device=self._path,
                    errno_=exc.errno,
                ) from exc
            raise

    def get_timeout(self) -> int:
        return int(self._request("GETTIMEOUT"))

    def keepalive(self) -> None:
        self._request("KEEPALIVE")

    def close(self, magic: bool = True) -> None:
        if self._sock is None:
            return
        try:
            if magic:
                self._request("V")
            self._request("CLOSE")
        finally:
            self._drop()
