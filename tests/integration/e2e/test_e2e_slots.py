"""Replication slots that survive failover, end to end on three real nodes.

One lab serves every check, in sequence (CI time): a permanent logical slot `cdc`
(test_decoding) read by pg_recvlogical while a writer inserts numbered rows; a
switchover, then a leader power loss while a replica is stopped; the consumer
reconnects to each new primary; across the run it has seen every committed row at
least once and none that was not committed.  The stopped replica comes back and
streams from its slot on the new primary, without a rebuild (`wal_keep_size` 0: only
its slot kept the WAL it needs).  Last, `cdc` is made lost on purpose (a small
`max_slot_wal_keep_size`) and is reported, and not made again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from haagent.config.model import Address
from haagent_lab.lab import processes
from haagent_lab.lab.cluster import LAB_PASSWORD, PG_BIN, LabCluster
from haagent_lab.lab.workload import Writer, multi_host_dsn

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLOT = "cdc"
ROW = re.compile(r"table public\.haagent_writer: INSERT: id\[bigint\]:(\d+)")


def sql(cluster: LabCluster, node: str, text: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(cluster.nodes[node].dsn, autocommit=True) as conn:
        cursor = conn.execute(text, args or None)
        return cursor.fetchall() if cursor.description else []


def slot_on(cluster: LabCluster, node: str) -> tuple[str, str | None] | None:
    """(confirmed_flush_lsn, wal_status) of `cdc` on `node`, None when it has none."""
    try:
        rows = sql(
            cluster, node,
            "SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots "
            "WHERE slot_name = %s AND slot_type = 'logical'", SLOT,
        )  # fmt: skip
    except psycopg.Error:
        return None
    return (rows[0][0], rows[0][1]) if rows else None


class Consumer:
    """pg_recvlogical on one node, one output file per round; started again by the test."""

    def __init__(self, cluster: LabCluster) -> None:
        self.cluster = cluster
        self.rounds: list[tuple[str, Path]] = []
        self.process: processes.Process | None = None

    def start(self, node: str) -> None:
        self.stop()
        n = self.cluster.nodes[node]
        out = self.cluster.base / f"consumer-{len(self.rounds)}.txt"
        dsn = f"host={n.host} port={n.pg_port} user=postgres dbname=postgres connect_timeout=2"
        argv = [str(PG_BIN / "pg_recvlogical"), "-d", dsn, "--slot", SLOT, "--start",
                "--no-loop", "-f", str(out), "-F", "1", "-s", "1",
                "-o", "include-xids=0", "-o", "skip-empty-xacts=1"]  # fmt: skip
        env = {**os.environ, "PGPASSWORD": LAB_PASSWORD}
        log = self.cluster.base / f"consumer-{len(self.rounds)}.log"
        self.process = processes.start("pg_recvlogical", argv, log, env=env)
        self.rounds.append((node, out))

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=10, sig=2)  # SIGINT: pg_recvlogical flushes and exits
            self.process = None

    def seen(self, index: int | None = None) -> list[int]:
        rounds = self.rounds if index is None else [self.rounds[index]]
        ids: list[int] = []
        for _, path in rounds:
            if path.exists():
                ids += [int(m) for m in ROW.findall(path.read_text())]
        return ids


def test_a_logical_consumer_survives_switchover_and_power_loss(
    lab_factory: Callable[..., LabCluster],
) -> None:
    t_start = time.monotonic()
    cluster = lab_factory(
        dynamic={
            "ttl": 10, "loop_wait": 2, "retry_timeout": 3,
            "postgresql": {
                "use_pg_rewind": True, "use_slots": True,
                "parameters": {"wal_level": "logical", "hot_standby": "on",
                               "wal_log_hints": "on", "max_wal_senders": 10,
                               "max_replication_slots": 10, "wal_keep_size": 0},
            },
            "slots": {SLOT: {"type": "logical", "database": "postgres",
                             "plugin": "test_decoding"}},
        }
    )  # fmt: skip
    cluster.start(timeout=120)
    leader = cluster.leader()
    assert leader is not None
    dsn = multi_host_dsn(
        [Address(n.host, n.pg_port) for n in cluster.nodes.values()], "postgres", LAB_PASSWORD
    )
    writer = Writer(dsn)
    writer.prepare()
    cluster.wait_for(lambda: slot_on(cluster, leader) is not None, "cdc on the primary", 60)
    consumer = Consumer(cluster)
    consumer.start(leader)
    writer.start()
    try:
        # A copy on each replica (each restarts once), once the consumer has moved the slot
        # past the WAL the replica has.
        copies = lambda: all(slot_on(cluster, n) for n in cluster.nodes)  # noqa: E731
        cluster.wait_for(copies, "a copy of cdc on every replica", 60)
        cluster.wait_healthy(60)
        t_ready = time.monotonic()
        # Round 0 -> 1: a switchover; the consumer goes on on the new primary.
        time.sleep(3)
        candidate = next(n for n in cluster.nodes if n != leader)
        reply = cluster.nodes[leader].call(
            "POST", "/switchover", {"leader": leader, "candidate": candidate}, timeout=60
        )
        assert reply.status == 200, reply.text
        cluster.wait_for(lambda: cluster.leader() == candidate, f"{candidate} to lead", 60)
        consumer.start(candidate)
        cluster.wait_healthy(60)
        time.sleep(3)

        # Round 1 -> 2: a replica stopped for a while, then the leader's power loss.
        stopped = next(n for n in cluster.nodes if n not in (leader, candidate))
        marker = cluster.nodes[stopped].data_dir / "haagent-test-marker"
        cluster.stop_agent(stopped)
        cluster.stop_postgres(stopped)
        marker.write_text("kept unless the data directory is rebuilt\n")
        sql(cluster, candidate, "SELECT pg_switch_wal()")  # WAL it misses, kept by its slot
        time.sleep(2)
        cluster.kill_agent(candidate)
        cluster.kill_postmaster(candidate)
        cluster.wait_for(lambda: cluster.leader() == leader, f"{leader} to lead again", 60)
        consumer.start(leader)
        # More WAL, and a checkpoint, before the stopped replica comes back: only its
        # slot on the new primary keeps what it needs (wal_keep_size 0).
        for _ in range(2):
            time.sleep(1)
            sql(cluster, leader, "SELECT pg_switch_wal()")
        sql(cluster, leader, "CHECKPOINT")
        stopped_log = cluster.nodes[stopped].base / "haagent.log"
        log_offset = stopped_log.stat().st_size
        cluster.start_agent(stopped)
        cluster.start_agent(candidate)
        cluster.wait_healthy(120)
        assert marker.exists(), f"{stopped} was rebuilt instead of streaming from its slot"
        since = stopped_log.read_bytes()[log_offset:].decode()
        assert "creating_replica" not in since and "starting_replica" in since
        time.sleep(3)
    finally:
        writer.stop()
    # Every committed row, at least once; none that was not committed.
    committed = {int(r[0]) for r in sql(cluster, leader, "SELECT id FROM haagent_writer")}
    acked = {i for i, _ in writer.acked}
    cluster.wait_for(
        lambda: committed <= set(consumer.seen()), "the consumer to see every committed row", 30
    )
    consumer.stop()
    seen = consumer.seen()
    counts = [(node, len(consumer.seen(i)), len(set(consumer.seen(i))))
              for i, (node, _) in enumerate(consumer.rounds)]  # fmt: skip
    print(f"consumer rounds (node, rows, distinct): {counts}; committed {len(committed)}, "
          f"acknowledged {len(acked)}, lost acknowledged {len(acked - committed)}, "
          f"seen {len(seen)} ({len(set(seen))} distinct)")  # fmt: skip
    assert committed <= set(seen)
    assert set(seen) <= committed | acked, "the consumer saw a row that was never committed"
    t_rounds = time.monotonic()

    # A slot made lost on purpose: reported, never made again at a later position.
    before = slot_on(cluster, leader)
    assert before is not None
    reply = cluster.nodes[leader].call(
        "PATCH", "/config", {"postgresql": {"parameters": {"max_slot_wal_keep_size": "16MB"}}}
    )
    assert reply.status == 200, reply.text
    cluster.wait_for(
        lambda: sql(cluster, leader, "SHOW max_slot_wal_keep_size")[0][0] == "16MB",
        "max_slot_wal_keep_size to be applied", 30,
    )  # fmt: skip
    for _ in range(4):
        sql(cluster, leader, "CREATE TABLE IF NOT EXISTS filler (x int); INSERT INTO filler "
                             "SELECT generate_series(1, 1000)")  # fmt: skip
        sql(cluster, leader, "SELECT pg_switch_wal()")
    sql(cluster, leader, "CHECKPOINT")
    cluster.wait_for(lambda: (slot_on(cluster, leader) or ("", ""))[1] == "lost", "cdc lost", 30)
    leader_log = cluster.nodes[leader].base / "haagent.log"
    cluster.wait_for(
        lambda: re.search(rf"replication_slot_lost: the logical replication slot {SLOT} ",
                          leader_log.read_text()) is not None,
        "the lost slot's log line", 30,
    )  # fmt: skip
    time.sleep(5)  # a few HA cycles: still the same lost slot, not a new one
    after = slot_on(cluster, leader)
    assert after is not None and after[1] == "lost" and after[0] == before[0]
    code, metrics = cluster.nodes[leader].api("/metrics")
    assert code == 200
    assert re.search(r'^haagent_replication_slot_lost\{[^}]*slot="cdc"[^}]*\} 1\.0$', metrics, re.M)
    assert re.search(r'^haagent_replication_slot_lag_bytes\{[^}]*slot="cdc"', metrics, re.M)
    listing = subprocess.run(
        [sys.executable, "-m", "haagent.cli.main", "-c", str(cluster.nodes[leader].config_path),
         "list"], capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert f"Replication slot cdc on {leader} is lost (replication_slot_lost)" in listing.stdout
    print(f"slot timings: lab ready {t_ready - t_start:.1f}s, rounds {t_rounds - t_ready:.1f}s, "
          f"lost check {time.monotonic() - t_rounds:.1f}s")  # fmt: skip
