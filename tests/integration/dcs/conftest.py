"""Fixtures for the DCS tests: `harness` runs a test on the in-memory store and on real etcd."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from dcs_harness import EtcdHarness, Harness, MemoryHarness

from haagent_lab.lab.etcd import EtcdCluster, make_cluster


@pytest.fixture(scope="module")
def shared_etcd() -> Iterator[EtcdCluster]:
    """One etcd member for a whole module (each test uses its own cluster prefix)."""
    base = Path(tempfile.mkdtemp(prefix="haagent-dcs-"))
    cluster = make_cluster(base / "etcd", ["127.0.0.1"])
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(
    params=["memory", pytest.param("etcd", marks=pytest.mark.integration)],
)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    h: Harness
    if request.param == "memory":
        h = MemoryHarness()
    else:
        h = EtcdHarness(request.getfixturevalue("shared_etcd"))
    try:
        yield h
    finally:
        await h.close()
