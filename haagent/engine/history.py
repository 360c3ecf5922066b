"""Writes this member's events (`haagent.core.events`) to its ring in etcd, in the background.

`record()` never waits: it stamps the event with the wall clock and queues it.  One
task writes the queue in order, each write bounded by `retry_timeout`, and retries
after a pause while etcd is away; the HA loop and the lease keeper never wait for
it.  When the queue is full (etcd away for a long time, events piling up), the
oldest queued event is dropped and counted: the history is a record for people,
never a reason to hold memory without bound or to slow a decision.

On start it reads the highest sequence number this member wrote, so a restarted
agent continues its ring instead of overwriting its newest events.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import replace

from haagent.core.events import NewEvent
from haagent.dcs.errors import DCSError
from haagent.dcs.events import ClusterEvent
from haagent.dcs.protocol import DCS

log = logging.getLogger("haagent.engine")

QUEUE_LIMIT = 256
RETRY_PAUSE = (0.5, 5.0)  # first and longest pause between attempts while etcd is away


class EventHistory:
    def __init__(
        self, dcs: DCS, member: str, wall: Callable[[], float], *, limit: int = QUEUE_LIMIT
    ) -> None:
        self._dcs = dcs
        self._member = member
        self._wall = wall
        self._queue: collections.deque[ClusterEvent] = collections.deque()
        self._limit = limit
        self._pending = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._next_seq: int | None = None
        self.written = 0
        self.dropped = 0

    def record(self, new: NewEvent, *, timeline: int | None, lsn: int | None) -> None:
        """Queue one event (sequence number assigned when it is written)."""
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning(
                    "event history: %d events dropped so far (etcd is not taking them); the"
                    " newest %d are queued",
                    self.dropped, self._limit,
                )  # fmt: skip
        event = ClusterEvent(
            member=self._member, seq=-1, time=self._wall(), kind=str(new.kind),
            code=new.code, text=new.text, timeline=timeline, lsn=lsn,
        )  # fmt: skip
        self._queue.append(event)
        self._pending.set()
        self._idle.clear()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def drained(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the queue to be written; True when it was."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Write queued events until cancelled."""
        failures = 0
        while True:
            if not self._queue:
                self._pending.clear()
                self._idle.set()
                await self._pending.wait()
                continue
            try:
                if self._next_seq is None:
                    found = await self._dcs.read_events(member=self._member)
                    self._next_seq = max((e.seq for e in found.events), default=-1) + 1
                event = self._queue[0]
                seq = self._next_seq
                await self._dcs.write_event(replace(event, seq=seq))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the history must never end the agent
                failures += 1
                if failures == 1:
                    log.warning(
                        "event history: cannot write to etcd (%s); retrying", e,
                        exc_info=not isinstance(e, DCSError),
                    )  # fmt: skip
                await asyncio.sleep(min(RETRY_PAUSE[1], RETRY_PAUSE[0] * 2 ** (failures - 1)))
                continue
            if self._queue and self._queue[0] is event:
                self._queue.popleft()
            self._next_seq = seq + 1
            self.written += 1
            if failures:
                log.info("event history: writing to etcd again after %d failures", failures)
            failures = 0
