"""Processes: running PostgreSQL's tools, finding the postmaster, who holds a port.

Tools run as cancellable asyncio subprocesses in their own session: on a
timeout or a cancellation the whole process group is terminated, then killed.
Passwords never go on a command line (they go through the pgpass file).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Never passed on to PostgreSQL and its tools: the agent's settings (HAAGENT_*/PATRONI_*
# overrides hold passwords), haactl's and etcdctl's credentials, libpq connection
# settings (PGPASSWORD...), and systemd's socket for the agent's own notifications.
_AGENT_PREFIXES = ("HAAGENT_", "PATRONI_", "HAACTL_", "ETCDCTL_")
_PG_CONNECTION_VARS = (
    "PGPASSWORD", "PGPASSFILE", "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE",
    "PGSERVICE", "PGSERVICEFILE", "PGOPTIONS",
)  # fmt: skip
_AGENT_ONLY = ("NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_FDS", "LISTEN_PID")


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 12) -> str:
        text = "\n".join(part for part in (self.stderr.strip(), self.stdout.strip()) if part)
        return "\n".join(text.splitlines()[-lines:])


def scrubbed_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The agent's environment without its secrets and settings: what the postmaster and
    every tool (and so archive_command, callbacks, post_bootstrap) inherit."""
    source = os.environ if environ is None else environ
    return {
        key: value
        for key, value in source.items()
        if not key.startswith(_AGENT_PREFIXES)
        and key not in _PG_CONNECTION_VARS
        and key not in _AGENT_ONLY
    }


def tool_env(extra: Mapping[str, str] | None = None, *, english: bool = False) -> dict[str, str]:
    env = scrubbed_environ()
    if english:  # output that is parsed: pg_controldata, pg_waldump
        env.pop("LANGUAGE", None)
        env["LC_MESSAGES"] = "C"
    env.update(extra or {})
    return env


async def _terminate_group(proc: asyncio.subprocess.Process, grace: float = 2.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
            return
        except TimeoutError:
            continue


async def run(
    argv: Sequence[str | Path],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Completed:
    """Run a tool to completion; TimeoutError (after killing it) when it takes too long."""
    args = tuple(str(a) for a in argv)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else tool_env(),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        await _terminate_group(proc)
        raise
    assert proc.returncode is not None
    return Completed(
        args,
        proc.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        time.monotonic() - started,
    )


@dataclass(frozen=True)
class PidFile:
    """postmaster.pid: pid, data dir, start time (epoch), port, socket dir, address, status."""

    pid: int
    data_dir: str
    start_time: int | None
    port: int | None
    status: str | None  # "starting", "stopping", "ready" or "standby" (PostgreSQL 10+)


def read_pid_file(path: Path) -> PidFile | None:
    try:
        lines = path.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None

    def field(index: int) -> str | None:
        return lines[index].strip() if len(lines) > index and lines[index].strip() else None

    start, port = field(2), field(3)
    return PidFile(
        pid=pid,
        data_dir=field(1) or "",
        start_time=int(start) if start and start.isdigit() else None,
        port=int(port) if port and port.isdigit() else None,
        status=field(7),
    )


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def is_postgres_of(pid: int, data_dir: Path) -> bool:
    """`pid` is alive, ours, and a PostgreSQL process working in `data_dir`."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cwd = _cwd(pid)
    return cwd is not None and cwd == data_dir.resolve() and _comm(pid).startswith("postgres")


def running_postmaster(pid_file: Path, data_dir: Path) -> PidFile | None:
    """The postmaster of `data_dir` when one runs (a stale postmaster.pid gives None)."""
    info = read_pid_file(pid_file)
    if info is None or not is_postgres_of(info.pid, data_dir):
        return None
    return info


_STARTUP_SEGMENT = re.compile(r"startup\s+(?:recovering|waiting for)\s+([0-9A-F]{8})[0-9A-F]{16}")


def startup_timeline(postmaster_pid: int) -> int | None:
    """The timeline of the WAL segment a standby's startup process replays now, from its
    process title (`postgres: ... startup recovering 000000020000000000000004`): the replay
    timeline, which PostgreSQL 15 exposes nowhere else.  None when it cannot be read."""
    try:
        children = Path(f"/proc/{postmaster_pid}/task/{postmaster_pid}/children").read_text()
    except OSError:
        return None
    for child in children.split():
        try:
            title = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        match = _STARTUP_SEGMENT.search(title)
        if match is not None:
            return int(match.group(1), 16)
    return None


def data_dir_processes(data_dir: Path) -> list[int]:
    """Our PostgreSQL processes working in `data_dir` (a crashed postmaster's orphans)."""
    target = data_dir.resolve()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            if _cwd(pid) == target and _comm(pid).startswith("postgres"):
                pids.append(pid)
    return pids


def _proc_net_address(host: str) -> set[str]:
    """/proc/net/tcp spells 127.0.0.11 as 0B00007F; also match the wildcard address."""
    packed = socket.inet_aton(host)
    return {packed[::-1].hex().upper(), "00000000"}


def port_owner(host: str, port: int) -> str | None:
    """`pid N (name)` of the process listening on host:port (IPv4), when we can see it."""
    try:
        addresses = _proc_net_address(host)
        inodes = set()
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                address, _, hex_port = fields[1].partition(":")
                if fields[3] == "0A" and int(hex_port, 16) == port and address in addresses:
                    inodes.add(f"socket:[{fields[9]}]")
    except (OSError, ValueError, IndexError):
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return f"pid {entry.name} ({_comm(int(entry.name))})"
    return None


def bind_error(host: str, port: int) -> OSError | None:
    """Why a server could not listen on host:port now (in use, not an address of this
    host, a privileged port), or None when a bind works."""
    bind_host = "0.0.0.0" if host in ("*", "") else host
    try:
        infos = socket.getaddrinfo(bind_host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return exc
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(sockaddr)
            except OSError as exc:
                return exc
    return None


def port_in_use(host: str, port: int) -> bool:
    """Something already listens on host:port (a bind like PostgreSQL's own would fail)."""
    error = bind_error(host, port)
    return error is not None and error.errno == errno.EADDRINUSE
