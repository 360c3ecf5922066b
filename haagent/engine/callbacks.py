"""The user's callbacks (`postgresql.callbacks`), run one at a time, in order, beside the loop.

Patroni's calling convention: `script EVENT ROLE SCOPE` (`on_role_change primary
stampede`), the script split as a shell would (no shell runs it).  Unlike Patroni, a
new event never kills the callback still running and no event is lost on a fast
sequence of events: each event waits its turn in a per-node queue, runs at most
`postgresql.callback_timeout` seconds (then its process group is killed), and its exit
status, duration and output are logged on one line with the reason code of the
decision that fired it.  Firing an event only queues it: the HA loop and the lease
keeper never wait for a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from haagent.core.callbacks import CallbackEvent
from haagent.postgres.proc import Completed, run, tool_env

log = logging.getLogger("haagent.callbacks")

# Far more than any sane sequence of events; past it, events are dropped with an error
# (a callback that hangs until its timeout every time could otherwise grow the queue).
QUEUE_LIMIT = 1000
OUTPUT_LINES = 4

Runner = Callable[..., Awaitable[Completed]]


@dataclass(frozen=True)
class CallbackRun:
    """What one callback did (kept for tests and logs)."""

    event: CallbackEvent
    reason: str
    argv: tuple[str, ...]
    returncode: int | None  # None: killed at the timeout, or it could not run
    waited: float  # seconds between being fired and starting
    seconds: float
    output: str


def callback_argv(command: str, event: CallbackEvent, scope: str) -> list[str]:
    """Patroni's convention: the command's words, then EVENT ROLE SCOPE."""
    return [*shlex.split(command), event.name, event.role, scope]


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-OUTPUT_LINES:])


class CallbackQueue:
    """Runs `postgresql.callbacks` in the order their events were fired."""

    def __init__(
        self,
        commands: Mapping[str, str],
        scope: str,
        timeout: float,
        *,
        clock: Callable[[], float],
        runner: Runner = run,
        cwd: Path | None = None,
    ) -> None:
        self.commands = dict(commands)
        self.scope = scope
        self.timeout = timeout
        self._runner = runner
        self._clock = clock
        self._cwd = cwd
        self._queue: asyncio.Queue[tuple[CallbackEvent, str, float]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.done: list[CallbackRun] = []  # the last runs, newest last (at most 100)
        # A start, stop, restart or role change was fired (Patroni's `cb_called`): a
        # PostgreSQL found running at the agent's start is announced with on_start once.
        self.announced = False
        # The role of the last of those events: a start after a demotion is a role change.
        self.last_role: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.commands)

    def _ensure_started(self) -> asyncio.Queue[tuple[CallbackEvent, str, float]]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._work(), name="callbacks")
        return self._queue

    def fire(self, event: CallbackEvent, reason: str) -> None:
        """Queue `event` (fired by a decision with reason code `reason`); never waits."""
        if event.name != "on_reload":
            self.announced, self.last_role = True, event.role
        if event.name not in self.commands:
            return
        queue = self._ensure_started()
        if queue.qsize() >= QUEUE_LIMIT:
            log.error(
                "callback %s %s dropped (%s): %d callbacks are waiting already; the one "
                "running does not finish (postgresql.callbacks.%s, callback_timeout %gs)",
                event.name, event.role, reason, queue.qsize(), event.name, self.timeout,
            )  # fmt: skip
            return
        queue.put_nowait((event, reason, self._clock()))

    def fire_all(self, events: Sequence[CallbackEvent], reason: str) -> None:
        for event in events:
            self.fire(event, reason)

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            event, reason, fired_at = await self._queue.get()
            try:
                await self._run_one(event, reason, fired_at)
            except Exception:  # a bug here must not stop the callbacks after it
                log.exception("callback %s %s (%s) failed", event.name, event.role, reason)
            finally:
                self._queue.task_done()

    async def _run_one(self, event: CallbackEvent, reason: str, fired_at: float) -> None:
        command = self.commands[event.name]
        argv = callback_argv(command, event, self.scope)
        started = self._clock()
        waited = started - fired_at
        queued = f", waited {waited:.1f}s for the ones before it" if waited >= 1 else ""
        shown = " ".join(shlex.quote(a) for a in argv)
        returncode: int | None = None
        output = ""
        try:
            result = await self._runner(argv, timeout=self.timeout, env=tool_env(), cwd=self._cwd)
        except TimeoutError:
            log.warning(
                "callback %s (%s): killed after %gs (postgresql.callback_timeout)%s",
                shown, reason, self.timeout, queued,
            )  # fmt: skip
        except OSError as e:
            log.error(
                "callback %s (%s): cannot run it: %s (postgresql.callbacks.%s)",
                shown, reason, e.strerror or e, event.name,
            )  # fmt: skip
        else:
            returncode, output = result.returncode, _one_line(result.tail(OUTPUT_LINES))
            level = logging.INFO if result.ok else logging.WARNING
            log.log(
                level,
                "callback %s (%s): exit %d in %.2fs%s%s",
                shown, reason, result.returncode, result.duration, queued,
                f"; output: {output}" if output else "",
            )  # fmt: skip
        self.done.append(
            CallbackRun(event, reason, tuple(argv), returncode, waited,
                        self._clock() - started, output)
        )  # fmt: skip
        del self.done[:-100]

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued callback ran (at most `timeout`); False if some did not."""
        if self._queue is None:
            return True
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float) -> None:
        """Let the queued callbacks run (at most `timeout` seconds), then stop."""
        if not await self.drain(timeout) and self._queue is not None:
            log.warning(
                "leaving with %d callbacks not run (they did not finish within %gs)",
                self._queue.qsize() + 1, timeout,
            )  # fmt: skip
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
