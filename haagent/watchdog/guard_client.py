"""The agent's side of the agent-death guard and lease fence (`guard.py`).

`AgentDeathGuard.start()` runs `python -m haagent.watchdog.guard` once, at startup:
in its own session (a signal to the agent's process group does not reach it), in
`/`, with its stdin a pipe from the agent, stderr the agent's, and no other
descriptor of the agent's.  The pipe's write end is close-on-exec, so neither
PostgreSQL nor any tool the agent runs holds it: when the agent dies, the guard
sees end of file at once.

`AgentDeathGuard` is a `LeaseFence` (haagent.engine.ports): the engine's fencing
(`haagent.engine.fencing`) hands it the lease deadline with `hold()` after every
renewal of the leader key while PostgreSQL may run as a primary, and `release()`s
it once PostgreSQL is confirmed not to be one.

If the guard cannot start, or dies, the agent logs it and falls back to an
in-process fence (`local_fence.py`), which covers a failed renewal but not an agent
that stalls or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from haagent.config.model import Etcd3Settings, Settings
from haagent.postgres.proc import scrubbed_environ
from haagent.watchdog import guard as guard_module

log = logging.getLogger("haagent.watchdog")

# The guard runs on the standard library alone (`-I -S`: no site-packages, no user site,
# no PYTHON* variables), started through a launcher that imports it from its .pyc:
# about 9.5 MB instead of the agent's imports.
GUARD_SCRIPT = Path(guard_module.__file__).resolve().with_name("run_guard.py")
START_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0


class GuardError(Exception):
    """The guard could not be started."""


def guard_argv(settings: Settings, *, agent_pid: int, python: str | None = None) -> list[str]:
    """The guard's command line for this node (run by this Python unless `python`)."""
    argv = [python or sys.executable, "-I", "-S", str(GUARD_SCRIPT)]
    argv += ["--data-dir", str(settings.postgresql.data_dir), "--agent-pid", str(agent_pid)]
    if settings.log.dir is not None:
        argv += ["--log-file", str(settings.log.dir / "haagent.log")]
    argv += ["--log-format", settings.log.format, "--log-level", settings.log.level]
    return argv


def guard_env() -> dict[str, str]:
    """The agent's environment without its secrets (HAAGENT_*/PATRONI_* settings, PGPASSWORD)."""
    return scrubbed_environ()


class AgentDeathGuard:
    """A running guard: `hold()` hands it the lease deadline, `release()` disarms it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None
        self.process = process
        self._pipe: asyncio.StreamWriter | None = process.stdin
        self._armed = False
        self._lost: str | None = None

    @classmethod
    async def start(cls, argv: list[str], timeout: float = START_TIMEOUT) -> AgentDeathGuard:
        """Start the guard and wait for its `READY`; GuardError says why it did not come up."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                close_fds=True,
                start_new_session=True,
                cwd="/",
                env=guard_env(),
            )
        except OSError as exc:
            raise GuardError(f"cannot run {argv[0]} {GUARD_SCRIPT}: {exc}") from exc
        try:
            await _wait_ready(process, timeout)
        except GuardError:
            await _kill(process)
            raise
        return cls(process)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def armed(self) -> bool:
        return self._armed and self._lost is None

    def alive(self) -> bool:
        """The guard runs and reads its pipe; logs once (an error) when it is found gone."""
        if self._lost is not None or self._pipe is None:
            return False
        if self.process.returncode is not None:
            self._give_up(f"it exited with status {self.process.returncode}")
        elif self._pipe.is_closing():
            self._give_up("its pipe is closed")
        return self._lost is None

    def _give_up(self, why: str) -> None:
        if self._lost is None:
            self._lost = why
            log.error(
                "agent-death guard (pid %d) lost: %s; from now on nothing outside this agent "
                "stops PostgreSQL if the agent stalls or dies (restart the agent to get a guard "
                "back)",
                self.pid,
                why,
            )

    def _write(self, line: str) -> bool:
        if not self.alive():
            return False
        assert self._pipe is not None
        self._pipe.write(line.encode("ascii") + b"\n")
        return True

    def hold(self, expires: float, margin: float, lease: int | None = None) -> bool:
        """PostgreSQL may run as a primary until `expires` (CLOCK_BOOTTIME): stop it from
        `expires - margin` on unless renewed, and at once if this agent dies; then revoke
        `lease` (the key goes at once).

        Never blocks: the pipe is written by the event loop's transport.  False when
        there is no guard left.
        """
        line = f"LEASE {expires:.3f} {margin:.3f}" + (f" {lease}" if lease else "")
        if not self._write(line):
            return False
        self._armed = True
        return True

    def tell_etcd(self, etcd: Etcd3Settings) -> None:
        """How the guard reaches etcd to revoke the lease (over the private pipe: it holds
        the password when there is one)."""
        access: dict[str, object] = {
            "endpoints": [f"{etcd.protocol}://{a}" for a in etcd.hosts],
        }
        for name, value in (("cacert", etcd.cacert), ("cert", etcd.cert), ("key", etcd.key)):
            if value is not None:
                access[name] = str(value)
        if etcd.username:
            access["user"], access["password"] = etcd.username, etcd.password or ""
        self._write("ETCD " + json.dumps(access, separators=(",", ":")))

    def release(self) -> None:
        """PostgreSQL is not a primary (any more): leave it alone."""
        if self._armed and self._write("DISARM"):
            self._armed = False

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close the pipe and wait for the guard to exit (kill it if it does not).

        Still armed (PostgreSQL may run as a primary): the guard stops PostgreSQL on
        the end of file, as it would if the agent had died, and is never killed for
        taking its time.  Call `release()` first for a clean exit that leaves
        PostgreSQL alone.
        """
        pipe, self._pipe = self._pipe, None
        if pipe is None:
            return
        armed = self._armed
        if armed:
            log.warning(
                "leaving while PostgreSQL may still run as a primary: the agent-death guard "
                "(pid %d) stops it now",
                self.pid,
            )
        pipe.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            if armed:
                log.warning(
                    "agent-death guard (pid %d) still stopping PostgreSQL: left to finish",
                    self.pid,
                )
                return
            log.warning("agent-death guard (pid %d) did not exit: killing it", self.pid)
            await _kill(self.process)


async def _wait_ready(process: asyncio.subprocess.Process, timeout: float) -> None:
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
    except TimeoutError:
        raise GuardError(f"no answer within {timeout:.0f}s") from None
    if not line:
        try:
            code: int | None = await asyncio.wait_for(process.wait(), 2.0)
        except TimeoutError:
            code = None
        raise GuardError(f"it exited at once (status {code}); see the lines above")
    if line.strip() != b"READY":
        raise GuardError(f"unexpected answer {line[:60]!r}")


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 5.0)


async def start_guard(settings: Settings) -> AgentDeathGuard | None:
    """The guard for this node, or None (disabled, or it could not start: a warning says why)."""
    without = (
        "the lease fence runs inside the agent instead: it stops PostgreSQL when a renewal "
        "fails, but not when this agent stalls or dies while leading"
        + (" (the watchdog still resets the node then)" if settings.watchdog.mode != "off" else "")
    )
    if not settings.watchdog.agent_death_guard:
        log.warning("agent-death guard disabled (watchdog.agent_death_guard: false): %s", without)
        return None
    argv = guard_argv(settings, agent_pid=os.getpid())
    try:
        guard = await AgentDeathGuard.start(argv)
    except GuardError as exc:
        log.warning("agent-death guard could not be started: %s; %s", exc, without)
        return None
    guard.tell_etcd(settings.etcd3)
    log.info("agent-death guard started (pid %d)", guard.pid)
    return guard


def guard_pids(data_dir: Path) -> list[int]:
    """Pids of guards running for `data_dir` (for tests and diagnostics)."""
    found = []
    target = str(data_dir).encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if str(GUARD_SCRIPT).encode() in args and target in args:
            found.append(int(entry.name))
    return found
