"""Three nodes: the primary crashes, a replica is promoted, the others follow it."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from pgnodes import Node, Nodes, wait_status

from haagent.postgres.errors import UpstreamNotReady
from haagent.postgres.slots import SlotChanges, SlotSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def count(node: Node) -> int:
    return int((await node.sql("SELECT count(*) FROM t"))[0][0])


async def wait_count(node: Node, expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (got := await count(node)) != expected:
        assert time.monotonic() < deadline, f"{node.name} has {got} rows, not {expected}"
        await asyncio.sleep(0.1)


async def test_replicas_follow_the_new_leader_after_a_crash(nodes: Nodes) -> None:
    node1 = nodes.make("node1", "127.0.0.11")
    node2 = nodes.make("node2", "127.0.0.12")
    node3 = nodes.make("node3", "127.0.0.13")
    await node1.pg.bootstrap(timeout=120)
    await node1.pg.change_slots(SlotChanges(create=tuple(map(SlotSpec, ("node2", "node3")))))
    await node1.sql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)")
    for replica in (node2, node3):
        await replica.pg.create_replica([node1.upstream], timeout=300)
        await replica.pg.start_on_disk(timeout=60)
        await wait_status(replica, lambda s: s.receiver_streaming, "streaming")
    for replica in (node2, node3):
        await wait_count(replica, 100)

    # The primary crashes; node2 is promoted.
    pid = (await node1.pg.status()).postmaster_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await asyncio.wait_for(node1.pg.postmaster_died.wait(), 5)
    # node2 holds the key but is not promoted yet: following it is postponed, nothing changes.
    with pytest.raises(UpstreamNotReady, match="still in recovery"):
        await node3.pg.follow(node2.upstream, timeout=30)
    assert await node2.pg.promote(timeout=30)
    await node2.pg.change_slots(SlotChanges(create=tuple(map(SlotSpec, ("node1", "node3")))))
    await node2.sql("INSERT INTO t SELECT generate_series(101, 150)")

    # A running replica follows with a reload, no restart.
    before = (await node3.pg.status()).postmaster_pid
    outcome = await node3.pg.follow(node2.upstream, timeout=60)
    print(f"\nnode3: {outcome}")
    assert "reloaded" in outcome
    status = await wait_status(node3, lambda s: s.receiver_streaming and s.timeline == 2, "TL 2")
    assert status.postmaster_pid == before
    assert status.primary_conninfo_host == node2.host
    await wait_count(node3, 150)
    assert await node3.pg.follow(node2.upstream) == f"already following {node2.upstream}"

    # The crashed old primary goes through crash recovery, then rejoins as a replica.
    assert not (await node1.pg.status()).running
    outcome = await node1.pg.follow(node2.upstream, timeout=60)
    print(f"node1: {outcome}")
    await wait_status(node1, lambda s: s.receiver_streaming and s.timeline == 2, "TL 2")
    await wait_count(node1, 150)
    assert {s.application_name for s in (await node2.pg.status()).replication} == {
        "node1",
        "node3",
    }

    # reinit: an explicit re-clone of node3 from node2.
    started = time.monotonic()
    source = await node3.pg.reinit([node2.upstream], timeout=300)
    print(f"reinit of node3 from {source}: {time.monotonic() - started:.2f}s")
    await wait_status(node3, lambda s: s.receiver_streaming, "streaming after reinit")
    await wait_count(node3, 150)
