"""End to end with pgBackRest (Debian's) as the backup tool behind archive_command,
restore_command, create_replica_methods and bootstrap.method (issue 16).

One three-node lab and one single-node lab serve every check in sequence (CI time),
with a pgBackRest repository in the test's temporary directory:

1. the lab starts before any backup exists: each replica's `pgbackrest` method fails
   and falls through to basebackup;
2. a full backup is taken from the leader; a replica whose data directory was removed
   is then built by pgBackRest (and streams from the leader, its restore_command from
   `postgresql.recovery_conf`); then, with every agent stopped, it is built again from
   the backup and the archive alone (`no_leader`), and follows once the others return;
3. a replica promoted by hand (in maintenance mode) writes on its own timeline until
   its WAL from before the fork is recycled; haagent rewinds it with pg_rewind
   --restore-target-wal, which fetches that WAL from the archive;
4. a new cluster is bootstrapped from the backup to a chosen point in time
   (`bootstrap.method`) and holds exactly the rows committed before it;
5. an archive-only standby cluster of two (`standby_cluster` with `restore_command` and
   no host): its members are restored from the backup by the method
   `standby_cluster.create_replica_methods` names (issue 17); both have the rows the
   primary writes after a `pg_switch_wal()`; its standby leader's node is lost and the
   other member takes over, replaying the archive; promote-cluster makes it the primary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from haagent_lab.lab.cluster import LAB_PASSWORD, PG_BIN, LabCluster, LabNode
from support.labs import streams_from

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PGBACKREST = shutil.which("pgbackrest") or "/usr/bin/pgbackrest"
STANZA = "lab"


def write_pgbackrest_conf(node: LabNode, repo: Path) -> Path:
    """The node's own pgBackRest config: the shared repository, its own data directory."""
    path = node.base.parent / f"{node.name}-pgbackrest.conf"
    for sub in ("log", "lock", "spool"):
        (node.base.parent / f"{node.name}-pgbackrest-{sub}").mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[global]\n"
        f"repo1-path={repo}\n"
        f"log-path={node.base.parent / (node.name + '-pgbackrest-log')}\n"
        f"lock-path={node.base.parent / (node.name + '-pgbackrest-lock')}\n"
        f"spool-path={node.base.parent / (node.name + '-pgbackrest-spool')}\n"
        "log-level-console=warn\nlog-level-file=info\nstart-fast=y\n"
        f"[{STANZA}]\n"
        f"pg1-path={node.data_dir}\npg1-port={node.pg_port}\npg1-socket-path={node.base}\n"
        "pg1-user=postgres\n"
    )
    return path


def pgbackrest(conf: Path, *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [PGBACKREST, f"--config={conf}", f"--stanza={STANZA}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PGPASSWORD": LAB_PASSWORD},
        check=False,
    )
    assert result.returncode == 0, f"pgbackrest {' '.join(args)}: {result.stderr}{result.stdout}"
    return result.stdout


def sql(node: LabNode, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(node.dsn, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def _rows(node: LabNode) -> int | None:
    try:
        return int(sql(node, "SELECT count(*) FROM pitr")[0][0])
    except psycopg.Error:
        return None


def agent_log(node: LabNode) -> str:
    return (node.base / "haagent.log").read_text()


def test_pgbackrest_replicas_and_point_in_time_bootstrap(
    lab_factory: Callable[..., LabCluster], workdir: Path
) -> None:
    repo = workdir / "pgbackrest-repo"
    repo.mkdir()

    def configure(node: LabNode, config: dict[str, Any]) -> None:
        node.base.mkdir(parents=True, exist_ok=True)
        conf = write_pgbackrest_conf(node, repo)
        pg = config["postgresql"]
        if node.base.parent.name == "lab0":
            pg["parameters"].update(
                wal_keep_size=0,  # a checkpoint recycles what it no longer needs (step 3)
                min_wal_size="32MB",
                archive_mode="on",
                archive_command=f"{PGBACKREST} --config={conf} --stanza={STANZA} archive-push %p",
            )
            pg["recovery_conf"] = {
                "restore_command": f"{PGBACKREST} --config={conf} --stanza={STANZA} "
                'archive-get %f "%p"'
            }
            pg["create_replica_methods"] = ["pgbackrest", "basebackup"]
            pg["pgbackrest"] = {
                "command": f"{PGBACKREST} --config={conf} --stanza={STANZA} restore --type=standby",
                "no_params": True,
                "no_leader": True,
            }
        else:  # the new cluster, restored to a point in time
            target = (workdir / "target-time").read_text()
            config["bootstrap"]["method"] = "pitr"
            config["bootstrap"]["pitr"] = {
                "command": f"{PGBACKREST} --config={conf} --stanza={STANZA} restore "
                f"--type=time --target='{target}' --target-action=promote",
                "keep_existing_recovery_conf": True,
                "no_params": True,
            }
            del config["bootstrap"]["initdb"]

    lab = lab_factory(configure=configure)
    lab.start(timeout=120)
    leader = lab.leader()
    assert leader is not None
    replicas = sorted(n for n in lab.nodes if n != leader)

    # 1. No backup yet: pgbackrest fails, basebackup builds the replicas.
    for name in replicas:
        text = agent_log(lab.nodes[name])
        assert "replica method pgbackrest failed" in text, text
        assert "trying the next method" in text

    # 2. A full backup, then a replica rebuilt by pgBackRest.
    leader_conf = lab.nodes[leader].base.parent / f"{leader}-pgbackrest.conf"
    pgbackrest(leader_conf, "stanza-create")
    sql(lab.nodes[leader], "CREATE TABLE pitr (id int PRIMARY KEY, at timestamptz DEFAULT now())")
    sql(lab.nodes[leader], "INSERT INTO pitr (id) SELECT generate_series(1, 10)")
    pgbackrest(leader_conf, "backup", "--type=full")
    time.sleep(1.1)  # pgBackRest keeps the backup's stop time in whole seconds
    sql(lab.nodes[leader], "INSERT INTO pitr (id) SELECT generate_series(11, 20)")
    target = sql(lab.nodes[leader], "SELECT now()::text")[0][0]
    (workdir / "target-time").write_text(target)
    time.sleep(1.1)
    sql(lab.nodes[leader], "INSERT INTO pitr (id) SELECT generate_series(21, 30)")
    segment = sql(lab.nodes[leader], "SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    lab.wait_for(
        lambda: (
            sql(lab.nodes[leader], "SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
            is not None
            and sql(lab.nodes[leader], "SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
            >= segment
        ),
        f"{segment} to be archived",
        30,
    )

    rebuilt = replicas[-1]
    lab.stop_agent(rebuilt)
    shutil.rmtree(lab.nodes[rebuilt].data_dir)
    lab.start_agent(rebuilt)
    lab.wait_for(
        lambda: "pgbackrest built the replica" in agent_log(lab.nodes[rebuilt]),
        f"pgBackRest to build {rebuilt}",
        90,
    )
    lab.wait_for(
        lambda: rebuilt in lab.streaming_replicas(), f"{rebuilt} to stream from {leader}", 60
    )
    lab.wait_healthy(60)
    assert sql(lab.nodes[rebuilt], "SELECT count(*) FROM pitr")[0][0] == 30
    names = "('restore_command', 'recovery_target_time')"
    settings = dict(
        sql(lab.nodes[rebuilt], f"SELECT name, setting FROM pg_settings WHERE name IN {names}")
    )
    assert "archive-get" in settings["restore_command"]
    assert settings["recovery_target_time"] == ""  # pgBackRest's target does not outlive it

    # 2b. No leader running: a replica built from the backup and the archive alone
    # (no_leader); tagged nofailover so that it does not lead a cluster on its own.
    for name in [*replicas, leader]:
        lab.stop_agent(name)
    lonely = lab.nodes[rebuilt]
    shutil.rmtree(lonely.data_dir)
    lonely.tags["nofailover"] = True
    lab.write_configs()
    lab.start_agent(rebuilt)
    lab.wait_for(
        lambda: agent_log(lonely).count("pgbackrest built the replica") == 2,
        f"pgBackRest to build {rebuilt} with no leader",
        90,
    )
    assert "(no_leader)" in agent_log(lonely)
    # Rows 21-30 came from the archive, through postgresql.recovery_conf's restore_command.
    lab.wait_for(lambda: _rows(lonely) == 30, f"{rebuilt} to replay the archive", 60)
    assert sql(lonely, "SELECT pg_is_in_recovery()")[0][0] is True
    for name in [leader, *replicas]:
        lab.start_agent(name)
    lab.wait_healthy(90)

    # 3. pg_rewind through restore_command: in maintenance mode a replica is promoted by
    # hand and writes on its own timeline until its WAL from before the fork is recycled;
    # once the pause ends, haagent rewinds it (fetching that WAL from the archive).
    leader = lab.leader()
    assert leader is not None
    reply = lab.nodes[leader].call("PATCH", "/config", {"pause": True})
    assert reply.ok, reply.text
    lab.wait_for(
        lambda: all(n.api("/patroni")[1].get("pause") for n in lab.nodes.values()),
        "every member paused",
        30,
    )
    rogue = lab.nodes[next(n for n in sorted(lab.nodes) if n != leader)]
    # Its own timeline stays out of the shared archive (in a real split brain, the fence
    # stops such a node): it would be "latest" for every replica's recovery.  pg_rewind
    # replaces postgresql.auto.conf with the leader's, so this ends with the rewind.
    sql(rogue, "ALTER SYSTEM SET archive_command = '/bin/true'")
    sql(rogue, "SELECT pg_reload_conf()")
    subprocess.run([str(PG_BIN / "pg_ctl"), "promote", "-w", "-D", str(rogue.data_dir)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    newest = max((rogue.data_dir / "pg_wal").glob("*.history"))
    history = newest.read_text()
    fork = history.strip().splitlines()[-1].split()[1]
    forked_segment = sql(lab.nodes[leader], f"SELECT pg_walfile_name('{fork}')")[0][0]
    sql(rogue, "CREATE TABLE rogue (id int)")
    for _ in range(4):
        sql(rogue, "INSERT INTO rogue VALUES (1)")
        sql(rogue, "SELECT pg_switch_wal()")
        sql(rogue, "CHECKPOINT")
    sql(lab.nodes[leader], "INSERT INTO pitr (id) VALUES (31)")
    sql(lab.nodes[leader], "SELECT pg_switch_wal()")
    assert not (rogue.data_dir / "pg_wal" / forked_segment).exists()
    reply = lab.nodes[leader].call("PATCH", "/config", {"pause": False})
    assert reply.ok, reply.text
    lab.wait_for(
        lambda: rogue.name in lab.streaming_replicas() and _rows(rogue) == 31,
        f"{rogue.name} rewound, following {leader}",
        90,
    )
    assert "rewound" in agent_log(rogue), "\n".join(agent_log(rogue).splitlines()[-40:])
    assert sql(rogue, "SELECT to_regclass('rogue') IS NULL")[0][0] is True
    lab.wait_healthy(60)

    # 4. A new cluster from the backup, to the point in time: rows 1-20, not 21-30.
    pitr = lab_factory(names=("pitr1",), hosts=("127.0.0.11",), configure=configure)
    pitr.start(timeout=60)
    node = pitr.nodes["pitr1"]
    assert pitr.leader() == "pitr1"
    assert sql(node, "SELECT count(*), max(id) FROM pitr")[0] == (20, 20)
    assert sql(node, "SELECT pg_is_in_recovery()")[0][0] is False
    code, body = node.api("/patroni")
    assert code == 200 and body["role"] == "primary"

    # 5. An archive-only standby cluster: no host to copy from; its members are restored
    # by the method its standby_cluster section names, its leader replays the archive.
    primary = lab.nodes[lab.leader() or leader]
    shared_conf = primary.base.parent / f"{primary.name}-pgbackrest.conf"
    # PostgreSQL runs restore_command in its data directory, pgBackRest's pg1-path.
    get = f'{PGBACKREST} --config={shared_conf} --stanza={STANZA} --pg1-path="$PWD" ' + (
        'archive-get %f "%p"'
    )

    def configure_dr(node: LabNode, config: dict[str, Any]) -> None:
        node.base.mkdir(parents=True, exist_ok=True)
        conf = write_pgbackrest_conf(node, repo)
        config["bootstrap"]["dcs"]["standby_cluster"] = {
            "restore_command": get,
            "create_replica_methods": ["pgbackrest"],
        }
        # Not in postgresql.create_replica_methods: read for the standby_cluster's list.
        config["postgresql"]["pgbackrest"] = {
            "command": f"{PGBACKREST} --config={conf} --stanza={STANZA} restore --type=standby",
            "no_params": True,
            "no_leader": True,
        }

    dr = lab_factory(names=("dr1", "dr2"), hosts=("127.0.0.12", "127.0.0.13"), scope="dr",
                     shared_etcd=lab.etcd, configure=configure_dr)  # fmt: skip

    def dr_leader() -> str | None:
        found = [n for n, node in dr.nodes.items() if node.api("/standby-leader")[0] == 200]
        return found[0] if len(found) == 1 else None

    def replayed(name: str, ids: range) -> bool:
        try:
            query = f"SELECT count(*) FROM pitr WHERE id BETWEEN {ids.start} AND {ids[-1]}"
            return bool(sql(dr.nodes[name], query)[0][0] == len(ids))
        except psycopg.Error:
            return False

    dr.start(wait=False)
    dr.wait_for(
        lambda: (first := dr_leader()) is not None and len(streams_from(dr, first)) == 1,
        "a standby leader of dr, the other member streaming from it",
        90,
    )
    first = dr_leader()
    assert first is not None
    for node in dr.nodes.values():
        assert "pgbackrest built the replica" in agent_log(node)
    standby = dr.nodes[first]
    code, body = standby.api("/patroni")
    assert code == 200 and body["role"] == "standby_leader", body
    assert standby.api("/primary")[0] == 503 and standby.api("/leader")[0] == 200
    names = "('restore_command', 'primary_conninfo')"
    settings = dict(sql(standby, f"SELECT name, setting FROM pg_settings WHERE name IN {names}"))
    assert settings == {"restore_command": get, "primary_conninfo": ""}
    sql(primary, "INSERT INTO pitr (id) SELECT generate_series(1001, 1010)")
    sql(primary, "SELECT pg_switch_wal()")
    for name in dr.nodes:
        dr.wait_for(lambda: replayed(name, range(1001, 1011)),  # noqa: B023
                    f"{name} to replay the rows written after the switch", 60)  # fmt: skip

    # Failover inside the standby cluster: the other member takes over, from the archive.
    dr.kill_agent(first)
    dr.kill_postmaster(first)
    dr.wait_for(lambda: dr_leader() not in (None, first), "a new standby leader of dr", 60)
    second = dr_leader()
    assert second is not None
    sql(primary, "INSERT INTO pitr (id) SELECT generate_series(1011, 1020)")
    sql(primary, "SELECT pg_switch_wal()")
    dr.wait_for(lambda: replayed(second, range(1011, 1021)), f"{second} to replay", 60)

    # promote-cluster (the section removed): the standby leader becomes the primary.
    reply = dr.nodes[second].call("PATCH", "/config", {"standby_cluster": None})
    assert reply.ok, reply.text
    dr.wait_for(lambda: dr.leader() == second, f"{second} promoted", 60)
