"""Failover benchmark: write downtime and lost writes per fault on a real three-node cluster.

Run as root or as the postgres OS user (the agents and PostgreSQL run as postgres):

    .venv/bin/python bench/failover.py [--ttl 10 --loop-wait 2 --retry-timeout 3] [--sync]
                                       [--rounds 3] [--json FILE]

A writer inserts a row every 20 ms through a libpq multi-host connection string
with target_session_attrs=read-write.  For each scenario it prints the longest
gap between acknowledged writes (write downtime), the acknowledged writes
missing at the end (lost), and the time until the cluster is fully healthy
again.  This is a measurement, not a test: it never fails on a slow machine.
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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from haagent.config.model import Address
from haagent.lab.cluster import LAB_PASSWORD, LabCluster
from haagent.lab.workload import Writer, multi_host_dsn


def switchover(lab: LabCluster, old: str) -> None:
    import urllib.request

    candidate = next(n for n in lab.nodes if n != old)
    body = json.dumps({"leader": old, "candidate": candidate}).encode()
    request = urllib.request.Request(
        lab.nodes[old].api_url + "/switchover", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def postmaster_crash(lab: LabCluster, old: str) -> None:
    lab.kill_postmaster(old)


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


def run(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    base = Path(tempfile.mkdtemp(prefix="haagent-bench-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        os.chown(base, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    dynamic = {
        "ttl": args.ttl,
        "loop_wait": args.loop_wait,
        "retry_timeout": args.retry_timeout,
        "synchronous_mode": args.sync,
    }
    lab = LabCluster(base, pg_port=None, api_port=None, etcd_ports=None, user=user, dynamic=dynamic)
    results: dict[str, list[dict[str, float]]] = {}
    try:
        started = time.monotonic()
        lab.start(timeout=180)
        results["bootstrap"] = [{"seconds": time.monotonic() - started}]
        dsn = multi_host_dsn(
            [Address(n.host, n.pg_port) for n in lab.nodes.values()], "postgres", LAB_PASSWORD
        )
        writer = Writer(dsn)
        writer.start()
        for name, fault in SCENARIOS.items():
            for _ in range(args.rounds):
                time.sleep(1.0)
                old = lab.leader()
                assert old is not None
                t0 = time.monotonic()
                fault(lab, old)
                lab.wait_healthy(180)
                to_healthy = time.monotonic() - t0
                time.sleep(1.0)
                results.setdefault(name, []).append(
                    {"write_downtime": writer.downtime_since(t0), "time_to_healthy": to_healthy}
                )
                print(f"  {name}: {results[name][-1]}", file=sys.stderr)
        writer.stop()
        lost = writer.lost(dsn)
        results["lost_writes"] = [{"acknowledged": len(writer.acked), "lost": len(lost)}]
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
    print(f"{'scenario':<18} {'write downtime (max / median)':>30} {'healthy again (median)':>24}")
    for name in SCENARIOS:
        rows = results.get(name, [])
        down = [r["write_downtime"] for r in rows]
        heal = [r["time_to_healthy"] for r in rows]
        print(f"{name:<18} {max(down):>14.3f}s / {statistics.median(down):.3f}s "
              f"{statistics.median(heal):>22.1f}s")  # fmt: skip
    boot = results["bootstrap"][0]["seconds"]
    lost = results["lost_writes"][0]
    print(f"bootstrap to healthy: {boot:.1f}s; acknowledged writes: {lost['acknowledged']}, "
          f"lost: {lost['lost']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
