"""The event history's writer: never waits, writes in order, survives etcd outages and
restarts, and holds a bounded queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from haagent.core.events import EventKind, NewEvent
from haagent.dcs.memory import MemoryDCS, MemoryStore
from haagent.engine.history import EventHistory
from support.virtual_time import VirtualTime


@pytest.fixture
def vt() -> Iterator[VirtualTime]:
    time = VirtualTime()
    yield time
    time.close()


def new(n: int) -> NewEvent:
    return NewEvent(EventKind.DECISION, "following_leader", f"event {n}")


def history(
    vt: VirtualTime, store: MemoryStore, limit: int = 256
) -> tuple[MemoryDCS, EventHistory]:
    dcs = MemoryDCS(store, "node1", ttl=10, retry_timeout=1)
    vt.run(dcs.open())
    return dcs, EventHistory(dcs, "node1", lambda: vt.wall().timestamp(), limit=limit)


def run_until_drained(vt: VirtualTime, h: EventHistory, timeout: float = 60.0) -> bool:
    async def go() -> bool:
        task = asyncio.create_task(h.run())
        try:
            return await h.drained(timeout)
        finally:
            task.cancel()

    return vt.run(go())


def test_events_are_written_in_order_and_a_restart_continues_the_sequence(
    vt: VirtualTime,
) -> None:
    store = MemoryStore(vt.clock)
    dcs, h = history(vt, store)
    for n in range(3):
        h.record(new(n), timeline=1, lsn=n)
    assert run_until_drained(vt, h)
    _, again = history(vt, store)  # the agent restarted
    again.record(new(3), timeline=1, lsn=3)
    assert run_until_drained(vt, again)
    read = vt.run(dcs.read_events())
    assert [(e.seq, e.text) for e in read.events] == [(n, f"event {n}") for n in range(4)]


def test_etcd_away_delays_the_events_and_a_full_queue_drops_the_oldest(
    vt: VirtualTime, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore(vt.clock)
    dcs, h = history(vt, store, limit=3)
    store.partition("node1")
    for n in range(5):
        h.record(new(n), timeline=None, lsn=None)  # returns at once: nothing awaited
    assert h.dropped == 2 and h.queued == 3
    with caplog.at_level(logging.WARNING, logger="haagent.engine"):
        assert not run_until_drained(vt, h, timeout=10.0)  # retried, never lost from the queue
    assert h.queued == 3 and "cannot write to etcd" in caplog.text
    store.heal("node1")
    assert run_until_drained(vt, h)
    read = vt.run(dcs.read_events())
    assert [e.text for e in read.events] == ["event 2", "event 3", "event 4"]
