"""End to end on real etcd and PostgreSQL: three agents on 127.0.0.11-13 under a writer.

The writer inserts a row every 20 ms through a libpq multi-host connection
string with target_session_attrs=read-write.  After each fault: one primary,
every other node streaming, no acknowledged write lost, the old primary back as
a replica when it returns.  Timing targets are measured by bench/failover.py.

One cluster serves the module (starting one takes a while); before each test the
`cluster` fixture brings it back to health: every agent running, not paused, one
primary and two streaming replicas, whatever the test before left.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from haagent.config.model import Address
from haagent_lab.lab.cluster import LAB_PASSWORD, LabCluster
from haagent_lab.lab.workload import Writer, multi_host_dsn
from support.labs import module_lab

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def shared_lab() -> Iterator[LabCluster]:
    with module_lab("haagent-e2e-") as lab:
        yield lab


@pytest.fixture
def cluster(shared_lab: LabCluster) -> LabCluster:
    """The module's cluster, healthy again."""
    lab = shared_lab
    for name, node in lab.nodes.items():
        if node.agent is None or not node.agent.alive():
            lab.start_agent(name)
    if any(node.api("/patroni")[1].get("pause") for node in lab.nodes.values()):
        assert patch_config(lab, next(iter(lab.nodes)), {"pause": False}) == 200
    lab.wait_healthy(120)
    return lab


@pytest.fixture
def writer(cluster: LabCluster) -> Iterator[Writer]:
    dsn = multi_host_dsn(
        [Address(n.host, n.pg_port) for n in cluster.nodes.values()], "postgres", LAB_PASSWORD
    )
    w = Writer(dsn)
    w.start()
    time.sleep(0.5)
    yield w
    w.stop()


def patch_config(cluster: LabCluster, node: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        cluster.nodes[node].api_url + "/config",
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


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


def settle(cluster: LabCluster, writer: Writer, old: str, timeout: float = 60.0) -> str:
    """Wait for a healthy cluster and check writes: returns the (new) leader."""
    cluster.wait_healthy(timeout)
    leader = cluster.leader()
    assert leader is not None
    assert cluster.streaming_replicas() == sorted(n for n in cluster.nodes if n != leader)
    time.sleep(0.5)
    assert writer.acked[-1][1] > time.monotonic() - 1.0, "writes did not resume"
    return leader


PRIMARY_CODES = {
    "/": 200, "/primary": 200, "/master": 200, "/read-write": 200, "/leader": 200,
    "/standby-leader": 503, "/replica": 503, "/read-only": 200, "/health": 200,
    "/sync": 503, "/async": 503, "/liveness": 200, "/readiness": 200, "/patroni": 200,
    "/cluster": 200, "/history": 200, "/config": 200, "/metrics": 200,
}  # fmt: skip
REPLICA_CODES = {
    "/": 503, "/primary": 503, "/master": 503, "/read-write": 503, "/leader": 503,
    "/standby-leader": 503, "/replica": 200, "/replica?lag=16MB": 200,
    "/replica?tag_nosuchtag=yes": 503, "/read-only": 200, "/health": 200, "/sync": 503,
    "/async": 200, "/liveness": 200, "/readiness": 200, "/patroni": 200, "/cluster": 200,
}  # fmt: skip


def code_of(url: str, method: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_bootstrap_gives_one_primary_and_two_streaming_replicas(cluster: LabCluster) -> None:
    leader = cluster.leader()
    assert leader is not None
    assert cluster.streaming_replicas() == sorted(n for n in cluster.nodes if n != leader)
    code, body = cluster.nodes[leader].api("/")
    assert code == 200 and body["role"] == "primary"
    assert body["haagent"]["reason_code"] == "leader_renewed"
    replica = next(n for n in cluster.nodes if n != leader)
    for node, expected in ((leader, PRIMARY_CODES), (replica, REPLICA_CODES)):
        url = cluster.nodes[node].api_url
        for path, want in expected.items():
            for method in ("GET", "HEAD", "OPTIONS"):
                reads = ("/patroni", "/cluster", "/history", "/config", "/metrics")
                if path in reads and method != "GET":
                    continue
                assert code_of(url + path, method) == want, (node, path, method)


def test_switchover_moves_the_primary_and_the_old_one_follows(
    cluster: LabCluster, writer: Writer
) -> None:
    old = cluster.leader()
    assert old is not None
    candidate = next(n for n in cluster.nodes if n != old)
    t0 = time.monotonic()
    code, text = post(cluster, old, "/switchover", {"leader": old, "candidate": candidate})
    assert code == 200, text
    assert settle(cluster, writer, old) == candidate
    print(f"switchover write downtime {writer.downtime_since(t0):.3f}s")
    writer.stop()
    assert writer.lost(writer.dsn) == []


def test_postmaster_killed_on_the_leader_restarts_in_place(
    cluster: LabCluster, writer: Writer
) -> None:
    old = cluster.leader()
    assert old is not None
    t0 = time.monotonic()
    assert cluster.kill_postmaster(old) is not None
    assert settle(cluster, writer, old) == old
    print(f"postmaster crash write downtime {writer.downtime_since(t0):.3f}s")


def test_node_loss_fails_over_and_the_node_rejoins_as_replica(
    cluster: LabCluster, writer: Writer
) -> None:
    old = cluster.leader()
    assert old is not None
    t0 = time.monotonic()
    cluster.kill_agent(old)
    cluster.kill_postmaster(old)
    cluster.wait_for(lambda: cluster.leader() not in (None, old), "a new leader", 60)
    new = cluster.leader()
    print(f"node loss write downtime {writer.downtime_since(t0):.3f}s")
    cluster.start_agent(old)
    assert settle(cluster, writer, old, timeout=90) == new
    assert old in cluster.streaming_replicas()


def test_agent_killed_hands_over_at_once_and_the_node_rejoins(
    cluster: LabCluster, writer: Writer
) -> None:
    # The agent-death guard stops the primary, then revokes the lease once the postmaster
    # is gone: a replica takes the key at once instead of after the ttl, and the old node,
    # restarted as systemd's Restart=on-failure would, follows it.
    old = cluster.leader()
    assert old is not None
    t0 = time.monotonic()
    cluster.kill_agent(old)
    cluster.wait_for(lambda: cluster.nodes[old].postmaster_pid() is None, "the primary to stop", 10)
    took = cluster.wait_for(lambda: cluster.leader() not in (None, old), "a new leader", 30)
    assert took < 10, f"the key was not released by the guard: new leader after {took:.1f}s"
    new = cluster.leader()
    print(f"agent crash: new leader after {took:.2f}s")
    cluster.start_agent(old)
    assert settle(cluster, writer, old, timeout=90) == new
    assert old in cluster.streaming_replicas()
    print(f"agent crash write downtime {writer.downtime_since(t0):.3f}s")
    writer.stop()
    assert writer.lost(writer.dsn) == []


def test_a_crashed_primary_that_cannot_start_hands_over(
    cluster: LabCluster, writer: Writer
) -> None:
    # A setting PostgreSQL refuses at start, then the postmaster dies: as Patroni does, the
    # leader gives its key up after one failed start instead of retrying it for
    # primary_start_timeout (300 s), and a replica leads.
    old = cluster.leader()
    assert old is not None
    auto = cluster.nodes[old].data_dir / "postgresql.auto.conf"
    settings = auto.read_text()
    log_path = cluster.nodes[old].base / "haagent.log"
    logged = log_path.stat().st_size
    auto.write_text(settings + "shared_buffers = 'lots'\n")
    try:
        t0 = time.monotonic()
        assert cluster.kill_postmaster(old) is not None
        took = cluster.wait_for(lambda: cluster.leader() not in (None, old), "a new leader", 30)
        print(f"a primary that cannot start: new leader after {took:.1f}s")
        with log_path.open(errors="replace") as log:
            log.seek(logged)
            assert "primary_start_failed" in log.read()
        assert writer.downtime_since(t0) < 30
    finally:
        auto.write_text(settings)  # the node can start again and rejoins as a replica


def test_a_switchover_in_maintenance_mode_is_carried_out(cluster: LabCluster) -> None:
    # As Patroni does: pause, then a manual switchover to a named candidate happens; the
    # old primary follows the new one and nothing else is automatic.
    old = cluster.leader()
    assert old is not None
    assert patch_config(cluster, old, {"pause": True}) == 200
    cluster.wait_for(
        lambda: all(n.api("/patroni")[1].get("pause") for n in cluster.nodes.values()),
        "every member paused",
        30,
    )
    candidate = next(n for n in cluster.nodes if n != old)
    code, text = post(cluster, old, "/switchover", {"leader": old, "candidate": candidate})
    assert code == 200, text
    cluster.wait_for(lambda: cluster.leader() == candidate, f"{candidate} to lead", 30)
    cluster.wait_for(
        lambda: old in cluster.streaming_replicas(), f"{old} to follow {candidate}", 60
    )
