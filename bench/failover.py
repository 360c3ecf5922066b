"""Failover benchmark: write downtime and lost writes per fault on a real three-node cluster.

Run as root or as the postgres OS user (the agents and PostgreSQL run as postgres):

    .venv/bin/python bench/failover.py [--ttl 10 --loop-wait 2 --retry-timeout 3] [--sync]
                                       [--rounds 3] [--json FILE]

A writer inserts a row every 20 ms through a libpq multi-host connection string
with target_session_attrs=read-write.  For each scenario it prints the longest
gap between acknowledged writes (write downtime), the acknowledged writes
missing at the end (lost), and the time until the cluster is fully healthy
again.  This is a measurement, not a test: it never fails on a slow machine.

The pieces (`new_lab`, `start_writer`, `fault_round`, `lost_ids`, `SCENARIOS`)
are also used by bench/suite.py.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from haagent.config.model import Address
from haagent_lab.lab.cluster import LAB_PASSWORD, LabCluster
from haagent_lab.lab.workload import Writer, multi_host_dsn


class FaultError(RuntimeError):
    """A fault could not be caused (for example the leader refused the switchover)."""


def switchover(lab: LabCluster, old: str, patience: float = 30.0) -> None:
    """POST /switchover to `old` for another node; retries while the leader answers 412.

    A 412 means the leader sees no fit candidate yet (its answer says why);
    every refusal is printed, and after `patience` seconds it is an error.
    """
    candidate = next(n for n in lab.nodes if n != old)
    body = {"leader": old, "candidate": candidate}
    deadline = time.monotonic() + patience
    while True:
        reply = lab.nodes[old].call("POST", "/switchover", body, 60)
        if reply.ok:
            return
        if reply.status != 412 or time.monotonic() > deadline:
            raise FaultError(f"switchover {old} -> {candidate}: {reply.status} {reply.message}")
        print(f"  switchover refused, retrying: {reply.status} {reply.message}", file=sys.stderr)
        time.sleep(0.5)


def postmaster_crash(lab: LabCluster, old: str) -> None:
    """SIGKILL the primary's postmaster; returns once a new one runs on that node.

    (Until then the agents' REST API may still report the old, healthy state.)
    """
    killed = lab.kill_postmaster(old)
    lab.wait_for(
        lambda: lab.nodes[old].postmaster_pid() not in (None, killed), "a new postmaster", 120
    )


def node_loss(lab: LabCluster, old: str) -> None:
    lab.kill_agent(old)
    lab.kill_postmaster(old)
    lab.wait_for(lambda: lab.leader() not in (None, old), "a new leader", 120)
    lab.start_agent(old)


SCENARIOS: dict[str, Callable[[LabCluster, str], None]] = {
    "switchover": switchover,
    "postmaster_crash": postmaster_crash,
    "node_loss": node_loss,
}


def new_lab(
    *,
    ttl: int = 10,
    loop_wait: int = 2,
    retry_timeout: int = 3,
    sync: bool = False,
    prefix: str = "haagent-bench-",
    hosts: Sequence[str] = ("127.0.0.11", "127.0.0.12", "127.0.0.13"),
) -> LabCluster:
    """A three-node lab (not started) on free ports in a new temporary directory.

    As root, the directory belongs to the postgres OS user, who runs the agents.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    dynamic = {
        "ttl": ttl,
        "loop_wait": loop_wait,
        "retry_timeout": retry_timeout,
        "synchronous_mode": sync,
    }
    return LabCluster(
        base, hosts=tuple(hosts), pg_port=None, api_port=None, etcd_ports=None, user=user,
        dynamic=dynamic,
    )  # fmt: skip


def start_writer(lab: LabCluster) -> tuple[Writer, str]:
    """A running Writer through every node (libpq finds the primary) and its DSN."""
    dsn = multi_host_dsn(
        [Address(n.host, n.pg_port) for n in lab.nodes.values()], "postgres", LAB_PASSWORD
    )
    writer = Writer(dsn)
    writer.start()
    return writer, dsn


def lost_ids(writer: Writer, dsn: str, attempts: int = 5) -> set[int]:
    """Acknowledged ids missing from the current primary's table, while the writer runs.

    The acknowledged ids are taken before the query, so a write acknowledged
    meanwhile is not counted as lost.
    """
    acked = [i for i, _ in list(writer.acked)]
    for attempt in range(attempts):
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                rows = conn.execute(f"SELECT id FROM {writer.table}").fetchall()
            break
        except psycopg.Error:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    present = {int(str(r[0])) for r in rows}
    return {i for i in acked if i not in present}


def fault_round(
    lab: LabCluster, writer: Writer, fault: Callable[[LabCluster, str], None]
) -> dict[str, float]:
    """One fault on the current leader: write downtime and time until healthy again."""
    time.sleep(1.0)
    old = lab.leader()
    if old is None:
        lab.wait_for(lambda: lab.leader() is not None, "a leader before the fault", 60)
        old = lab.leader()
    assert old is not None
    t0 = time.monotonic()
    fault(lab, old)
    lab.wait_healthy(180)
    to_healthy = time.monotonic() - t0
    time.sleep(1.0)
    return {"write_downtime": writer.downtime_since(t0), "time_to_healthy": to_healthy}


def run(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    lab = new_lab(
        ttl=args.ttl, loop_wait=args.loop_wait, retry_timeout=args.retry_timeout, sync=args.sync
    )
    results: dict[str, list[dict[str, float]]] = {}
    try:
        started = time.monotonic()
        lab.start(timeout=180)
        results["bootstrap"] = [{"seconds": time.monotonic() - started}]
        writer, dsn = start_writer(lab)
        try:
            lost: set[int] = set()
            for name, fault in SCENARIOS.items():
                for _ in range(args.rounds):
                    row = fault_round(lab, writer, fault)
                    now_lost = lost_ids(writer, dsn)
                    row["lost"] = len(now_lost - lost)
                    lost |= now_lost
                    results.setdefault(name, []).append(row)
                    print(f"  {name}: {row}", file=sys.stderr)
        finally:
            writer.stop()
        results["lost_writes"] = [
            {"acknowledged": len(writer.acked), "lost": len(writer.lost(dsn))}
        ]
    finally:
        lab.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ttl", type=int, default=10)
    parser.add_argument("--loop-wait", type=int, default=2)
    parser.add_argument("--retry-timeout", type=int, default=3)
    parser.add_argument("--sync", action="store_true", help="synchronous_mode: on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    results = run(args)
    print(f"\nttl={args.ttl} loop_wait={args.loop_wait} retry_timeout={args.retry_timeout} "
          f"synchronous_mode={'on' if args.sync else 'off'}")  # fmt: skip
    print(f"{'scenario':<18} {'write downtime (max / median)':>30} {'healthy again (median)':>24}"
          f" {'lost':>5}")  # fmt: skip
    for name in SCENARIOS:
        rows = results.get(name, [])
        down = [r["write_downtime"] for r in rows]
        heal = [r["time_to_healthy"] for r in rows]
        lost = sum(int(r["lost"]) for r in rows)
        print(f"{name:<18} {max(down):>14.3f}s / {statistics.median(down):.3f}s "
              f"{statistics.median(heal):>22.1f}s {lost:>5}")  # fmt: skip
    boot = results["bootstrap"][0]["seconds"]
    total = results["lost_writes"][0]
    print(f"bootstrap to healthy: {boot:.1f}s; acknowledged writes: {total['acknowledged']}, "
          f"lost: {total['lost']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
