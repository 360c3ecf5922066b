"""Cascading replication end to end (`replicatefrom`), on real etcd and PostgreSQL, under
a writer: node3 is tagged `replicatefrom: node2` (by a reload) and streams from node2;
node2's node is lost and node3 streams from the leader; node2 comes back and node3 streams
from it again; every acknowledged write is on node3 at the end.

`postgresql.use_slots: false`: with slots, only the leader keeps them so far, and
`replicatefrom` is not honoured (`core/topology.py`).  node2 and node3 are tagged
nofailover so that node1 stays the leader throughout.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from haagent.config.model import Address
from haagent_lab.lab.cluster import LAB_PASSWORD, LabCluster, LabNode
from haagent_lab.lab.workload import Writer, multi_host_dsn
from support.labs import streams_from

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DYNAMIC = {"ttl": 10, "loop_wait": 2, "retry_timeout": 3, "postgresql": {"use_slots": False}}


def ids_on(lab: LabCluster, node: str, table: str) -> set[int]:
    with psycopg.connect(lab.nodes[node].dsn, autocommit=True, connect_timeout=3) as conn:
        return {int(str(r[0])) for r in conn.execute(f"SELECT id FROM {table}").fetchall()}


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
        lab.wait_for(lambda: streams_from(lab, "node2") == ["node3"], "node3 on node2", 60)
        # The leader's published status is at most a loop_wait old.
        lab.wait_for(lambda: streams_from(lab, "node1") == ["node2"], "node2 alone on node1", 10)

        lab.kill_agent("node2")
        lab.kill_postmaster("node2")
        lab.wait_for(
            lambda: streams_from(lab, "node1") == ["node3"], "node3 back on the leader", 60
        )
        lab.start_agent("node2")
        lab.wait_for(lambda: streams_from(lab, "node2") == ["node3"], "node3 on node2 again", 90)
        lab.wait_for(lambda: streams_from(lab, "node1") == ["node2"], "node2 alone on node1", 10)
        time.sleep(0.5)
        assert writer.acked[-1][1] > time.monotonic() - 1.0, "writes did not resume"
    finally:
        writer.stop()
    acked = {i for i, _ in writer.acked}
    assert len(acked) > 100
    lab.wait_for(lambda: acked <= ids_on(lab, "node3", writer.table), "node3 to replay all", 30)
    assert writer.lost(dsn) == []
