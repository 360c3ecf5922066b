"""The event history in etcd: the ring per member, its codec, and that the view ignores it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from haagent.dcs import codec
from haagent.dcs.events import (
    EVENTS_PER_MEMBER,
    ClusterEvent,
    decode_event,
    encode_event,
    event_document,
    event_key,
    last_seq,
    merge_events,
    parse_since,
    read_events,
    write_event,
)
from haagent.dcs.kv import KeyValue, Put
from haagent.dcs.memory import MemoryDCS, MemoryKV, MemoryStore

P = b"/service/batman/"
BARE = {"member": "node1", "seq": 1, "time": 1.0, "kind": "", "code": "", "text": ""}


def event(member: str = "node1", seq: int = 0, time: float = 1_764_518_400.0) -> ClusterEvent:
    return ClusterEvent(member, seq, time, "failover", "leader_race", "took the key", 3, 5000)


def kv(key: str, value: bytes) -> KeyValue:
    return KeyValue(P + key.encode(), value, 1, 1)


def test_an_event_round_trips_and_its_slot_wraps() -> None:
    e = event(seq=EVENTS_PER_MEMBER + 7)
    assert event_key("node1", e.seq) == "events/node1/0007"
    assert decode_event(event_key("node1", e.seq), encode_event(e)) == e
    assert event_document(e)["time"] == "2025-11-30T16:00:00.000+00:00"


@pytest.mark.parametrize(
    "value",
    [
        b"not json", b"[1]", b'{"member": "node2"}', b"{" * 100000,
        json.dumps({**event_document(event()), "time": 1e999}).encode(),
        codec.dumps({**BARE, "seq": -1}),
        codec.dumps({**BARE, "kind": 1}),
        codec.dumps({**BARE, "text": "x" * 5000}),
    ],
)  # fmt: skip
def test_a_malformed_value_is_skipped_and_counted(value: bytes) -> None:
    good = kv("events/node1/0001", encode_event(event(seq=1)))
    read = merge_events([kv("events/node1/0002", value), good], P)
    assert read.events == (event(seq=1),) and read.skipped == 1


def test_events_merge_in_time_order_and_filter_by_member_and_time() -> None:
    kvs = [
        kv(event_key(e.member, e.seq), encode_event(e))
        for e in (event("node2", 0, 30.0), event("node1", 0, 10.0), event("node1", 1, 20.0))
    ]
    assert [e.time for e in merge_events(kvs, P).events] == [10.0, 20.0, 30.0]
    assert [e.time for e in merge_events(kvs, P, member="node1", since=15).events] == [20.0]


def test_since_takes_a_duration_or_a_time() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == now.timestamp() - 7200
    assert parse_since("90", now) == now.timestamp() - 90
    assert parse_since("30min", now) == now.timestamp() - 1800
    assert (
        parse_since("2026-11-30T03:00+00:00", now)
        == datetime(2026, 11, 30, 3, tzinfo=UTC).timestamp()
    )
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", now)


async def test_the_ring_keeps_the_newest_and_the_next_sequence_continues() -> None:
    backend = MemoryKV(MemoryStore(), "t")
    for seq in range(EVENTS_PER_MEMBER + 5):
        await write_event(backend, P, event(seq=seq, time=float(seq)), budget=1)
    read = await read_events(backend, P, budget=1)
    assert len(read.events) == EVENTS_PER_MEMBER
    assert read.events[0].seq == 5 and read.events[-1].seq == EVENTS_PER_MEMBER + 4
    assert await last_seq(backend, P, "node1", budget=1) == EVENTS_PER_MEMBER + 4
    assert await last_seq(backend, P, "node2", budget=1) == -1


async def test_the_cluster_view_never_holds_events() -> None:
    store = MemoryStore()
    dcs = MemoryDCS(store, "node1", ttl=10, retry_timeout=1)
    store.txn([], [Put(P + b"events/node2/0000", encode_event(event("node2")))], [])
    await dcs.open()
    try:
        await dcs.write_event(event("node1"))
        assert not any(k.startswith("events/") for k in dcs.raw())
        await dcs.refresh()
        assert not any(k.startswith("events/") for k in dcs.raw())
        read = await dcs.read_events()
        assert [e.member for e in read.events] == ["node1", "node2"]  # same time: by member
    finally:
        await dcs.close()
