"""Bootstrap, a pg_basebackup replica streaming with its slot, promotion."""

from __future__ import annotations

import asyncio
import os
import stat
import time

import pytest
from pgnodes import Nodes, wait_status

from haagent.postgres.model import Upstream
from haagent.postgres.slots import SlotChanges, SlotSpec, slot_name
from haagent.postgres.sync_names import synchronous_standby_names

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_bootstrap_then_a_replica_streams_with_its_slot(nodes: Nodes) -> None:
    primary = nodes.make("node1", "127.0.0.11")
    replica = nodes.make("node2", "127.0.0.12")

    empty = await primary.pg.status()
    assert not empty.data_dir_exists and not empty.running

    sysid = await primary.pg.bootstrap(timeout=120)
    status = await primary.pg.status()
    assert status.running and status.accepting and not status.in_recovery
    assert status.system_identifier == sysid and status.timeline == 1
    assert status.server_version is not None and 150000 <= status.server_version < 160000
    assert (primary.settings.pgpass.stat().st_mode & 0o777) == 0o600
    conf = (primary.settings.data_dir / "postgresql.conf").read_text()
    assert conf.startswith("# Managed by haagent")
    assert "include_if_exists 'postgresql.base.conf'" in conf
    assert (primary.settings.data_dir / "postgresql.base.conf").exists()
    assert "su-secret" not in conf and "rep-secret" not in conf

    # Idempotent: a second start is a no-op.
    assert await primary.pg.start_on_disk() is False
    made = SlotChanges(create=(SlotSpec(slot_name(replica.name)),))
    assert await primary.pg.change_slots(made) == "created node2"
    assert await primary.pg.change_slots(made) == "nothing changed"  # it exists
    await primary.sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")

    started = time.monotonic()
    source = await replica.pg.create_replica([primary.upstream], timeout=300)
    print(f"\nbasebackup: {time.monotonic() - started:.2f}s")
    assert source == primary.upstream
    assert await replica.pg.start_on_disk(timeout=60)
    status = await wait_status(replica, lambda s: s.receiver_streaming, "streaming")
    assert status.in_recovery and status.system_identifier == sysid
    assert status.primary_conninfo_host == primary.host

    slots = {slot.name: slot for slot in (await primary.pg.status()).slots}
    assert slots["node2"].active
    pstatus = await wait_status(primary, lambda s: len(s.replication) == 1, "a replication row")
    row = pstatus.replication[0]
    assert row.application_name == "node2" and row.state == "streaming"
    assert row.sync_state == "async"

    await primary.sql("INSERT INTO t VALUES (2)")
    deadline = time.monotonic() + 30
    while (await replica.sql("SELECT count(*) FROM t"))[0][0] != 2:
        assert time.monotonic() < deadline, "the row did not reach the replica"
        await asyncio.sleep(0.05)

    # Synchronous replication: chosen standbys, read back from pg_stat_replication.
    value = synchronous_standby_names(["node2"], 1, "FIRST")
    await primary.pg.set_synchronous_standby_names(value)
    assert value == 'FIRST 1 ("node2")'
    status = await wait_status(
        primary, lambda s: s.replication and s.replication[0].sync_state == "sync", "sync"
    )
    assert status.synchronous_standby_names == value
    await primary.sql("INSERT INTO t VALUES (3)")  # would hang if the standby did not confirm
    await primary.pg.set_synchronous_standby_names(synchronous_standby_names([], 1))

    # Promote the replica: fast, and a no-op the second time.
    started = time.monotonic()
    assert await replica.pg.promote(timeout=30)
    elapsed = time.monotonic() - started
    print(f"promote: {elapsed * 1000:.0f} ms")
    status = await replica.pg.status()
    assert not status.in_recovery and status.timeline == 2
    assert not (replica.settings.data_dir / "standby.signal").exists()
    assert await replica.pg.promote() is False
    await replica.sql("INSERT INTO t VALUES (4)")

    mode = stat.S_IMODE(os.stat(replica.settings.pgpass).st_mode)
    assert mode == 0o600


async def test_a_fresh_clone_checked_against_its_leader_is_never_forked(nodes: Nodes) -> None:
    """A base backup's pg_control says "in production": it must recover as a standby only."""
    primary = nodes.make("node1", "127.0.0.11")
    replica = nodes.make("node2", "127.0.0.12")
    await primary.pg.bootstrap(timeout=120)
    await primary.pg.change_slots(SlotChanges(create=(SlotSpec("node2"),)))
    await replica.pg.create_replica([primary.upstream], timeout=300)
    # Another name for the same server: no shortcut, the full divergence check runs.
    alias = Upstream("node1-alias", primary.host, primary.port)
    outcome = await replica.pg.follow(alias, timeout=60)
    assert "rewound" not in outcome
    await wait_status(replica, lambda s: s.receiver_streaming, "streaming")
    await primary.sql("CREATE TABLE t AS SELECT 1 AS id")
    await primary.pg.stop("fast")
    assert await replica.pg.promote(timeout=30)
    assert await replica.sql("SELECT id FROM t") == [(1,)]
