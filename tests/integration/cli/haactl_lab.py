"""A real three-node cluster (etcd, three agents, PostgreSQL on 127.0.0.11-13) for haactl.

One cluster per module (starting one takes a while); before each test `ready` waits
until it is healthy again (one primary, two streaming replicas) and not paused, so the
tests do not depend on each other's order.  Ports are free ones, so this cluster can run
beside the lab and other tests.  haactl runs as a real process, with node1's config.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from haagent_lab.lab.cluster import LabCluster

SCOPE = "stampede"
DYNAMIC = {"ttl": 20, "loop_wait": 2, "retry_timeout": 5}


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Haactl:
    """`haactl -c <node1's config> ...` as a subprocess."""

    config: Path

    def __call__(self, *args: str, input: str | None = None, timeout: float = 180.0) -> Run:
        argv = [sys.executable, "-m", "haagent.cli.main", "-c", str(self.config), *args]
        started = time.monotonic()
        done = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def lab() -> Iterator[LabCluster]:
    base = Path(tempfile.mkdtemp(prefix="haactl-lab-"))
    base.chmod(0o755)
    user = "postgres" if os.geteuid() == 0 else None
    cluster = LabCluster(
        base,
        scope=SCOPE,
        pg_port=None,
        api_port=None,
        etcd_ports=None,
        dynamic=DYNAMIC,
        user=user,
    )
    try:
        cluster.start(timeout=180)
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def haactl(lab: LabCluster) -> Haactl:
    return Haactl(lab.nodes["node1"].config_path)


@pytest.fixture
def ready(lab: LabCluster, haactl: Haactl) -> LabCluster:
    """The cluster healthy and not paused, whatever the previous test left."""
    for name, node in lab.nodes.items():
        if node.agent is None or not node.agent.alive():
            lab.start_agent(name)
    config = haactl("show-config", "-f", "json")
    if config.code == 0 and config.json().get("pause"):
        assert haactl("resume", "--wait").code == 0
    lab.wait_healthy(180)
    # every member key shows streaming and caught up (the agents write them each loop)
    lab.wait_for(lambda: _members_settled(haactl), "member keys to show the cluster", 60)
    return lab


def _members_settled(haactl: Haactl) -> bool:
    run = haactl("list", "-f", "json")
    if run.code != 0:
        return False
    rows = run.json()
    leaders = [r for r in rows if r.get("Role") == "Leader"]
    caught_up = [
        r
        for r in rows
        if r.get("State") == "streaming" and isinstance(r.get("Lag in MB"), float)
        and r["Lag in MB"] < 1.0
    ]  # fmt: skip
    return len(rows) == 3 and len(leaders) == 1 and len(caught_up) == 2
