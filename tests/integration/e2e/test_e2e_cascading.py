"""Cascading replication end to end (`replicatefrom`), on real etcd and PostgreSQL, with
slots (the default), under a writer: node3 is tagged `replicatefrom: node2` (by a reload)
and streams from node2 through its own slot, which node2 holds; the leader keeps a copy,
which it moves as node3 reports its replay (it retains no WAL without bound); node2's node
is lost and node3 streams from the leader, through that copy; node2 comes back and node3
streams from it again; every acknowledged write is on node3 at the end.

node2 and node3 are tagged nofailover so that node1 stays the leader throughout (and node2
keeps only the slots of those streaming from it).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from haagent.config.model import Address
from haagent.postgres.lsn import parse_lsn_or_none
from haagent_lab.lab.cluster import LAB_PASSWORD, LabCluster, LabNode
from haagent_lab.lab.workload import Writer, multi_host_dsn
from support.labs import streams_from

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DYNAMIC = {"ttl": 10, "loop_wait": 2, "retry_timeout": 3}


def ids_on(lab: LabCluster, node: str, table: str) -> set[int]:
    with psycopg.connect(lab.nodes[node].dsn, autocommit=True, connect_timeout=3) as conn:
        return {int(str(r[0])) for r in conn.execute(f"SELECT id FROM {table}").fetchall()}


def row(lab: LabCluster, node: str, sql: str, *args: Any) -> tuple[Any, ...] | None:
    """The first row of `sql` on `node`; None when there is none or the node does not answer."""
    try:
        with psycopg.connect(lab.nodes[node].dsn, autocommit=True, connect_timeout=2) as conn:
            return conn.execute(sql, args).fetchone()
    except psycopg.Error:
        return None


def receiver(lab: LabCluster, node: str) -> tuple[str, str] | None:
    """(the host `node`'s WAL receiver streams from, the slot it uses), from
    pg_stat_wal_receiver; None while it does not stream."""
    found = row(lab, node, "SELECT sender_host, slot_name FROM pg_stat_wal_receiver "
                "WHERE status = 'streaming'")  # fmt: skip
    return (str(found[0]), str(found[1])) if found else None


def slot(lab: LabCluster, node: str, name: str) -> tuple[bool, int | None] | None:
    """(active, restart_lsn) of physical slot `name` on `node`; None when it has none."""
    found = row(lab, node, "SELECT active, restart_lsn::text FROM pg_replication_slots "
                "WHERE slot_name = %s AND slot_type = 'physical'", name)  # fmt: skip
    return (bool(found[0]), parse_lsn_or_none(found[1])) if found else None


def on(lab: LabCluster, upstream: str) -> bool:
    """node3 streams from `upstream` through its slot there (pg_stat_wal_receiver on node3,
    the slot active on `upstream`, pg_stat_replication there as published)."""
    host = lab.nodes[upstream].host
    return (
        receiver(lab, "node3") == (host, "node3")
        and (slot(lab, upstream, "node3") or (False, None))[0]
        and "node3" in streams_from(lab, upstream)
    )


def test_replicatefrom_follows_the_named_member_and_falls_back_to_the_leader(
    lab_factory: Callable[..., LabCluster],
) -> None:
    def configure(node: LabNode, config: dict[str, Any]) -> None:
        if node.name != "node1":
            config["tags"]["nofailover"] = True

    lab = lab_factory(dynamic=DYNAMIC, configure=configure)
    lab.start(timeout=120)
    assert lab.leader() == "node1"
    dsn = multi_host_dsn(
        [Address(n.host, n.pg_port) for n in lab.nodes.values()], "postgres", LAB_PASSWORD
    )
    writer = Writer(dsn)
    writer.start()
    try:
        lab.nodes["node3"].tags["replicatefrom"] = "node2"
        lab.write_configs()
        agent = lab.nodes["node3"].agent
        assert agent is not None
        agent.send_signal(signal.SIGHUP)
        lab.wait_for(lambda: on(lab, "node2"), "node3 on node2 through its slot there", 60)
        # The leader's published status is at most a loop_wait old.
        lab.wait_for(lambda: streams_from(lab, "node1") == ["node2"], "node2 alone on node1", 10)

        # The leader's copy of node3's slot is not in use, and moves with node3's replay
        # (never beyond it): it keeps what node3 needs to fall back, and no more.
        def kept() -> int | None:
            found = slot(lab, "node1", "node3")
            assert found is not None, "the leader keeps no slot for node3"
            return None if found[0] else found[1]

        lab.wait_for(lambda: kept() is not None, "node3's walsender on node1 to end", 10)
        before = kept()
        assert before is not None
        lab.wait_for(lambda: (kept() or 0) > before, "node3's slot on the leader to move", 20)
        replayed = row(lab, "node3", "SELECT pg_last_wal_replay_lsn()::text")
        assert replayed is not None
        assert (kept() or 0) <= (parse_lsn_or_none(replayed[0]) or 0)

        lab.kill_agent("node2")
        lab.kill_postmaster("node2")
        lab.wait_for(lambda: on(lab, "node1"), "node3 back on the leader, through its slot", 60)
        lab.start_agent("node2")
        lab.wait_for(lambda: on(lab, "node2"), "node3 on node2 again, through its slot", 90)
        lab.wait_for(lambda: streams_from(lab, "node1") == ["node2"], "node2 alone on node1", 10)
        time.sleep(0.5)
        assert writer.acked[-1][1] > time.monotonic() - 1.0, "writes did not resume"
    finally:
        writer.stop()
    acked = {i for i, _ in writer.acked}
    assert len(acked) > 100
    lab.wait_for(lambda: acked <= ids_on(lab, "node3", writer.table), "node3 to replay all", 30)
    assert writer.lost(dsn) == []
