"""The HA loop's PostgresControl port (`LocalPostgres`) on real PostgreSQL."""

from __future__ import annotations

import pytest
from pgnodes import Nodes, diverge, pair, rows, wait_status

from haagent.postgres.local import PostgresControl
from haagent.postgres.model import TimelineSwitch, Upstream
from haagent.postgres.slots import SlotChanges, SlotDrop, SlotSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_the_loop_port_drives_a_failover(nodes: Nodes) -> None:
    node1 = nodes.make("node1", "127.0.0.11")
    node2 = nodes.make("node2", "127.0.0.12")
    p1: PostgresControl = node1.pg
    p2: PostgresControl = node2.pg
    up1 = Upstream("node1", node1.host, node1.port)
    up2 = Upstream("node2", node2.host, node2.port)

    p1.set_dynamic_config(node1.pg.dynamic)  # nothing to apply before a cluster exists
    assert not node1.settings.data_dir.exists()
    await p1.bootstrap()
    await node1.sql("SELECT pg_create_physical_replication_slot('stray')")
    made = SlotChanges((SlotDrop("stray", None, "not needed"),), (SlotSpec("node2"),))
    assert await p1.change_slots(made) == "dropped stray (not needed); created node2"
    assert {slot.name for slot in (await p1.status()).slots} == {"node2"}

    await p2.create_replica([up1])
    await p2.start("replica", up1)
    await wait_status(node2, lambda s: s.receiver_streaming, "streaming")
    await p1.set_synchronous_standby_names('ANY 1 ("node2")')
    await wait_status(node1, lambda s: bool(s.replication) and s.replication[0].sync_state
                      == "quorum", "quorum sync")  # fmt: skip
    await p1.set_synchronous_standby_names("")
    assert await p1.last_timeline_switch() is None

    await p1.checkpoint()
    await p1.stop("fast")
    try:
        await p2.start("primary", None)  # a running standby: promoted
    except Exception:
        print((node2.settings.data_dir / "haagent-postmaster.log").read_text()[-3000:])
        raise
    switch = await p2.last_timeline_switch()
    assert isinstance(switch, TimelineSwitch) and switch.timeline == 1 and switch.lsn > 0
    await p2.change_slots(SlotChanges(create=(SlotSpec("node1"),)))
    await p1.start("replica", up2)
    status = await wait_status(node1, lambda s: s.receiver_streaming, "node1 streaming")
    assert status.timeline == 2 and status.in_recovery

    # Restarting as primary from a standby on disk promotes rather than ending recovery.
    await p1.stop("fast")
    await p1.restart("primary", None)
    status = await p1.status()
    assert not status.in_recovery and status.timeline == 3
    await p1.close()
    await p2.close()


async def test_reinit_after_impossible_rewind_only_when_configured(nodes: Nodes) -> None:
    primary, replica = await pair(
        nodes, use_pg_rewind=False, remove_data_directory_on_diverged_timelines=True
    )
    await diverge(primary, replica)
    port: PostgresControl = primary.pg
    await port.demote("fast", Upstream("node2", replica.host, replica.port))
    status = await wait_status(primary, lambda s: s.receiver_streaming, "streaming after reinit")
    assert status.timeline == 2
    assert await rows(primary) == [(1, "both"), (2, "new primary")]
