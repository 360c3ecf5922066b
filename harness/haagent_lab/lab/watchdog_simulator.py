"""Start a node's watchdog simulator from a test or the lab (testing only).

The simulator (`haagent_lab/watchdog/simulator.py`) must run outside the agent it
watches: the lab starts one per node before the agent, as a process of its own, gives
the agent `watchdog: {driver: testing, device: <socket>}`, and stops it by pid after
the node.  Only the simulator's command line and its events file are shared with it:
the lab and the watchdog package do not import each other.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from haagent_lab.lab import processes
from haagent_lab.lab.processes import Process


def simulator_argv(
    socket_path: Path,
    *,
    node: str | None = None,
    kill_peer: bool = False,
    kill_pids: Iterable[int] = (),
    kill_pidfiles: Iterable[Path] = (),
    pgdata: Iterable[Path] = (),
    events: Path | None = None,
    default_timeout: int | None = None,
    min_timeout: int | None = None,
    max_timeout: int | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The command line of `python -m haagent_lab.watchdog.simulator` for one node."""
    argv = [python, "-m", "haagent_lab.watchdog.simulator", "--socket", str(socket_path)]
    if node is not None:
        argv += ["--node", node]
    if kill_peer:
        argv.append("--kill-peer")
    for pid in kill_pids:
        argv += ["--kill-pid", str(pid)]
    for pidfile in kill_pidfiles:
        argv += ["--kill-pidfile", str(pidfile)]
    for data_dir in pgdata:
        argv += ["--pgdata", str(data_dir)]
    if events is not None:
        argv += ["--events", str(events)]
    for option, value in (
        ("--default-timeout", default_timeout),
        ("--min-timeout", min_timeout),
        ("--max-timeout", max_timeout),
    ):
        if value is not None:
            argv += [option, str(value)]
    return argv


def start_simulator(
    socket_path: Path,
    log_path: Path,
    *,
    user: str | None = None,
    start_timeout: float = 10.0,
    **options: Any,
) -> Process:
    """Start a simulator (options as for `simulator_argv`) and wait until it accepts clients."""
    argv = simulator_argv(socket_path, **options)
    process = processes.start(f"watchdog-simulator {socket_path.name}", argv, log_path, user=user)
    try:
        processes.wait_for(
            socket_path.exists,
            f"the watchdog simulator socket {socket_path}",
            start_timeout,
            process,
        )
    except BaseException:
        process.stop()
        raise
    return process


def read_events(events_path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The events a simulator wrote so far (only those of `kind` when given)."""
    try:
        lines = events_path.read_text().splitlines()
    except FileNotFoundError:
        return []
    records = [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if kind is None or r.get("event") == kind]
