"""Footprint benchmark: the memory of each node's agent and its helpers, where it goes, and
whether it stays flat over time.

On a three-node lab (fast timings, HAProxy checking every node every second), for each
node: VmRSS of every process of the agent's tree except PostgreSQL (the agent and its
guard), summed; for the agent, the resident memory per mapping (its heap and anonymous
memory, each shared library), largest first.  With `--soak MINUTES`, a switchover every
minute and a sample every 10 s: the first, last and largest sum per node and the growth
per hour (a least-squares slope over the second half, once caches have warmed).

Run as root or as the postgres OS user:

    .venv/bin/python bench/footprint.py [--soak 60] [--top 12] [--json FILE]

A measurement, not a test: it prints figures and never fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.failover import new_lab, switchover
from haagent_lab.lab import processes
from haagent_lab.lab.cluster import LabCluster

SAMPLE_EVERY = 10.0


def parse_vmrss_kib(status: str) -> int | None:
    """VmRSS in KiB from the text of /proc/<pid>/status (None if absent: a zombie)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                factor = {"kb": 1, "mb": 1024, "gb": 1024 * 1024}.get(
                    fields[2].lower() if len(fields) > 2 else "kb", 1
                )
                return int(fields[1]) * factor
    return None


def status_kib(pid: int) -> int:
    """VmRSS in KiB of a running process (0 once it is gone)."""
    try:
        return parse_vmrss_kib(Path(f"/proc/{pid}/status").read_text()) or 0
    except OSError:
        return 0


def children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found += [int(c) for c in text.split()]
    except OSError:
        pass
    return found


def is_postgres(pid: int) -> bool:
    try:
        first = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return os.path.basename(first.decode(errors="replace")).startswith(("postgres", "postmaster"))


def helpers(pid: int) -> dict[int, str]:
    """The agent and every process below it that is not PostgreSQL: pid -> what it is."""
    tree: dict[int, str] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        if is_postgres(p):
            continue
        cmdline = (
            Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
        tree[p] = (
            "agent"
            if p == pid
            else ("guard" if "run_guard.py" in cmdline or "guard.py" in cmdline else cmdline[:40])
        )
        todo += children(p)
    return tree


def mappings_kib(pid: int) -> dict[str, int]:
    """Resident KiB per mapping of `pid` (a file's basename, [heap], [anon], ...)."""
    totals: dict[str, int] = defaultdict(int)
    current = "[anon]"
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
            name = parts[5] if len(parts) >= 6 else "[anon]"
            current = os.path.basename(name) if name.startswith("/") else name
        elif parts[0] == "Rss:":
            totals[current] += int(parts[1])
    return dict(totals)


def sample(lab: LabCluster) -> dict[str, dict[str, int]]:
    """Per node: {process: VmRSS KiB} for the agent's tree without PostgreSQL."""
    result = {}
    for name, node in lab.nodes.items():
        if node.agent is None or not node.agent.alive():
            continue
        tree = helpers(node.agent.pid)
        result[name] = {what: status_kib(pid) for pid, what in tree.items()}
    return result


def slope_mib_per_hour(points: list[tuple[float, float]]) -> float:
    half = points[len(points) // 2 :]
    if len(half) < 2:
        return 0.0
    n = len(half)
    mean_t = sum(t for t, _ in half) / n
    mean_v = sum(v for _, v in half) / n
    var = sum((t - mean_t) ** 2 for t, _ in half)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in half) / var * 3600


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Footprint benchmark: memory of each node's agent and its helpers"
    )
    parser.add_argument("--soak", type=float, default=0.0, metavar="MINUTES")
    parser.add_argument("--top", type=int, default=12, help="mappings shown for the agent")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    lab = new_lab(prefix="haagent-footprint-", hosts=("127.0.0.41", "127.0.0.42", "127.0.0.43"))
    ports = tuple(processes.free_port("127.0.0.1") for _ in range(3))
    lab.haproxy_ports = (ports[0], ports[1], ports[2])  # HAProxy checks every node every second
    report: dict[str, Any] = {}
    try:
        lab.start(timeout=180)
        lab.wait_healthy(120)
        time.sleep(30)  # a few cycles and many health checks
        first = sample(lab)
        print("node   process    VmRSS")
        for node, procs in first.items():
            for what, kib in procs.items():
                print(f"{node:6} {what:10} {kib / 1024:6.1f} MiB")
            print(f"{node:6} {'total':10} {sum(procs.values()) / 1024:6.1f} MiB")
        leader = lab.leader()
        agent = lab.nodes[leader or "node1"].agent
        assert agent is not None
        maps = sorted(mappings_kib(agent.pid).items(), key=lambda kv: -kv[1])
        print(f"\nwhere {leader}'s agent's resident memory goes:")
        for name, kib in maps[: args.top]:
            print(f"  {kib / 1024:6.1f} MiB  {name}")
        report["first"] = first
        report["agent_mappings_kib"] = dict(maps)
        if args.soak > 0:
            series: dict[str, list[tuple[float, float]]] = defaultdict(list)
            started = time.monotonic()
            next_switch = started + 60
            while time.monotonic() - started < args.soak * 60:
                now = time.monotonic()
                for node, procs in sample(lab).items():
                    series[node].append((now - started, sum(procs.values()) / 1024))
                if now >= next_switch:
                    old = lab.leader()
                    if old is not None:
                        try:
                            switchover(lab, old)
                        except Exception as e:
                            print(f"switchover failed: {e}", file=sys.stderr)
                    next_switch = now + 60
                time.sleep(SAMPLE_EVERY)
            print(f"\nsoak: {args.soak:g} min, a switchover every minute, HAProxy checks 1/s")
            for node, points in series.items():
                values = [v for _, v in points]
                print(
                    f"{node}: first {values[0]:.1f} MiB, last {values[-1]:.1f} MiB, max "
                    f"{max(values):.1f} MiB, growth {slope_mib_per_hour(points):+.2f} MiB/h"
                )
            report["soak"] = {n: p for n, p in series.items()}
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=2))
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
