"""HAProxy in front of a real three-node cluster: writes on one port, reads on another.

The lab's HAProxy config has the health checks of haproxy/haproxy.cfg (the unit
tests in tests/unit/ops keep them equal).  Clients connect to 127.0.0.1 only;
which node answered is read back from the server (`inet_server_addr()`).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from haagent_lab.lab import __main__ as lab_cli
from haagent_lab.lab import processes
from haagent_lab.lab.cluster import LAB_PASSWORD, LAB_STATS, LabCluster
from haagent_lab.lab.haproxy import routes_match, server_states
from support.labs import module_lab

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOST = "127.0.0.1"
SWITCHOVER_BUDGET = 3.0  # seconds from the switchover's answer to a write on the new primary


def free_ports(count: int) -> tuple[int, ...]:
    ports: list[int] = []
    while len(ports) < count:
        port = processes.free_port(HOST)
        if port not in ports:
            ports.append(port)
    return tuple(ports)


def post(cluster: LabCluster, node: str, path: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        cluster.nodes[node].api_url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def stats_url(cluster: LabCluster) -> str:
    assert cluster.haproxy_ports is not None
    return f"http://{HOST}:{cluster.haproxy_ports[2]}/"


def wait_routed(cluster: LabCluster, timeout: float = 30.0) -> float:
    """Wait until HAProxy sends writes to the leader only and reads to the other two."""
    leader = cluster.leader()
    assert leader is not None

    def routed() -> bool:
        return routes_match(stats_url(cluster), leader, cluster.nodes, LAB_STATS)

    try:
        return cluster.wait_for(routed, f"HAProxy to route writes to {leader}", timeout)
    except processes.ProcessError:
        print(server_states(stats_url(cluster), credentials=LAB_STATS))
        raise


def dsn(port: int) -> str:
    return (
        f"host={HOST} port={port} user=postgres password={LAB_PASSWORD} dbname=postgres "
        "connect_timeout=2"
    )


def node_by_host(cluster: LabCluster) -> dict[str, str]:
    return {node.host: name for name, node in cluster.nodes.items()}


def write_through(cluster: LabCluster, value: int) -> str:
    """Insert a row through the write port; returns the node that committed it."""
    assert cluster.haproxy_ports is not None
    with psycopg.connect(dsn(cluster.haproxy_ports[0]), autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO haproxy_writes (v) VALUES (%s) RETURNING host(inet_server_addr())",
            (value,),
        ).fetchone()
    assert row is not None
    return node_by_host(cluster)[str(row[0])]


def read_through(cluster: LabCluster) -> tuple[str, bool]:
    """A new connection to the read port: (node that answered, whether it is a replica)."""
    assert cluster.haproxy_ports is not None
    with psycopg.connect(dsn(cluster.haproxy_ports[1]), autocommit=True) as conn:
        row = conn.execute("SELECT host(inet_server_addr()), pg_is_in_recovery()").fetchone()
    assert row is not None
    return node_by_host(cluster)[str(row[0])], bool(row[1])


@pytest.fixture(scope="module")
def shared_lab() -> Iterator[LabCluster]:
    """One cluster with HAProxy for the module, routed, with the table the tests write."""
    with module_lab("haagent-haproxy-", haproxy_ports=free_ports(3)) as lab:
        assert lab.haproxy is not None and lab.haproxy.alive(), lab.haproxy
        wait_routed(lab)
        assert lab.haproxy_ports is not None
        with psycopg.connect(dsn(lab.haproxy_ports[0]), autocommit=True) as conn:
            conn.execute("CREATE TABLE haproxy_writes (id bigserial PRIMARY KEY, v bigint)")
        yield lab


@pytest.fixture
def cluster(shared_lab: LabCluster) -> LabCluster:
    """The module's cluster, healthy and routed by HAProxy (a switchover moves the primary)."""
    shared_lab.wait_healthy(120)
    wait_routed(shared_lab)
    return shared_lab


def test_writes_reach_the_primary_and_reads_both_replicas(
    cluster: LabCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    leader = cluster.leader()
    assert leader is not None
    replicas = sorted(n for n in cluster.nodes if n != leader)
    # What `dev/lab up` and `dev/lab status` do with the stats page.
    lab_cli.wait_for_haproxy(cluster, timeout=5)
    lab_cli.show_haproxy(cluster)
    shown = capsys.readouterr()
    assert "warning" not in shown.err
    assert f"HAProxy writes go to: {leader}\n" in shown.out
    assert f"HAProxy reads go to: {', '.join(replicas)}\n" in shown.out

    assert {write_through(cluster, i) for i in range(5)} == {leader}
    reads = [read_through(cluster) for _ in range(8)]
    assert sorted({node for node, _ in reads}) == replicas, reads
    assert all(in_recovery for _, in_recovery in reads), reads


def test_the_stats_page_and_the_lab_files_are_not_open(cluster: LabCluster) -> None:
    """HAProxy's stats page asks for a password; the lab's configs are readable by their
    owner only, and each role has its own password."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(stats_url(cluster) + ";csv", timeout=5)
    assert refused.value.code == 401
    assert server_states(stats_url(cluster), credentials=LAB_STATS)["primary"]
    for node in cluster.nodes.values():
        assert node.config_path.stat().st_mode & 0o777 == 0o600
        auth = cluster.node_config(node)["postgresql"]["authentication"]
        passwords = [auth[role]["password"] for role in ("superuser", "replication", "rewind")]
        assert len(set(passwords)) == 3
    assert (cluster.base / "haproxy.cfg").stat().st_mode & 0o777 == 0o600


def test_switchover_is_seen_through_haproxy_within_three_seconds(cluster: LabCluster) -> None:
    old = cluster.leader()
    assert old is not None
    assert write_through(cluster, 0) == old
    candidate = next(n for n in sorted(cluster.nodes) if n != old)

    started = time.monotonic()
    code, text = post(cluster, old, "/switchover", {"leader": old, "candidate": candidate})
    answered = time.monotonic()
    assert code == 200, text

    # Reconnect and write through HAProxy, as a client would, until the new primary commits.
    landed_on: str | None = None
    attempts = 0
    errors: list[str] = []
    deadline = answered + 30.0
    while time.monotonic() < deadline:
        attempts += 1
        try:
            landed_on = write_through(cluster, attempts)
        except psycopg.Error as e:
            errors.append(type(e).__name__)
            time.sleep(0.05)
            continue
        if landed_on == candidate:
            break
        time.sleep(0.05)
    seen = time.monotonic()
    elapsed = seen - answered
    print(
        f"switchover {old} -> {candidate}: API answered in {answered - started:.2f}s; "
        f"writes through HAProxy reached {candidate} {elapsed:.2f}s later "
        f"({seen - started:.2f}s after the request; {attempts} attempts, "
        f"{len(errors)} failed: {sorted(set(errors))})"
    )
    assert landed_on == candidate, f"writes still reach {landed_on}"
    assert elapsed < SWITCHOVER_BUDGET

    # The old primary comes back as a replica and HAProxy sends it reads again.
    cluster.wait_healthy(60)
    assert cluster.leader() == candidate
    wait_routed(cluster)
    reads = {read_through(cluster)[0] for _ in range(8)}
    assert reads == {n for n in cluster.nodes if n != candidate}
    assert write_through(cluster, -1) == candidate
