"""Start and stop local processes for the lab and the tests, always by pid.

Everything started here is stopped through the `Process` handle it returned:
never by name (no pkill/killall).  When running as root, children can be
started as another OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class ProcessError(RuntimeError):
    """A lab process failed to start or to stop."""


@dataclass
class Process:
    """A child process started by the lab, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Send `sig`, wait up to `timeout`, then SIGKILL; always reaps the child."""
        if self.alive():
            try:
                os.kill(self.pid, sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(10)
            except ProcessLookupError:
                pass
        self.popen.poll()

    def finish(self, timeout: float = 10.0) -> None:
        """After a signal sent with `send_signal`: wait up to `timeout`, then SIGKILL; reaps."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(timeout=0.0, sig=signal.SIGKILL)

    def kill(self) -> None:
        self.stop(timeout=0.0, sig=signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def user_ids(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def make_dir(path: Path, owner: str | None = None, mode: int = 0o700) -> Path:
    """Create `path` (and parents) owned by `owner` when running as root."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if owner is not None and os.geteuid() == 0:
        uid, gid = user_ids(owner)
        os.chown(path, uid, gid)
    return path


def start(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    group: str | None = None,
) -> Process:
    """Start `argv` in its own session with output to `log_path`.

    `user` switches to that OS user when running as root; otherwise it must be
    the current user (or None).  `group` runs the process (and everything it
    starts) with that OS group, as lab nodes do so that network faults can
    tell their connections apart (see haagent_lab.lab.netfault).
    """
    kwargs: dict[str, object] = {}
    if user is not None and user != current_user():
        if os.geteuid() != 0:
            raise ProcessError(f"cannot start {name} as {user}: only root can switch users")
        uid, gid = user_ids(user)
        kwargs.update(user=uid, group=gid, extra_groups=[])
    if group is not None:
        if os.geteuid() == 0:
            kwargs["group"] = grp.getgrnam(group).gr_gid
        else:
            from haagent_lab.lab.netfault import group_argv

            argv = group_argv(group, list(argv))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    if user is not None:
        full_env["HOME"] = pwd.getpwnam(user).pw_dir
        full_env["USER"] = user
    with open(log_path, "ab") as log:
        if user is not None and os.geteuid() == 0:
            os.chown(log_path, *user_ids(user))
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            **kwargs,  # type: ignore[call-overload]
        )
    return Process(name, popen, log_path)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(predicate: object, what: str, timeout: float, process: Process | None = None) -> None:
    """Poll `predicate()` every 50 ms until it is true, the process dies, or `timeout`."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and not process.alive():
            raise ProcessError(
                f"{process.name} (pid {process.pid}) exited while waiting for {what}; "
                f"its log {process.log_path} ends with:\n{process.log_tail()}"
            )
        time.sleep(0.05)
    tail = f"; its log {process.log_path} ends with:\n{process.log_tail()}" if process else ""
    raise ProcessError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
