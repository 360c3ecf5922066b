"""`GET /primary` under `wrk -t1 -c8` against a running agent, with its HA loop's cycle time.

Starts a three-node cluster (etcd, agents, PostgreSQL on 127.0.0.11-13), runs wrk
against the leader's REST API and prints requests per second, p99 latency and the
HA cycles the leader ran meanwhile (read from its own /metrics).

    .venv/bin/python bench/api_real_node.py [--duration 10]

Run as root or as the postgres OS user.  A measurement, never a test failure.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from haagent.lab.cluster import LabCluster, LabNode


def loop_totals(node: LabNode) -> tuple[float, float]:
    _, text = node.api("/metrics")
    total = re.search(r"haagent_loop_duration_seconds_sum\S* (\S+)", str(text))
    count = re.search(r"haagent_loop_duration_seconds_count\S* (\S+)", str(text))
    return (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="haagent-apibench-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    lab = LabCluster(
        base, pg_port=None, api_port=None, etcd_ports=None, user=user,
        dynamic={"ttl": 10, "loop_wait": 2, "retry_timeout": 3},
    )  # fmt: skip
    try:
        lab.start(timeout=120)
        leader = lab.leader()
        assert leader is not None
        node = lab.nodes[leader]
        before = loop_totals(node)
        out = subprocess.run(
            ["wrk", "-t1", "-c8", f"-d{args.duration}s", "--latency", node.api_url + "/primary"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        after = loop_totals(node)
        rps = re.search(r"Requests/sec:\s+(\S+)", out)
        p99 = re.search(r"99%\s+(\S+)", out)
        cycles = after[1] - before[1]
        mean_ms = 1000 * (after[0] - before[0]) / max(1.0, cycles)
        print(f"GET /primary on a running leader: {rps.group(1) if rps else '?'} req/s, "
              f"p99 {p99.group(1) if p99 else '?'}; HA cycles meanwhile: {cycles:.0f} "
              f"(mean {mean_ms:.1f} ms), still the leader: {lab.leader() == leader}")  # fmt: skip
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
