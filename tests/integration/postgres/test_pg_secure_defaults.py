"""Safe defaults on real PostgreSQL 15: what a bootstrap without pg_hba lines leaves open,
which pgpass lines the tools get, and which environment the postmaster inherits."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from pgnodes import AUTH, HBA, Node, Nodes, diverge, pair, wait_status

from haagent.config.model import BootstrapSettings, Credentials, PostgresqlAuthentication
from haagent.postgres.errors import BootstrapError

pytestmark = pytest.mark.integration

NO_HBA = BootstrapSettings(initdb=("no-sync",))


def connect(host: str, port: int, password: str | None) -> None:
    dsn = f"host={host} port={port} user=postgres dbname=postgres connect_timeout=5"
    dsn += " passfile=/nonexistent" + (f" password={password}" if password else "")
    psycopg.connect(dsn).close()


async def test_without_pg_hba_lines_tcp_needs_a_password(nodes: Nodes) -> None:
    """initdb's own default is trust: haagent asks for peer (local) and scram-sha-256 (host)."""
    node = nodes.make("node1", "127.0.0.11", bootstrap=NO_HBA)
    await node.pg.bootstrap(timeout=120)
    assert (await node.pg.status()).accepting  # the agent logs in with the password
    with pytest.raises(psycopg.OperationalError, match="password"):
        connect("127.0.0.11", node.port, None)
    connect("127.0.0.11", node.port, AUTH.superuser.password)
    hba = (node.settings.data_dir / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert rules and all(rule[-1] != "trust" for rule in rules), rules
    assert any(rule[0] == "local" and rule[-1] == "peer" for rule in rules)


async def test_a_superuser_without_password_is_refused_before_initdb(nodes: Nodes) -> None:
    auth = PostgresqlAuthentication(
        superuser=Credentials("postgres"), replication=AUTH.replication, rewind=AUTH.rewind
    )
    node = nodes.make("node1", "127.0.0.11", bootstrap=NO_HBA, authentication=auth)
    with pytest.raises(BootstrapError, match=r"superuser\.password, or bootstrap\.pg_hba"):
        await node.pg.bootstrap(timeout=120)
    assert not (node.settings.data_dir / "PG_VERSION").exists()


def pgpass_lines(node: Node) -> list[str]:
    return node.settings.pgpass.read_text().splitlines()


@pytest.mark.slow
async def test_pgpass_lines_are_scoped_to_the_server_in_use(nodes: Nodes) -> None:
    """The superuser's password is offered only to this node's own PostgreSQL; the
    replication user's to the upstream; a rewind without a rewind user offers the
    superuser's to the source only while pg_rewind runs."""
    no_rewind_user = replace(AUTH, rewind=None)
    primary, replica = await pair(nodes, authentication=no_rewind_user)
    su, rep = AUTH.superuser, AUTH.replication
    assert pgpass_lines(replica) == [
        f"127.0.0.12:{replica.port}:*:{su.username}:{su.password}",
        f"127.0.0.11:{primary.port}:*:{rep.username}:{rep.password}",
    ]
    assert pgpass_lines(primary) == [f"127.0.0.11:{primary.port}:*:{su.username}:{su.password}"]
    await diverge(primary, replica)
    outcome = await primary.pg.demote("fast", replica.upstream, timeout=60)
    assert "rewound" in outcome  # pg_rewind logged in as the superuser, through the pgpass
    await wait_status(primary, lambda s: s.receiver_streaming, "streaming from node2")
    assert pgpass_lines(primary) == [
        f"127.0.0.11:{primary.port}:*:{su.username}:{su.password}",
        f"127.0.0.12:{replica.port}:*:{rep.username}:{rep.password}",
    ]


SECRETS = {
    "HAAGENT_SUPERUSER_PASSWORD": "env-secret-1",
    "PATRONI_REPLICATION_PASSWORD": "env-secret-2",
    "PGPASSWORD": "env-secret-3",
    "HAACTL_PASSWORD": "env-secret-4",
    "NOTIFY_SOCKET": "/run/systemd/notify",
}


async def test_the_postmaster_and_the_tools_get_a_scrubbed_environment(
    nodes: Nodes, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HAAGENT_TEST_KEEP_OUT", "x")
    monkeypatch.setenv("TZ", "UTC")  # an ordinary variable is passed on
    script = workdir / "post.sh"
    script.write_text('#!/bin/sh\nenv > "$(dirname "$0")/post-env"\n')
    script.chmod(0o755)
    boot = BootstrapSettings(initdb=("no-sync",), pg_hba=HBA, post_bootstrap=str(script))
    node = nodes.make("node1", "127.0.0.11", bootstrap=boot)
    await node.pg.bootstrap(timeout=120)
    pid = node.pg.instance.postmaster()
    assert pid is not None
    raw = await asyncio.to_thread(Path(f"/proc/{pid.pid}/environ").read_bytes)
    postmaster = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    tool = dict(
        line.split("=", 1)
        for line in (await asyncio.to_thread((workdir / "post-env").read_text)).splitlines()
        if "=" in line
    )
    for env in (postmaster, tool):
        assert not {k for k in env if k in SECRETS or k.startswith("HAAGENT_")}, sorted(env)
        assert not any(value in env.values() for value in SECRETS.values())
        assert env.get("TZ") == "UTC"
