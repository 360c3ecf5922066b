"""`GET /primary` under `wrk -t1 -c8` against a running agent, with its HA loop's cycle time.

Starts a three-node cluster (etcd, agents, PostgreSQL on 127.0.0.11-13), runs wrk
against the leader's REST API and prints requests per second, p99 latency and the
HA cycles the leader ran meanwhile (read from its own /metrics).

    .venv/bin/python bench/api_real_node.py [--duration 10]

Run as root or as the postgres OS user.  A measurement, never a test failure.
`measure_api` is also used by bench/suite.py.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.failover import new_lab
from haagent_lab.lab.cluster import LabNode

WRK_CONNECTIONS = 8
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class ApiResult:
    requests_per_second: float | None
    p99_ms: float | None
    ha_cycles: float  # HA loop cycles the node ran while wrk ran
    mean_cycle_ms: float  # their mean duration
    wrk_output: str


def loop_totals(node: LabNode) -> tuple[float, float]:
    _, text = node.api("/metrics")
    total = re.search(r"haagent_loop_duration_seconds_sum\S* (\S+)", str(text))
    count = re.search(r"haagent_loop_duration_seconds_count\S* (\S+)", str(text))
    return (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)


def parse_wrk(out: str) -> tuple[float | None, float | None]:
    """Requests per second and the p99 latency in ms from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.MULTILINE)
    return (
        float(rps.group(1)) if rps else None,
        float(p99.group(1)) * _UNITS_MS[p99.group(2)] if p99 else None,
    )


def measure_api(node: LabNode, duration: int = 10, path: str = "/primary") -> ApiResult:
    """`wrk -t1 -c8 --latency` on `node`'s REST API `path` for `duration` seconds."""
    before = loop_totals(node)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{duration}s", "--latency", node.api_url + path],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    after = loop_totals(node)
    rps, p99 = parse_wrk(out)
    cycles = after[1] - before[1]
    mean_ms = 1000 * (after[0] - before[0]) / max(1.0, cycles)
    return ApiResult(rps, p99, cycles, mean_ms, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    lab = new_lab(prefix="haagent-apibench-")
    try:
        lab.start(timeout=120)
        leader = lab.leader()
        assert leader is not None
        result = measure_api(lab.nodes[leader], args.duration)
        rps = "?" if result.requests_per_second is None else f"{result.requests_per_second:.2f}"
        p99 = "?" if result.p99_ms is None else f"{result.p99_ms:.2f}ms"
        print(f"GET /primary on a running leader: {rps} req/s, p99 {p99}; HA cycles meanwhile: "
              f"{result.ha_cycles:.0f} (mean {result.mean_cycle_ms:.1f} ms), "
              f"still the leader: {lab.leader() == leader}")  # fmt: skip
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
