"""Config changes, stop modes, post_bootstrap and separate config dirs on real PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from pgnodes import HBA, Nodes

from haagent.config.model import BootstrapSettings
from haagent.postgres.errors import BootstrapError

pytestmark = pytest.mark.integration


async def test_changed_parameters_reload_or_show_pending_restart(nodes: Nodes) -> None:
    node = nodes.make("node1", "127.0.0.11")
    await node.pg.bootstrap(timeout=120)
    assert await node.pg.apply_config() is False  # nothing changed

    params = {**node.settings.parameters, "work_mem": "7MB"}
    node.pg.instance.settings = replace(node.settings, parameters=params)
    assert await node.pg.apply_config() is False  # reloadable
    assert await node.sql("SHOW work_mem") == [("7MB",)]

    params["shared_buffers"] = "24MB"
    node.pg.instance.settings = replace(node.settings, parameters=params)
    assert await node.pg.apply_config() is True
    assert (await node.pg.status()).pending_restart

    await node.pg.restart("primary", None)
    status = await node.pg.status()
    assert status.accepting and not status.pending_restart
    assert await node.sql("SHOW shared_buffers") == [("24MB",)]
    assert await node.pg.reload()


async def test_smart_stop_escalates_when_clients_stay(nodes: Nodes) -> None:
    node = nodes.make("node1", "127.0.0.11")
    await node.pg.bootstrap(timeout=120)
    async with await psycopg.AsyncConnection.connect(node.dsn()):
        started = time.monotonic()
        assert await node.pg.stop("smart", timeout=0.5)
        elapsed = time.monotonic() - started
    print(f"\nsmart stop with a client connected: escalated to fast, gone in {elapsed:.2f}s")
    assert 0.5 <= elapsed < 3
    status = await node.pg.status()
    assert not status.running and status.cluster_state == "shut down"
    assert await node.pg.stop() is False  # idempotent


async def test_post_bootstrap_gets_a_connection_string_and_no_password(
    nodes: Nodes, workdir: Path
) -> None:
    script = workdir / "post.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "$@" > "$(dirname "$0")/args"\n'
        '/usr/lib/postgresql/15/bin/psql "$1" -v ON_ERROR_STOP=1 \\\n'
        '  -c "CREATE TABLE made_by_script ()"\n'
    )
    script.chmod(0o755)
    boot = BootstrapSettings(
        initdb=("no-sync", "data-checksums"), pg_hba=HBA, post_bootstrap=str(script)
    )
    node = nodes.make("node1", "127.0.0.11", bootstrap=boot)
    await node.pg.bootstrap(timeout=120)
    args = (workdir / "args").read_text().strip()
    assert args == f"dbname=postgres user=postgres host=127.0.0.11 port={node.port}"
    assert await node.sql("SELECT count(*) FROM made_by_script") == [(0,)]
    assert await node.sql("SHOW data_checksums") == [("on",)]


async def test_post_bootstrap_over_the_unix_socket(nodes: Nodes, workdir: Path) -> None:
    # use_unix_socket with unix_socket_directories: the script gets host=<directory>,
    # which psql reads as a socket directory (a URL with a path for a host it misreads).
    script = workdir / "post.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "$@" > "$(dirname "$0")/args"\n'
        'echo "$PGOPTIONS" > "$(dirname "$0")/pgoptions"\n'
        '/usr/lib/postgresql/15/bin/psql "$1" -v ON_ERROR_STOP=1 \\\n'
        '  -c "CREATE TABLE made_over_the_socket AS SELECT inet_server_addr() AS addr"\n'
    )
    script.chmod(0o755)
    boot = BootstrapSettings(initdb=("no-sync",), pg_hba=HBA, post_bootstrap=str(script))
    node = nodes.make("node1", "127.0.0.11", bootstrap=boot, use_unix_socket=True)
    await node.pg.bootstrap(timeout=120)
    args = (workdir / "args").read_text().strip()
    assert args == f"dbname=postgres user=postgres host={workdir} port={node.port}"
    assert await node.sql("SELECT addr FROM made_over_the_socket") == [(None,)]  # a socket
    assert (workdir / "pgoptions").read_text().strip() == (
        "-c synchronous_commit=local -c statement_timeout=0"
    )


async def test_a_failed_bootstrap_removes_what_it_made(nodes: Nodes, workdir: Path) -> None:
    boot = BootstrapSettings(initdb=("no-sync",), pg_hba=HBA, post_bootstrap="/bin/false")
    node = nodes.make("node1", "127.0.0.11", bootstrap=boot)
    node.settings.data_dir.mkdir(parents=True)
    with pytest.raises(BootstrapError, match="post_bootstrap '/bin/false' exited with 1"):
        await node.pg.bootstrap(timeout=120)
    assert node.settings.data_dir.is_dir()  # it existed (empty) before: kept, and empty
    assert list(node.settings.data_dir.iterdir()) == []
    assert not (await node.pg.status()).running


async def test_separate_config_dir(nodes: Nodes, workdir: Path) -> None:
    node = nodes.make("node1", "127.0.0.11", config_dir=workdir / "node1" / "etc")
    await node.pg.bootstrap(timeout=120)
    etc = workdir / "node1" / "etc"
    assert sorted(p.name for p in etc.iterdir()) == [
        "pg_hba.conf",
        "pg_ident.conf",
        "postgresql.base.conf",
        "postgresql.conf",
    ]
    assert (await node.sql("SHOW hba_file"))[0][0] == str(etc / "pg_hba.conf")
    assert (await node.sql("SHOW config_file"))[0][0] == str(etc / "postgresql.conf")
    # The user's file in the data directory is left as it was.
    original = (node.settings.data_dir / "postgresql.conf").read_text()
    assert "# PostgreSQL configuration file" in original and "haagent" not in original
