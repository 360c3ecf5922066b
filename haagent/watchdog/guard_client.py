"""The agent's side of the agent-death guard (`guard.py`), and the watchdog that arms it.

`AgentDeathGuard.start()` runs `python -m haagent.watchdog.guard` once, at startup:
in its own session (a signal to the agent's process group does not reach it), in
`/`, with its stdin a pipe from the agent, stderr the agent's, and no other
descriptor of the agent's.  The pipe's write end is close-on-exec, so neither
PostgreSQL nor any tool the agent runs holds it: when the agent dies, the guard
sees end of file at once.

`GuardedWatchdog` is the `WatchdogControl` the HA loop gets: the watchdog, plus the
guard armed at the same moments (`arm()` before a promotion, `keepalive()` after
each renewal of the key while running the primary) and disarmed on `disarm()`
(demote, pause, clean shutdown).  Never armed in maintenance mode.  The decision
logic does not know the guard exists.

The guard is a safety net: if it cannot start, or dies, the agent logs it and goes
on as it would without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import haagent
from haagent.config.environ import is_agent_variable
from haagent.config.model import Settings

if TYPE_CHECKING:
    from haagent.engine.ports import WatchdogControl

log = logging.getLogger("haagent.watchdog")

GUARD_MODULE = "haagent.watchdog.guard"
START_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0


class GuardError(Exception):
    """The guard could not be started."""


def guard_argv(settings: Settings, *, agent_pid: int, python: str | None = None) -> list[str]:
    """The guard's command line for this node (run by this Python unless `python`)."""
    argv = [python or sys.executable, "-m", GUARD_MODULE]
    argv += ["--data-dir", str(settings.postgresql.data_dir), "--agent-pid", str(agent_pid)]
    if settings.log.dir is not None:
        argv += ["--log-file", str(settings.log.dir / "haagent.log")]
    argv += ["--log-format", settings.log.format, "--log-level", settings.log.level]
    return argv


def guard_env() -> dict[str, str]:
    """The agent's environment without its secrets (HAAGENT_*/PATRONI_* settings, PGPASSWORD),
    finding the agent's own copy of haagent first (it runs in `/`, not in the agent's cwd)."""
    env = {k: v for k, v in os.environ.items() if not is_agent_variable(k)}
    env.pop("PGPASSWORD", None)
    source = str(Path(haagent.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    return env


class AgentDeathGuard:
    """A running guard: `set_armed()` tells it whether to stop PostgreSQL if we die."""

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
            raise GuardError(f"cannot run {argv[0]} -m {GUARD_MODULE}: {exc}") from exc
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
                "agent-death guard (pid %d) lost: %s; from now on PostgreSQL keeps running "
                "if this agent dies (restart the agent to get a guard back)",
                self.pid,
                why,
            )

    def set_armed(self, armed: bool) -> bool:
        """Arm or disarm (a write only when that changes); False when there is no guard left.

        Never blocks: the pipe is written by the event loop's transport.
        """
        if not self.alive():
            return False
        assert self._pipe is not None
        if armed != self._armed:
            self._pipe.write(b"ARM\n" if armed else b"DISARM\n")
            self._armed = armed
        return True

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """A clean exit: disarm, close the pipe, wait for the guard to exit (kill it if not)."""
        pipe, self._pipe = self._pipe, None
        if pipe is None:
            return
        if self._armed and not pipe.is_closing():
            pipe.write(b"DISARM\n")  # before the end of file: the guard reads it first
            self._armed = False
        pipe.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
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
    if not settings.watchdog.agent_death_guard:
        log.info(
            "agent-death guard disabled (watchdog.agent_death_guard: false): if this agent dies "
            "while leading, its PostgreSQL keeps running as a primary"
            + (" until the watchdog resets the node" if settings.watchdog.mode != "off" else "")
        )
        return None
    argv = guard_argv(settings, agent_pid=os.getpid())
    try:
        guard = await AgentDeathGuard.start(argv)
    except GuardError as exc:
        log.warning(
            "agent-death guard could not be started: %s; going on without it: if this agent "
            "dies while leading, its PostgreSQL keeps running as a primary",
            exc,
        )
        return None
    log.info("agent-death guard started (pid %d)", guard.pid)
    return guard


class Guard(Protocol):
    def set_armed(self, armed: bool) -> bool: ...


class GuardedWatchdog:
    """The HA loop's watchdog: `watchdog`, with the guard armed exactly while it leads a primary."""

    def __init__(self, watchdog: WatchdogControl, guard: Guard, paused: Callable[[], bool]) -> None:
        self.watchdog = watchdog
        self.guard = guard
        self.paused = paused

    def _guard(self, armed: bool) -> None:
        # Maintenance mode: the agent must never touch PostgreSQL, nor its guard.
        self.guard.set_armed(armed and not self.paused())

    def can_be_leader(self) -> tuple[bool, str | None]:
        return self.watchdog.can_be_leader()

    def arm(self) -> bool:
        armed = self.watchdog.arm()
        if armed:  # False: no promotion (mode required, no device)
            self._guard(True)
        return armed

    def keepalive(self) -> bool:
        # Only after a renewal of the key by the running primary (or failsafe confirmed):
        # also arms the guard of an agent that restarted and adopted its primary.
        alive = self.watchdog.keepalive()
        self._guard(True)
        return alive

    def disarm(self) -> None:
        self.watchdog.disarm()
        self._guard(False)

    def reconfigure(self, ttl: int, loop_wait: int) -> None:
        self.watchdog.reconfigure(ttl, loop_wait)

    def describe(self) -> str:
        return self.watchdog.describe()


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
        if GUARD_MODULE.encode() in args and target in args:
            found.append(int(entry.name))
    return found
