"""Several etcd endpoints: losing the member in use moves calls and the watch elsewhere."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import pytest

from haagent.config.model import Address
from haagent.dcs.channel import EtcdChannel
from haagent.dcs.etcd import EtcdDCS, EtcdKV
from haagent_lab.lab.etcd import EtcdCluster

pytestmark = pytest.mark.integration

PREFIX = "/service/failover/"


def raft_leader(cluster: EtcdCluster) -> Address:
    """The etcd member that is the raft leader right now."""
    out = subprocess.run(
        ["/usr/bin/etcdctl", "--endpoints", cluster.endpoints, "endpoint", "status", "-w", "json"],
        env={**os.environ, "ETCDCTL_API": "3"},
        capture_output=True,
        check=True,
        timeout=10,
    ).stdout
    for entry in json.loads(out):
        status = entry["Status"]
        if status["header"]["member_id"] == status["leader"]:
            host, port = entry["Endpoint"].removeprefix("http://").rsplit(":", 1)
            return Address(host, int(port))
    raise AssertionError(f"no raft leader in {out!r}")


@pytest.mark.parametrize(
    ("role", "fault"),
    [("raft-leader", "killed"), ("follower", "killed"), ("follower", "hung")],
)
async def test_losing_the_member_in_use_keeps_the_leader_key(
    etcd_cluster: EtcdCluster, role: str, fault: str
) -> None:
    ttl, retry_timeout = 10, 4.5
    leader = raft_leader(etcd_cluster)
    others = [h for h in etcd_cluster.hosts if h != leader]
    # The client uses the first host: the raft leader itself, or a follower.
    hosts = (leader, *others) if role == "raft-leader" else (*others, leader)
    a = EtcdDCS(EtcdChannel(hosts), name="a", prefix=PREFIX, ttl=ttl, retry_timeout=retry_timeout)
    await a.open()
    used = a.channel.current
    index = [str(h) for h in etcd_cluster.hosts].index(used)
    survivors = tuple(h for h in hosts if str(h) != used)
    b = EtcdDCS(EtcdChannel(survivors), name="b", prefix=PREFIX, ttl=ttl, retry_timeout=3)
    raw = EtcdKV(EtcdChannel(survivors))
    await b.open()
    process = etcd_cluster.members[index].process
    assert process is not None
    try:
        assert await a.take_leader()
        lease = a.lease_id
        if fault == "killed":
            etcd_cluster.stop_member(index, kill=True)
        else:
            process.send_signal(signal.SIGSTOP)  # alive but silent, like a partition
        renewals: list[float] = []
        deadline = time.monotonic() + ttl + 2
        while time.monotonic() < deadline:
            started = time.monotonic()
            await a.renew_leader()  # must never raise: the key is kept
            renewals.append(time.monotonic() - started)
            _, kvs = await raw.range((PREFIX + "leader").encode(), None, budget=3)
            assert [(kv.value, kv.lease) for kv in kvs] == [(b"a", lease)]
            await asyncio.sleep(1.0)
        print(
            f"\n[etcd x3] {fault} {used} ({role}); {len(renewals)} renewals, the first took "
            f"{renewals[0]:.3f}s, the slowest {max(renewals):.3f}s; calls moved to "
            f"{a.channel.current}"
        )
        assert a.channel.current != used
        assert a.lease_id == lease
        # The watch moved too: a change made through another client shows in a's view.
        a.changed.clear()
        assert await b.write_failover(leader="a", candidate="b", scheduled_at=None)
        await asyncio.wait_for(a.changed.wait(), retry_timeout)
        failover = a.view().failover
        assert failover is not None and failover.candidate == "b"
        assert a.watch_live
    finally:
        process.send_signal(signal.SIGCONT)
        await a.close()
        await b.close()
        await raw.close()


async def test_a_dead_first_endpoint_is_skipped_at_open(etcd_cluster: EtcdCluster) -> None:
    etcd_cluster.stop_member(0, kill=True)
    a = EtcdDCS(EtcdChannel(etcd_cluster.hosts), name="a", prefix=PREFIX, retry_timeout=3)
    started = time.monotonic()
    await a.open()
    try:
        assert time.monotonic() - started < 3
        assert a.channel.current != str(etcd_cluster.hosts[0])
        assert await a.take_leader()
        assert a.view().leader_name == "a"
    finally:
        await a.close()
