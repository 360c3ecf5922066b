"""post_bootstrap as Patroni runs it, on real agents: a connection string libpq reads (unix
socket included), and a failing script stops the agent with one line instead of a loop."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from haagent_lab.lab import processes
from haagent_lab.lab.cluster import LabCluster, LabNode

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PSQL = "/usr/lib/postgresql/15/bin/psql"


def with_post_bootstrap(
    script: Path, **postgresql: Any
) -> Callable[[LabNode, dict[str, Any]], None]:
    def configure(node: LabNode, config: dict[str, Any]) -> None:
        config["bootstrap"]["post_bootstrap"] = str(script)
        config["postgresql"].update(postgresql)

    return configure


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_post_bootstrap_over_the_unix_socket(
    lab_factory: Callable[..., LabCluster], workdir: Path
) -> None:
    post = script(
        workdir / "post.sh",
        f'echo "$1" > {workdir}/dsn\n'
        f'{PSQL} "$1" -v ON_ERROR_STOP=1 -c "CREATE TABLE made_by_post_bootstrap ()"\n',
    )
    lab = lab_factory(
        names=("node1",),
        hosts=("127.0.0.11",),
        configure=with_post_bootstrap(post, use_unix_socket=True),
    )
    lab.start(timeout=120)
    node = lab.nodes["node1"]
    assert (workdir / "dsn").read_text().strip() == (
        f"dbname=postgres user=postgres host={node.base} port={node.pg_port}"
    )
    with psycopg.connect(f"host={node.base} port={node.pg_port} user=postgres "
                         "password=lab-secret dbname=postgres") as conn:  # fmt: skip
        assert conn.execute("SELECT count(*) FROM made_by_post_bootstrap").fetchone() == (0,)


def test_a_failing_post_bootstrap_stops_the_agent_once(
    lab_factory: Callable[..., LabCluster], workdir: Path
) -> None:
    post = script(workdir / "post.sh", 'echo "role app: permission denied" >&2\nexit 3\n')
    lab = lab_factory(names=("node1",), hosts=("127.0.0.11",),
                      configure=with_post_bootstrap(post))  # fmt: skip
    processes.make_dir(lab.base, None, 0o755)
    lab.etcd.start()
    lab.write_configs()
    agent = lab.start_agent("node1")
    assert agent.popen.wait(timeout=90) == 2, agent.log_tail()
    log = agent.log_path.read_text()
    stops = [line for line in log.splitlines() if "stopping: bootstrap failed" in line]
    assert len(stops) == 1, log
    assert f"post_bootstrap '{post}' exited with 3: role app: permission denied" in stops[0]
    assert log.count("initdb") <= 1 and log.count("bootstrap: failed") == 1, log
    node = lab.nodes["node1"]
    assert not node.data_dir.exists() or list(node.data_dir.iterdir()) == []
    key = f"/service/{lab.scope}/initialize"
    got = subprocess.run(
        ["etcdctl", f"--endpoints={lab.etcd.endpoints}", "get", key, "--print-value-only"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert got.stdout == "", "the initialize key is released"
