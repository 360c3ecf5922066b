"""The guard revokes the agent's lease once it has stopped PostgreSQL, on a real etcd:
the leader key goes at once instead of after the ttl, and never while PostgreSQL runs."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest

from haagent.config.model import Etcd3Settings, PostgresqlSettings, Settings
from haagent.dcs.etcd import EtcdDCS
from haagent.watchdog.guard import boottime
from haagent.watchdog.guard_client import AgentDeathGuard, guard_argv
from haagent_lab.lab.etcd import EtcdCluster
from support.fake_postmaster import FakePostmaster

pytestmark = pytest.mark.integration


def settings_for(etcd: EtcdCluster, data_dir: Path) -> Settings:
    return Settings(
        scope="revoke",
        name="node1",
        postgresql=PostgresqlSettings(data_dir=data_dir),
        etcd3=Etcd3Settings(hosts=etcd.hosts),
    )


async def leader_on_etcd(settings: Settings) -> EtcdDCS:
    dcs = EtcdDCS.from_settings(settings)
    await dcs.open()
    assert await dcs.take_leader()
    return dcs


async def test_a_dead_agents_lease_is_revoked_once_postgres_is_stopped(
    etcd: EtcdCluster, tmp_path: Path
) -> None:
    postmaster = FakePostmaster(tmp_path)
    settings = settings_for(etcd, postmaster.data_dir)
    dcs = await leader_on_etcd(settings)
    observer = EtcdDCS.from_settings(dataclasses.replace(settings, name="observer"))
    await observer.open()
    try:
        guard = await AgentDeathGuard.start(guard_argv(settings, agent_pid=os.getpid()))
        guard.tell_etcd(settings.etcd3)
        guard.hold(boottime() + 30, 5, dcs.lease_id)
        await asyncio.sleep(0.2)
        assert observer.view().leader_name == "node1"
        died = time.monotonic()
        assert guard.process.stdin is not None
        guard.process.stdin.close()  # the agent dies
        for _ in range(200):  # the guard stops it (not a blocking wait: the loop runs on)
            if postmaster.gone():
                break
            await asyncio.sleep(0.05)
        assert postmaster.process.returncode == -signal.SIGINT
        while observer.view().leader_name is not None:
            assert time.monotonic() - died < 5, "the leader key is still there"
            await asyncio.sleep(0.02)
        gone_after = time.monotonic() - died
        print(f"leader key gone {gone_after:.3f}s after the agent died")
        assert gone_after < 1.0  # the ttl is 30 s
        await asyncio.wait_for(guard.process.wait(), 10)
    finally:
        postmaster.stop()
        await dcs.close()
        await observer.close()
