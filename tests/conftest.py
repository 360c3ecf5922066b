"""Fixtures shared by every test: real etcd and PostgreSQL processes on loopback.

PostgreSQL refuses to run as root, so when pytest starts as root it re-runs
itself as the `postgres` OS user before collecting anything: every process a
test starts then belongs to that user.  Every process is stopped by its pid.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from haagent_lab.lab import etcd as lab_etcd
from haagent_lab.lab import processes
from haagent_lab.lab.cluster import LabCluster
from support.labs import FAST_TIMINGS
from support.postgres_instance import PostgresInstance

TEST_USER = "postgres"
THREE_NODE_HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    if os.geteuid() != 0:
        return
    env = dict(os.environ)
    env.update(
        HOME=os.path.expanduser(f"~{TEST_USER}"),
        USER=TEST_USER,
        HYPOTHESIS_STORAGE_DIRECTORY="/tmp/haagent-tests-hypothesis",
    )
    args = [*config.invocation_params.args, "-o", "cache_dir=/tmp/haagent-tests-pytest-cache"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(config.invocation_params.dir)
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    os.execve(runuser, [runuser, "-u", TEST_USER, "--", sys.executable, "-m", "pytest", *args], env)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh directory owned by the test user, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="haagent-test-"))
    path.chmod(0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def etcd(workdir: Path) -> Iterator[lab_etcd.EtcdCluster]:
    """A single-member etcd on a free port of 127.0.0.1."""
    cluster = lab_etcd.make_cluster(workdir / "etcd", ["127.0.0.1"])
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def etcd_cluster(workdir: Path) -> Iterator[lab_etcd.EtcdCluster]:
    """A three-member etcd cluster on 127.0.0.11, .12 and .13."""
    cluster = lab_etcd.make_cluster(workdir / "etcd", THREE_NODE_HOSTS)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres(workdir: Path) -> Iterator[PostgresInstance]:
    """A running PostgreSQL 15 on a free port of 127.0.0.1, owned by the test user."""
    instance = PostgresInstance(
        data_dir=workdir / "pgdata",
        host="127.0.0.1",
        port=processes.free_port(),
        socket_dir=workdir,
        log_path=workdir / "postgres.log",
    )
    instance.initdb()
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def lab_factory(workdir: Path) -> Iterator[Callable[..., LabCluster]]:
    """Make three-node clusters (etcd, agents, PostgreSQL on 127.0.0.11-13, free ports).

    Fast timings by default (ttl 10, loop_wait 2, retry_timeout 3); every process
    is stopped afterwards, by pid.
    """
    made: list[LabCluster] = []

    def make(**kw: Any) -> LabCluster:
        kw.setdefault("dynamic", dict(FAST_TIMINGS))
        lab = LabCluster(
            workdir / f"lab{len(made)}",
            pg_port=None,
            api_port=None,
            etcd_ports=None,
            user=None,
            **kw,
        )
        made.append(lab)
        return lab

    yield make
    for lab in reversed(made):  # a lab sharing another's etcd stops before it
        lab.stop()
