"""Bad inputs give clear errors and lose nothing."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from pgnodes import AUTH, Nodes

from haagent.config.model import Credentials
from haagent.postgres.errors import (
    ConfigurationError,
    DataDirectoryError,
    ReplicaCreationError,
    StartError,
)

pytestmark = pytest.mark.integration


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


async def test_wrong_bin_dir(nodes: Nodes, workdir: Path) -> None:
    node = nodes.make("node1", "127.0.0.11", bin_dir=workdir / "no-such-bin")
    with pytest.raises(ConfigurationError) as err:
        await node.pg.bootstrap(timeout=60)
    message = str(err.value)
    print(f"\n{message}")
    assert f"postgresql.bin_dir {workdir / 'no-such-bin'} does not exist" in message
    assert "/usr/lib/postgresql/15/bin" in message
    assert not node.settings.data_dir.exists()

    empty_bin = workdir / "empty-bin"
    empty_bin.mkdir()
    node = nodes.make("node2", "127.0.0.12", bin_dir=empty_bin)
    with pytest.raises(ConfigurationError, match="has no executable initdb"):
        await node.pg.bootstrap(timeout=60)


async def test_port_in_use(nodes: Nodes) -> None:
    node = nodes.make("node1", "127.0.0.11")
    await node.pg.bootstrap(timeout=120)
    await node.sql("CREATE TABLE kept (id int); INSERT INTO kept VALUES (42)")
    await node.pg.stop("fast")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((node.host, node.port))
        squatter.listen()
        with pytest.raises(StartError) as err:
            await node.pg.start_on_disk(timeout=30)
        message = str(err.value)
        print(f"\n{message}")
        assert f"{node.host}:{node.port}" in message and "already in use" in message
        assert f"pid {os.getpid()}" in message
    assert not (await node.pg.status()).running
    assert await node.pg.start_on_disk(timeout=60)
    assert await node.sql("SELECT id FROM kept") == [(42,)]


async def test_data_dir_not_empty_at_bootstrap(nodes: Nodes) -> None:
    node = nodes.make("node1", "127.0.0.11")
    node.settings.data_dir.mkdir(parents=True)
    (node.settings.data_dir / "precious.txt").write_text("keep me")
    with pytest.raises(DataDirectoryError) as err:
        await node.pg.bootstrap(timeout=60)
    print(f"\n{err.value}")
    assert "is not empty" in str(err.value) and "precious.txt" in str(err.value)
    assert listing(node.settings.data_dir) == ["precious.txt"]
    assert (node.settings.data_dir / "precious.txt").read_text() == "keep me"


async def test_existing_cluster_is_never_bootstrapped_over(nodes: Nodes) -> None:
    node = nodes.make("node1", "127.0.0.11")
    sysid = await node.pg.bootstrap(timeout=120)
    await node.pg.stop()
    with pytest.raises(DataDirectoryError, match="an existing cluster"):
        await node.pg.bootstrap(timeout=60)
    assert (await node.pg.status()).system_identifier == sysid


@pytest.mark.skipif(os.geteuid() == 0, reason="root owns everything")
async def test_data_dir_owned_by_someone_else(nodes: Nodes) -> None:
    root_owned = Path("/var/lib")
    assert os.stat(root_owned).st_uid == 0
    before = listing(root_owned)
    node = nodes.make("node1", "127.0.0.11", data_dir=root_owned)
    with pytest.raises(DataDirectoryError) as err:
        await node.pg.bootstrap(timeout=60)
    print(f"\n{err.value}")
    assert "/var/lib is owned by root" in str(err.value) and "chown -R" in str(err.value)
    with pytest.raises(DataDirectoryError, match="owned by root"):
        await node.pg.start_on_disk(timeout=10)

    inside = root_owned / "haagent-test-never-created" / "data"
    node = nodes.make("node2", "127.0.0.12", data_dir=inside)
    with pytest.raises(DataDirectoryError) as err:
        await node.pg.bootstrap(timeout=60)
    print(err.value)
    assert "cannot create data directory" in str(err.value) and "owned by root" in str(err.value)
    assert listing(root_owned) == before


async def test_wrong_replication_password(nodes: Nodes) -> None:
    primary = nodes.make("node1", "127.0.0.11")
    await primary.pg.bootstrap(timeout=120)
    wrong = AUTH.__class__(AUTH.superuser, Credentials("replicator", "not-the-password"))
    replica = nodes.make("node2", "127.0.0.12", authentication=wrong)
    with pytest.raises(ReplicaCreationError) as err:
        await replica.pg.create_replica([primary.upstream], timeout=60, retry_delay=0.1)
    message = str(err.value)
    print(f"\n{message}")
    assert "password authentication failed" in message
    assert "postgresql.authentication.replication" in message
    assert "not-the-password" not in message
    assert not replica.settings.data_dir.exists()
    assert (await primary.pg.status()).accepting
