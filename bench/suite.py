"""The benchmark suite: one three-node cluster, every figure worth comparing before and after.

Run as root or as the postgres OS user (the agents and PostgreSQL run as postgres):

    .venv/bin/python bench/suite.py [--json FILE] [--rounds N] [--sync] [--wrk-duration S]

On one cluster (free ports on 127.0.0.21-23; ttl 10 s, loop_wait 2 s,
retry_timeout 3 s) it measures, in this order:

- bootstrap: from nothing until one primary and two streaming replicas;
- the REST API: `wrk -t1 -c8` on `GET /primary` of the leader (bench/api_real_node.py);
- write downtime, time until healthy again and lost acknowledged writes for a
  switchover, a postmaster SIGKILL and a node loss (agent and postmaster
  SIGKILLed), `--rounds` times each, with the writer of bench/failover.py;
- each node's agent and guard resident memory (VmRSS summed over the agent's process
  tree without PostgreSQL; bench/footprint.py breaks it down), sampled after
  bootstrap, after the API load and after the faults: the largest sample per node.

It prints a table; `--json FILE` writes the same figures to FILE (`-`: stdout,
after the table).  A measurement, not a test: it never fails on a slow machine,
but it exits 2 when the cluster cannot come up (or back), and 1 when it cannot
stop what it started.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_real_node import WRK_CONNECTIONS, ApiResult, measure_api
from bench.failover import SCENARIOS, FaultError, fault_round, lost_ids, new_lab, start_writer
from bench.footprint import parse_vmrss_kib as parse_vmrss_kib
from bench.footprint import sample as footprint_sample
from haagent_lab.lab.cluster import LabCluster
from haagent_lab.lab.processes import ProcessError
from haagent_lab.lab.workload import Writer

TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 2, 3
# Not the 127.0.0.11-13 of the lab, the tests and the other benchmarks: a network fault
# (dev/netfault isolate) drops all traffic to an isolated node's address, and someone
# may be running one on this machine while the suite measures.
HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")
FAULT_TITLES = {
    "switchover": "switchover",
    "postmaster_crash": "postmaster SIGKILL",
    "node_loss": "node loss (agent + postmaster SIGKILL)",
}


class ClusterDown(RuntimeError):
    """The cluster did not come up, or not back after a fault."""


# --- pure parts (unit-tested)


def rss_summary(samples: Mapping[str, list[int]]) -> dict[str, Any]:
    """The largest VmRSS sample (KiB) per node, in MiB, and the largest of all."""
    nodes = {name: round(max(kib) / 1024, 1) for name, kib in samples.items() if kib}
    return {"max_mib": max(nodes.values(), default=None), "nodes_mib": nodes}


def fault_summary(rounds: list[dict[str, float]]) -> dict[str, Any]:
    down = [r["write_downtime"] for r in rounds]
    heal = [r["time_to_healthy"] for r in rounds]
    return {
        "write_downtime_max_s": round(max(down), 3),
        "write_downtime_median_s": round(statistics.median(down), 3),
        "time_to_healthy_median_s": round(statistics.median(heal), 1),
        "acknowledged_writes": sum(int(r["acknowledged"]) for r in rounds),
        "lost_writes": sum(int(r["lost"]) for r in rounds),
        "rounds": [{k: round(v, 3) for k, v in r.items()} for r in rounds],
    }


def make_report(
    *,
    sync: bool,
    rounds: int,
    wrk_duration: int,
    bootstrap: float,
    api: ApiResult,
    faults: Mapping[str, Any],
    acknowledged: int,
    lost: int,
    rss: Mapping[str, list[int]],
) -> dict[str, Any]:
    """The figures as JSON-ready data (what --json writes and the table shows)."""
    return {
        "settings": {
            "ttl": TTL,
            "loop_wait": LOOP_WAIT,
            "retry_timeout": RETRY_TIMEOUT,
            "synchronous_mode": sync,
            "rounds": rounds,
        },
        "bootstrap_s": round(bootstrap, 1),
        "api": {
            "wrk": f"-t1 -c{WRK_CONNECTIONS} -d{wrk_duration}s GET /primary",
            "requests_per_second": api.requests_per_second,
            "p99_ms": api.p99_ms,
            "ha_cycles_meanwhile": api.ha_cycles,
            "mean_cycle_ms": round(api.mean_cycle_ms, 1),
        },
        "faults": dict(faults),
        "writes": {"acknowledged": acknowledged, "lost": lost},
        "agent_rss": rss_summary(rss),
    }


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{unit}"


def format_table(report: Mapping[str, Any]) -> str:
    """The figures of `report` (the JSON shape) as two Markdown tables."""
    s = report["settings"]
    api = report["api"]
    rss = report["agent_rss"]
    lines = [
        f"ttl={s['ttl']} loop_wait={s['loop_wait']} retry_timeout={s['retry_timeout']} "
        f"synchronous_mode={'on' if s['synchronous_mode'] else 'off'} rounds={s['rounds']}",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| bootstrap (nothing to 1 primary + 2 streaming) | {report['bootstrap_s']:.1f} s |",
        f"| REST API, wrk {api['wrk']} on the leader | "
        f"{_num(api['requests_per_second'], ',.0f')} req/s, "
        f"p99 {_num(api['p99_ms'], '.2f', ' ms')} |",
        f"| agent + guard VmRSS, max | {_num(rss['max_mib'], '.1f', ' MiB')} |",
        "| agent + guard VmRSS per node | "
        + ", ".join(f"{n} {v:.1f} MiB" for n, v in rss["nodes_mib"].items())
        + " |",
        f"| acknowledged writes lost, all faults | {report['writes']['lost']} of "
        f"{report['writes']['acknowledged']:,} |",
        "",
        "| fault | write downtime max | median | healthy again (median) | lost writes |",
        "|---|---|---|---|---|",
    ]
    for name, fault in report["faults"].items():
        lines.append(
            f"| {FAULT_TITLES.get(name, name)} | {fault['write_downtime_max_s']:.2f} s | "
            f"{fault['write_downtime_median_s']:.2f} s | {fault['time_to_healthy_median_s']:.1f} s"
            f" | {fault['lost_writes']} of {fault['acknowledged_writes']:,} |"
        )
    return "\n".join(lines)


# --- measurement


def agent_rss_kib(lab: LabCluster) -> dict[str, int]:
    """VmRSS (KiB) of each node's agent and its helpers (the guard), PostgreSQL excluded."""
    return {name: sum(procs.values()) for name, procs in footprint_sample(lab).items()}


def healthy_leader(lab: LabCluster) -> str:
    try:
        lab.wait_for(lambda: lab.leader() is not None, "a leader", 60)
    except ProcessError as e:
        raise ClusterDown(f"the cluster has no leader: {e}") from e
    leader = lab.leader()
    assert leader is not None
    return leader


def lost_ids_or_down(writer: Writer, dsn: str) -> set[int]:
    try:
        return lost_ids(writer, dsn)
    except psycopg.Error as e:
        raise ClusterDown(f"cannot read the written rows back from the primary: {e}") from e


def measure(lab: LabCluster, args: argparse.Namespace) -> dict[str, Any]:
    rss: dict[str, list[int]] = {name: [] for name in lab.nodes}

    def sample_rss() -> None:
        for name, kib in agent_rss_kib(lab).items():
            rss[name].append(kib)

    print("bootstrapping three nodes ...", file=sys.stderr)
    started = time.monotonic()
    try:
        lab.start(timeout=180)
    except (ProcessError, OSError) as e:
        raise ClusterDown(f"the cluster did not come up: {e}") from e
    bootstrap = time.monotonic() - started
    sample_rss()

    print(f"wrk on GET /primary for {args.wrk_duration} s ...", file=sys.stderr)
    leader = healthy_leader(lab)
    api = measure_api(lab.nodes[leader], args.wrk_duration)
    sample_rss()
    try:
        lab.wait_healthy(120)  # the faults start from a healthy cluster, as after bootstrap
    except ProcessError as e:
        raise ClusterDown(f"the cluster was not healthy after the API load: {e}") from e

    writer, dsn = start_writer(lab)
    faults: dict[str, Any] = {}
    lost: set[int] = set()
    try:
        for name, fault in SCENARIOS.items():
            rounds = []
            for i in range(args.rounds):
                print(f"{name}, round {i + 1} of {args.rounds} ...", file=sys.stderr)
                acked_before = len(writer.acked)
                try:
                    row = fault_round(lab, writer, fault)
                except ProcessError as e:
                    raise ClusterDown(f"the cluster did not come back after {name}: {e}") from e
                except FaultError as e:
                    raise ClusterDown(f"could not cause {name}: {e}") from e
                now_lost = lost_ids_or_down(writer, dsn)
                row["lost"] = len(now_lost - lost)
                row["acknowledged"] = len(writer.acked) - acked_before
                lost |= now_lost
                rounds.append(row)
                sample_rss()
            faults[name] = fault_summary(rounds)
    finally:
        writer.stop()
    final_lost = len(lost_ids_or_down(writer, dsn))
    return make_report(
        sync=args.sync, rounds=args.rounds, wrk_duration=args.wrk_duration, bootstrap=bootstrap,
        api=api, faults=faults, acknowledged=len(writer.acked), lost=final_lost, rss=rss,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="also write the figures as JSON to this file ('-': stdout)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per fault (default 2)")
    parser.add_argument("--sync", action="store_true", help="synchronous_mode: on")
    parser.add_argument("--wrk-duration", type=int, default=10, help="seconds of wrk (default 10)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if shutil.which("wrk") is None:
        print("suite: wrk is not installed (dev/setup installs it)", file=sys.stderr)
        return 2
    lab = new_lab(
        ttl=TTL, loop_wait=LOOP_WAIT, retry_timeout=RETRY_TIMEOUT, sync=args.sync,
        prefix="haagent-suite-", hosts=HOSTS,
    )  # fmt: skip
    report: dict[str, Any] | None = None
    status = 0
    try:
        report = measure(lab, args)
    except ClusterDown as e:
        print(f"suite: {e}", file=sys.stderr)
        status = 2
    except subprocess.CalledProcessError as e:
        print(f"suite: {e.cmd[0]} failed ({e.returncode}): {e.stderr}", file=sys.stderr)
        status = 2
    finally:
        try:
            lab.stop()
        except ProcessError as e:
            print(f"suite: could not stop everything it started: {e}", file=sys.stderr)
            status = 1
    if status == 0:
        shutil.rmtree(lab.base, ignore_errors=True)
    else:
        print(f"suite: logs kept in {lab.base}", file=sys.stderr)
    if report is None:
        return status
    print(format_table(report))
    if args.json == "-":
        print(json.dumps(report, indent=1))
    elif args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
