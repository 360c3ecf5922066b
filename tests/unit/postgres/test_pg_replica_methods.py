"""create_replica_methods on a real data directory: real scripts, no PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from haagent.config.model import (
    BootstrapSettings,
    DynamicConfig,
    PostgresqlSettings,
    ReplicaMethod,
    StandbyCluster,
)
from haagent.config.replica_methods import replica_methods
from haagent.postgres.errors import ReplicaCreationError
from haagent.postgres.instance import Instance
from haagent.postgres.replica import build_replica


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def instance(tmp_path: Path, methods: tuple[ReplicaMethod, ...]) -> Instance:
    settings = PostgresqlSettings(data_dir=tmp_path / "data", create_replica_methods=methods)
    return Instance(settings, BootstrapSettings(), "node1", "batman")


def test_a_method_never_runs_on_a_data_directory_that_is_not_empty(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    command = script(tmp_path / "r.sh", f'echo "$@" >> {calls}\n')
    method = ReplicaMethod("restore", command=command, no_leader=True)
    pg = instance(tmp_path, (method,))
    (tmp_path / "data").mkdir(mode=0o700)
    (tmp_path / "data" / "precious").write_text("keep me")
    with pytest.raises(ReplicaCreationError, match=r"not empty and postgresql\.restore\.keep_data"):
        asyncio.run(build_replica(pg, (method,), [], timeout=10))
    assert not calls.exists()  # never called
    assert (tmp_path / "data" / "precious").read_text() == "keep me"


def test_a_failed_method_falls_through_and_its_leftovers_go(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    first = ReplicaMethod(
        "first",
        command=script(tmp_path / "a.sh", f'echo first "$@" >> {calls}\ntouch "$6"/half\nexit 1\n'),
        no_leader=True,
    )
    second = ReplicaMethod(
        "second",
        command=script(tmp_path / "b.sh", f'echo second "$@" >> {calls}\nexit 2\n'),
        no_leader=True,
        options=(("no_leader", "True"),),
    )
    pg = instance(tmp_path, (first, second))
    with pytest.raises(ReplicaCreationError, match=r"every replica method failed: first: .*second"):
        asyncio.run(build_replica(pg, (first, second), [], timeout=10))
    lines = calls.read_text().splitlines()
    data = tmp_path / "data"
    assert lines == [
        f"first --scope=batman --role=replica --datadir={data} --connstring=",
        f"second --no_leader=True --scope=batman --role=replica --datadir={data} --connstring=",
    ]
    # What the first one left was removed (the directory was missing before).
    assert not data.exists() or not any(data.iterdir())


def test_with_no_source_only_the_no_leader_methods_run(tmp_path: Path) -> None:
    method = ReplicaMethod("restore", command="/bin/false")
    pg = instance(tmp_path, (ReplicaMethod("basebackup"), method))
    with pytest.raises(
        ReplicaCreationError, match="no create_replica_methods method with no_leader"
    ):
        asyncio.run(build_replica(pg, pg.settings.create_replica_methods, [], timeout=10))


def test_an_archive_only_standby_leader_is_restored_by_the_standby_clusters_method(
    tmp_path: Path,
) -> None:
    """standby_cluster without host, its create_replica_methods naming a section that
    postgresql.create_replica_methods does not list: that method runs with no source,
    and the data directory is left a standby replaying the section's restore_command."""
    calls = tmp_path / "calls"
    restore = ReplicaMethod(
        "restore",
        command=script(
            tmp_path / "r.sh", f'echo "$@" >> {calls}\necho 15 > "${{3#--datadir=}}"/PG_VERSION\n'
        ),
        no_leader=True,
        no_params=False,
    )
    settings = PostgresqlSettings(data_dir=tmp_path / "data", other_replica_methods=(restore,))
    pg = Instance(settings, BootstrapSettings(), "node1", "batman")
    standby = StandbyCluster(restore_command="cp /dr/%f %p", create_replica_methods=("restore",))
    pg.dynamic = DynamicConfig(standby_cluster=standby)
    chosen = replica_methods(settings, pg.dynamic)
    assert [m.name for m in chosen.methods] == ["restore"]
    assert asyncio.run(build_replica(pg, chosen.methods, [], timeout=10, key=chosen.key)) is None
    assert calls.read_text().split()[2] == f"--datadir={tmp_path / 'data'}"
    conf = (tmp_path / "data" / "postgresql.conf").read_text()
    assert "restore_command = 'cp /dr/%f %p'" in conf and "primary_conninfo" not in conf
    assert (tmp_path / "data" / "standby.signal").exists()
    # Without a method that restores a backup, the error names the key to set.
    with pytest.raises(ReplicaCreationError, match=r"create_replica_methods: name a method"):
        asyncio.run(build_replica(pg, (ReplicaMethod("basebackup"),), [], 10, key=chosen.key))
