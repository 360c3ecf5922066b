"""A standby cluster end to end: two scopes on one etcd, on loopback, under a writer.

`alpha` (a1, a2) is a primary cluster; `beta` (b1, b2) a standby cluster of alpha's primary
(`standby_cluster` in its dynamic config).  Writes on alpha appear on both beta members;
beta's standby leader's node is lost and the other member takes over as standby leader and
keeps following; `haactl promote-cluster` makes beta writable; `haactl demote-cluster`
turns alpha into beta's standby, rewinding alpha's members, never re-cloning them.
One pair of labs for every check (CI time).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import psycopg
import pytest

from haagent.config.model import Address
from haagent_lab.lab.cluster import LAB_PASSWORD, LabCluster
from haagent_lab.lab.processes import ProcessError
from haagent_lab.lab.workload import Writer, multi_host_dsn
from support.labs import streams_from

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMINGS = {"ttl": 10, "loop_wait": 2, "retry_timeout": 3}


def role_of(lab: LabCluster, node: str) -> str | None:
    code, body = lab.nodes[node].api("/patroni")
    return str(body.get("role")) if code == 200 and isinstance(body, dict) else None


def standby_leader(lab: LabCluster) -> str | None:
    found = [n for n, node in lab.nodes.items() if node.api("/standby-leader")[0] == 200]
    return found[0] if len(found) == 1 else None


def ids_on(lab: LabCluster, node: str, table: str) -> set[int]:
    try:
        with psycopg.connect(lab.nodes[node].dsn, autocommit=True, connect_timeout=3) as conn:
            rows = conn.execute(f"SELECT id FROM {table}").fetchall()
    except psycopg.Error:
        return set()
    return {int(str(r[0])) for r in rows}


def clone_count(lab: LabCluster) -> int:
    """How often any member of `lab` cloned its data directory (the agents' logs)."""
    return sum(
        (node.base / "haagent.log").read_text(errors="replace").count("create replica: cloned")
        for node in lab.nodes.values()
    )


def haactl(lab: LabCluster, *args: str) -> subprocess.CompletedProcess[str]:
    config = lab.nodes[next(iter(lab.nodes))].config_path
    argv = [sys.executable, "-m", "haagent.cli.main", "-c", str(config), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


def wait_standby(lab: LabCluster, timeout: float = 90.0) -> str:
    """Until one member is the standby leader and the other streams from it."""
    found: list[str] = []
    seen: list[object] = []

    def ready() -> bool:
        leader = standby_leader(lab)
        seen[:] = [{n: (node.api("/standby-leader")[0], role_of(lab, n)) for n, node in
                    lab.nodes.items()}, leader and streams_from(lab, leader)]  # fmt: skip
        if leader is None:
            return False
        others = sorted(n for n in lab.nodes if n != leader)
        found.append(leader)
        return streams_from(lab, leader) == others

    try:
        lab.wait_for(ready, f"{lab.scope}: a standby leader, others streaming from it", timeout)
    except ProcessError as e:
        raise AssertionError(f"last seen: {seen}") from e
    return found[-1]


def test_standby_cluster_follows_fails_over_and_swaps_roles(
    lab_factory: Callable[..., LabCluster],
) -> None:
    alpha = lab_factory(names=("a1", "a2"), hosts=("127.0.0.11", "127.0.0.12"),
                        scope="alpha", dynamic=TIMINGS)  # fmt: skip
    alpha.start(timeout=120)
    primary = alpha.leader()
    assert primary is not None
    remote = alpha.nodes[primary]
    beta = lab_factory(
        names=("b1", "b2"),
        hosts=("127.0.0.13", "127.0.0.13"),
        scope="beta",
        shared_etcd=alpha.etcd,
        dynamic={**TIMINGS, "standby_cluster": {"host": remote.host, "port": remote.pg_port}},
    )
    beta.start(wait=False)
    leader_b = wait_standby(beta)
    assert role_of(beta, leader_b) == "standby_leader"
    assert beta.nodes[leader_b].api("/leader")[0] == 200
    assert beta.nodes[leader_b].api("/primary")[0] == 503

    dsn = multi_host_dsn(
        [Address(n.host, n.pg_port) for n in alpha.nodes.values()], "postgres", LAB_PASSWORD
    )
    writer = Writer(dsn)
    writer.start()
    try:
        time.sleep(1.0)
        acked = {i for i, _ in writer.acked}
        for node in beta.nodes:
            beta.wait_for(lambda: acked <= ids_on(beta, node, writer.table),  # noqa: B023
                          f"{node} to replay alpha's writes", 30)  # fmt: skip

        # The standby leader's node is lost: the other member takes over and follows alpha.
        beta.kill_agent(leader_b)
        beta.kill_postmaster(leader_b)
        beta.wait_for(lambda: standby_leader(beta) not in (None, leader_b),
                      "a new standby leader", 60)  # fmt: skip
        new_b = standby_leader(beta)
        assert new_b is not None
        time.sleep(1.0)
        acked = {i for i, _ in writer.acked}
        beta.wait_for(lambda: acked <= ids_on(beta, new_b, writer.table),
                      f"{new_b} to keep replaying alpha's writes", 30)  # fmt: skip
        beta.start_agent(leader_b)
        assert wait_standby(beta) == new_b
    finally:
        writer.stop()
    acked = {i for i, _ in writer.acked}
    beta.wait_for(lambda: acked <= ids_on(beta, new_b, writer.table), "the last writes", 30)
    clones_alpha = clone_count(alpha)

    # promote-cluster: beta becomes a primary cluster.
    done = haactl(beta, "promote-cluster", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    beta.wait_for(lambda: beta.leader() == new_b, "beta's primary", 60)
    beta.wait_healthy(60)

    # demote-cluster: alpha becomes beta's standby, its members rewound, not re-cloned.
    target = beta.nodes[new_b]
    done = haactl(alpha, "demote-cluster", "--host", target.host, "--port",
                  str(target.pg_port), "--force")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    wait_standby(alpha)
    assert alpha.leader() is None
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {writer.table} VALUES (-1)")
    for node in alpha.nodes:
        alpha.wait_for(lambda: -1 in ids_on(alpha, node, writer.table),  # noqa: B023
                       f"{node} to replay beta's write", 60)  # fmt: skip
    assert clone_count(alpha) == clones_alpha
    assert writer.lost(multi_host_dsn([Address(target.host, target.pg_port)], "postgres",
                                      LAB_PASSWORD)) == []  # fmt: skip
