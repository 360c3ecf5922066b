"""Logical slot copies on real PostgreSQL 15: a replica copies the primary's slot only
with the WAL it needs, then advances it, never past where the primary's consumer got."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from pgnodes import Node, Nodes, dynamic, wait_status

from haagent.postgres.errors import PostgresError
from haagent.postgres.lsn import parse_lsn
from haagent.postgres.slots import SlotAdvance, SlotChanges, SlotSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CDC = SlotSpec("cdc", "logical", "postgres", "test_decoding")


async def confirmed(node: Node) -> int:
    rows = await node.sql(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdc'"
    )
    return parse_lsn(str(rows[0][0]))


async def test_a_replica_copies_a_logical_slot_and_advances_it_never_past_the_primary(
    nodes: Nodes,
) -> None:
    started = time.monotonic()
    dyn = replace(
        dynamic(wal_level="logical", wal_keep_size=0),
        slots={"cdc": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}},
    )
    primary = nodes.make("node1", "127.0.0.11", dyn=dyn)
    replica = nodes.make("node2", "127.0.0.12", dyn=dyn)
    await primary.pg.bootstrap(timeout=120)
    await primary.pg.change_slots(SlotChanges(create=(SlotSpec("node2"),)))
    # The slot is made before the replica is cloned: at first it needs WAL the clone lacks.
    await primary.sql("SELECT pg_create_logical_replication_slot('cdc', 'test_decoding')")
    await primary.sql("CREATE TABLE t (id int)")
    for _ in range(2):
        await primary.sql("INSERT INTO t VALUES (1); SELECT pg_switch_wal()")
    await primary.sql("CHECKPOINT")
    await replica.pg.create_replica([primary.upstream], timeout=300)
    await replica.pg.start_on_disk(timeout=60)
    await wait_status(replica, lambda s: s.receiver_streaming, "streaming")
    # A standby keeping copies of logical slots sends feedback (catalog rows kept for them).
    assert (await replica.sql("SHOW hot_standby_feedback"))[0][0] == "on"

    with pytest.raises(PostgresError, match=r"cdc needs WAL from .* this replica's oldest is"):
        await replica.pg.copy_logical_slots(primary.upstream, [CDC])
    assert (await replica.pg.status()).slots == ()  # nothing copied, PostgreSQL not restarted

    # The consumer reads: the slot moves past what the replica lacks, and is copied.
    for _ in range(3):  # running-xacts records (checkpoints) for the slot to restart from
        await primary.sql("INSERT INTO t VALUES (2); CHECKPOINT")
        await primary.sql("SELECT count(*) FROM pg_logical_slot_get_changes('cdc', NULL, NULL)")
    outcome = await replica.pg.copy_logical_slots(primary.upstream, [CDC])
    assert outcome.startswith("copied cdc from node1")
    await wait_status(replica, lambda s: s.receiver_streaming, "streaming after the copy")
    copied = await confirmed(replica)
    assert copied == await confirmed(primary)

    # More changes, read on the primary; the replica's copy follows, never beyond.
    await primary.sql("INSERT INTO t SELECT generate_series(1, 1000)")
    await primary.sql("SELECT count(*) FROM pg_logical_slot_get_changes('cdc', NULL, NULL)")
    target = await confirmed(primary)
    await wait_status(replica, lambda s: (s.replay_lsn or 0) >= target, "replayed")
    await primary.sql("INSERT INTO t SELECT generate_series(1, 1000)")  # not read yet
    advance = SlotAdvance("cdc", "logical", "postgres", target)
    assert await replica.pg.change_slots(SlotChanges(advance=(advance,))) == (
        "handed to the background"
    )
    deadline = time.monotonic() + 30
    while (now := await confirmed(replica)) < target:
        assert time.monotonic() < deadline, f"the copy stays at {now:X}, not {target:X}"
        await asyncio.sleep(0.1)
    assert now == target  # exactly where the consumer got, not where the primary's WAL is
    print(f"\nlogical slot copy on PostgreSQL: {time.monotonic() - started:.1f}s")
    await replica.pg.close()
    await primary.pg.close()
