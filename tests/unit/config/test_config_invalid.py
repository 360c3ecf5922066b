"""Bad configs: `haagent --validate-config` exits 2 with one line naming the key path."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from haagent.config import load_settings_with_warnings
from haagent.config.differences import differences
from haagent.config.model import ReplicaMethod
from haagent.config.replica_methods import replica_methods
from haagent.main import main

REPO = Path(__file__).resolve().parents[3]

Mutation = Callable[[dict[str, Any], Path], None]


@pytest.fixture(autouse=True)
def _no_haagent_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("HAAGENT_"):
            monkeypatch.delenv(variable)


def fake_bin_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "pgbin"
    bin_dir.mkdir(exist_ok=True)
    pg_ctl = bin_dir / "pg_ctl"
    pg_ctl.write_text("#!/bin/sh\nexit 0\n")
    pg_ctl.chmod(0o755)
    return bin_dir


def valid_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "scope": "stampede",
        "name": "node1",
        "restapi": {"listen": "0.0.0.0:8008", "connect_address": "node1:8008"},
        "etcd3": {"hosts": ["node1:2379", "node2:2379", "node3:2379"]},
        "bootstrap": {
            "dcs": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10},
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],
        },
        "postgresql": {
            "listen": "0.0.0.0:5432",
            "connect_address": "node1:5432",
            "data_dir": "/var/lib/postgresql/15/main",
            "bin_dir": str(fake_bin_dir(tmp_path)),
            "authentication": {
                "superuser": {"username": "postgres", "password": "secret"},
                "replication": {"username": "replicator", "password": "secret"},
            },
        },
        "watchdog": {"mode": "required", "safety_margin": 5},
    }


def put(data: dict[str, Any], dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for name in parents:
        data = data.setdefault(name, {})
    data[last] = value


def drop(data: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    for name in parents:
        data = data[name]
    del data[last]


def setting(dotted: str, value: object) -> Mutation:
    return lambda data, _: put(data, dotted, value)


def removing(dotted: str) -> Mutation:
    return lambda data, _: drop(data, dotted)


def settings(*pairs: tuple[str, object]) -> Mutation:
    def mutate(data: dict[str, Any], _: Path) -> None:
        for dotted, value in pairs:
            put(data, dotted, value)

    return mutate


PITR = {"recovery_target_time": "2026-01-01 00:00:00+00", "restore_command": "cp %f %p"}


def bin_dir_without_pg_ctl(data: dict[str, Any], tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    put(data, "postgresql.bin_dir", str(empty))


def star_listen_without_connect_address(data: dict[str, Any], _: Path) -> None:
    put(data, "postgresql.listen", "*:5432")
    drop(data, "postgresql.connect_address")


def certfile_only(data: dict[str, Any], tmp_path: Path) -> None:
    cert = tmp_path / "server.crt"
    cert.write_text("not really a certificate\n")
    put(data, "restapi.certfile", str(cert))


def validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["--validate-config", str(path)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


CASES: list[tuple[str, Mutation, str, str]] = [
    # (id, change to a valid config, key path in the message, another part of the message)
    ("scope-missing", removing("scope"), "scope", "is missing"),
    ("name-slash", setting("name", "node/1"), "name", "without '/'"),
    ("name-empty", setting("name", ""), "name", "is missing or empty"),
    ("postgresql-missing", removing("postgresql"), "postgresql", "expected a postgresql section"),
    ("data-dir-missing", removing("postgresql.data_dir"), "postgresql.data_dir", "is missing"),
    (
        "data-dir-relative",
        setting("postgresql.data_dir", "pgdata"),
        "postgresql.data_dir",
        "relative",
    ),
    (
        "replication-password-missing",
        removing("postgresql.authentication.replication.password"),
        "postgresql.authentication.replication.password",
        "expected a password",
    ),
    (
        "replication-username-missing",
        removing("postgresql.authentication.replication.username"),
        "postgresql.authentication.replication.username",
        "is missing",
    ),
    (
        "superuser-username-missing",
        removing("postgresql.authentication.superuser.username"),
        "postgresql.authentication.superuser.username",
        "is missing",
    ),
    (
        "ttl-not-a-number",
        setting("bootstrap.dcs.ttl", "abc"),
        "bootstrap.dcs.ttl",
        "expected an integer number of seconds",
    ),
    ("ttl-too-small", setting("bootstrap.dcs.ttl", 1), "bootstrap.dcs.ttl", ">= 3"),
    ("loop-wait-zero", setting("bootstrap.dcs.loop_wait", 0), "bootstrap.dcs.loop_wait", ">= 1"),
    (
        "synchronous-mode-word",
        setting("bootstrap.dcs.synchronous_mode", "maybe"),
        "bootstrap.dcs.synchronous_mode",
        "true / on, false / off or quorum",
    ),
    (
        "standby-cluster-without-primary",
        setting("bootstrap.dcs.standby_cluster", {"primary_slot_name": "dr"}),
        "bootstrap.dcs.standby_cluster",
        "host (and port) of the primary to replicate from, or restore_command",
    ),
    (
        "standby-cluster-port-without-host",
        setting("bootstrap.dcs.standby_cluster", {"port": 5433}),
        "bootstrap.dcs.standby_cluster.host",
        "is missing (port is set)",
    ),
    (
        "standby-cluster-replica-method",
        setting("bootstrap.dcs.standby_cluster", {"host": "h", "create_replica_methods": ["a b"]}),
        "bootstrap.dcs.standby_cluster.create_replica_methods[0]",
        "is not a method name",
    ),
    (
        "standby-cluster-replica-method-twice",
        setting(
            "bootstrap.dcs.standby_cluster",
            {"host": "h", "create_replica_methods": ["basebackup", "basebackup"]},
        ),
        "bootstrap.dcs.standby_cluster.create_replica_methods[1]",
        "listed twice",
    ),
    (
        "standby-cluster-slot-name",
        setting("bootstrap.dcs.standby_cluster", {"host": "h", "primary_slot_name": "Bad"}),
        "bootstrap.dcs.standby_cluster.primary_slot_name",
        "not a valid slot name",
    ),
    (
        "initdb-two-key-map",
        setting("bootstrap.initdb", [{"encoding": "UTF8", "locale": "C"}]),
        "bootstrap.initdb[0]",
        "one-key mappings",
    ),
    ("listen-no-port", setting("restapi.listen", "node1"), "restapi.listen", "host:port"),
    (
        "port-out-of-range",
        setting("restapi.connect_address", "node1:70000"),
        "restapi.connect_address",
        "out of range",
    ),
    (
        "connect-address-from-wildcard",
        removing("restapi.connect_address"),
        "restapi.connect_address",
        "names no single host",
    ),
    (
        "postgresql-connect-address-from-star",
        star_listen_without_connect_address,
        "postgresql.connect_address",
        "names no single host",
    ),
    (
        "etcd-host-bad-port",
        setting("etcd3.hosts", ["node1:2379", "node2:abc"]),
        "etcd3.hosts[1]",
        "is not a number",
    ),
    ("etcd3-missing", removing("etcd3"), "etcd3", "expected an etcd3 section"),
    ("etcd3-hosts-empty", setting("etcd3.hosts", []), "etcd3.hosts", "is an empty list"),
    (
        "replication-password-empty",
        setting("postgresql.authentication.replication.password", ""),
        "postgresql.authentication.replication.password",
        "is missing or empty",
    ),
    (
        "restapi-auth-without-password",
        setting("restapi.authentication", {"username": "admin"}),
        "restapi.authentication.password",
        "expected a password",
    ),
    ("etcd-v2-only", lambda d, _: d.update(etcd=d.pop("etcd3")), "etcd", "only the etcd v3"),
    ("watchdog-mode", setting("watchdog.mode", "sometimes"), "watchdog.mode", "off, automatic"),
    (
        "safety-margin-negative",
        setting("watchdog.safety_margin", -1),
        "watchdog.safety_margin",
        "is negative",
    ),
    (
        "safety-margin-not-below-ttl",
        setting("watchdog.safety_margin", 30),
        "watchdog.safety_margin",
        "not below bootstrap.dcs.ttl 30",
    ),
    (
        "agent-death-guard-word",
        setting("watchdog.agent_death_guard", "sometimes"),
        "watchdog.agent_death_guard",
        "'sometimes' is not a boolean; expected true or false",
    ),
    (
        "agent-death-guard-number",
        setting("watchdog.agent_death_guard", 2),
        "watchdog.agent_death_guard",
        "is not a boolean",
    ),
    (
        "bin-dir-missing",
        setting("postgresql.bin_dir", "/nonexistent/pg/bin"),
        "postgresql.bin_dir",
        "does not exist",
    ),
    ("bin-dir-no-pg-ctl", bin_dir_without_pg_ctl, "postgresql.bin_dir", "no executable pg_ctl"),
    (
        "verify-client",
        setting("restapi.verify_client", "maybe"),
        "restapi.verify_client",
        "none, optional or required",
    ),
    ("certfile-without-keyfile", certfile_only, "restapi.keyfile", "while certfile is set"),
    (
        "allowlist-entry",
        setting("restapi.allowlist", ["10.0.0.0/24", "not a host!"]),
        "restapi.allowlist[1]",
        "not an address, network or hostname",
    ),
    (
        "failover-priority-negative",
        setting("tags.failover_priority", -1),
        "tags.failover_priority",
        ">= 0",
    ),
    ("log-level", setting("log.level", "loud"), "log.level", "DEBUG, INFO"),
    (
        "watchdog-driver",
        setting("watchdog.driver", "softdog"),
        "watchdog.driver",
        "'softdog' is not a driver; expected linux",
    ),
    (
        "parameters-not-a-mapping",
        setting("postgresql.parameters", ["max_connections=100"]),
        "postgresql.parameters",
        "expected a mapping of PostgreSQL parameters",
    ),
    (
        "unknown-callback",
        setting("postgresql.callbacks", {"on_promote": "/bin/true"}),
        "postgresql.callbacks.on_promote",
        "on_role_change",
    ),
    (
        "replica-method-twice",
        setting("postgresql.create_replica_methods", ["pgbackrest", "pgbackrest"]),
        "postgresql.create_replica_methods[1]",
        "listed twice",
    ),
    (
        "replica-method-named-like-a-setting",
        setting("postgresql.create_replica_methods", ["parameters", "basebackup"]),
        "postgresql.create_replica_methods[0]",
        "name of a postgresql setting",
    ),
    (
        "replica-method-keep-data-not-a-boolean",
        settings(
            ("postgresql.create_replica_methods", ["pgbackrest"]),
            ("postgresql.pgbackrest", {"command": "restore", "keep_data": "maybe"}),
        ),
        "postgresql.pgbackrest.keep_data",
        "maybe",
    ),
    (
        "replica-method-empty-command",
        settings(
            ("postgresql.create_replica_methods", ["pgbackrest"]),
            ("postgresql.pgbackrest", {"command": " "}),
        ),
        "postgresql.pgbackrest.command",
        "is empty",
    ),
    (
        "replica-method-option-not-a-value",
        settings(
            ("postgresql.create_replica_methods", ["wal_g"]),
            ("postgresql.wal_g", {"command": "restore", "envdir": {"a": 1}}),
        ),
        "postgresql.wal_g.envdir",
        "is not a value",
    ),
    (
        "bootstrap-method-without-section",
        setting("bootstrap.method", "restore"),
        "bootstrap.restore",
        "is missing while bootstrap.method is restore",
    ),
    (
        "bootstrap-method-without-command",
        settings(("bootstrap.method", "restore"), ("bootstrap.restore", {"no_params": True})),
        "bootstrap.restore.command",
        "is missing or empty",
    ),
    (
        "bootstrap-method-named-like-a-setting",
        setting("bootstrap.method", "dcs"),
        "bootstrap.method",
        "name of a bootstrap setting",
    ),
    (
        "bootstrap-recovery-target-without-promote",
        settings(
            ("bootstrap.method", "restore"),
            ("bootstrap.restore", {"command": "restore.sh", "recovery_conf": PITR}),
        ),
        "bootstrap.restore.recovery_conf.recovery_target_action",
        "promote",
    ),
    (
        "bootstrap-recovery-conf-and-keep-existing",
        settings(
            ("bootstrap.method", "restore"),
            (
                "bootstrap.restore",
                {
                    "command": "restore.sh",
                    "keep_existing_recovery_conf": True,
                    "recovery_conf": {"restore_command": "cp %f %p"},
                },
            ),
        ),
        "bootstrap.restore.recovery_conf",
        "keep_existing_recovery_conf",
    ),
    (
        "bootstrap-recovery-standby-mode",
        settings(
            ("bootstrap.method", "restore"),
            (
                "bootstrap.restore",
                {"command": "restore.sh", "recovery_conf": {"standby_mode": "on"}},
            ),
        ),
        "bootstrap.restore.recovery_conf.standby_mode",
        "never becomes the cluster's primary",
    ),
    (
        "bootstrap-recovery-old-name",
        settings(
            ("bootstrap.method", "restore"),
            (
                "bootstrap.restore",
                {"command": "restore.sh", "recovery_conf": {"trigger_file": "x"}},
            ),
        ),
        "bootstrap.restore.recovery_conf.trigger_file",
        "not a PostgreSQL 12+ setting",
    ),
    (
        "recovery-conf-not-a-mapping",
        setting("postgresql.recovery_conf", "restore_command=cp"),
        "postgresql.recovery_conf",
        "mapping of recovery settings",
    ),
    (
        "recovery-conf-value-not-a-value",
        setting("postgresql.recovery_conf", {"restore_command": ["cp", "%f"]}),
        "postgresql.recovery_conf.restore_command",
        "is not a value",
    ),
    (
        "callback-timeout-zero",
        setting("postgresql.callback_timeout", 0),
        "postgresql.callback_timeout",
        ">= 1",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "key", "detail"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_config_names_the_key_and_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mutate: Mutation,
    key: str,
    detail: str,
) -> None:
    data = valid_config(tmp_path)
    mutate(data, tmp_path)
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(data))

    status, out, err = validate(path, capsys)

    assert status == 2
    assert out == ""
    assert err.startswith(f"error: {path}: {key}: "), err
    assert detail in err
    assert len(err.strip().splitlines()) == 1


def test_the_valid_base_config_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(valid_config(tmp_path)))
    assert validate(path, capsys) == (0, f"{path}: configuration is valid\n", "")


@pytest.mark.parametrize(
    ("text", "key", "detail"),
    [
        ("scope: a\nname: [b\n", "<yaml>", "line 3, column 1"),
        ("scope: a\n  name: b\n", "<yaml>", "line 2, column 7"),
        ("- scope: a\n", "<yaml>", "the document is a list; expected a mapping"),
        ("", "<yaml>", "the file is empty"),
        ("scope: a\nname: b\nscope: c\n", "<yaml>", "duplicate key 'scope' (first at line 1)"),
    ],
    ids=["unclosed-flow", "bad-indent", "list", "empty", "duplicate-key"],
)
def test_unreadable_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str, detail: str
) -> None:
    path = tmp_path / "node1.yml"
    path.write_text(text)
    status, _, err = validate(path, capsys)
    assert status == 2
    assert err.startswith(f"error: {path}: {key}: "), err
    assert detail in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nowhere.yml"
    status, _, err = validate(path, capsys)
    assert status == 2
    assert err == (
        f"error: {path}: <file>: cannot read it: No such file or directory; "
        "expected a readable YAML file\n"
    )


def test_yaml_off_is_a_watchdog_mode_but_a_number_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = valid_config(tmp_path)
    del data["watchdog"]
    text = yaml.safe_dump(data)
    path = tmp_path / "node1.yml"
    path.write_text(text + "watchdog:\n  mode: off\n")
    assert validate(path, capsys)[0] == 0
    path.write_text(text + "watchdog:\n  mode: 3\n")
    status, _, err = validate(path, capsys)
    assert status == 2
    assert f"{path}: watchdog.mode: 3 is not a watchdog mode" in err


@pytest.mark.parametrize(
    ("line", "expected"),
    [("", True), ("  agent_death_guard: false\n", False), ("  agent_death_guard: on\n", True)],
)
def test_the_agent_death_guard_is_on_unless_turned_off(
    tmp_path: Path, line: str, expected: bool
) -> None:
    data = valid_config(tmp_path)
    del data["watchdog"]
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(data) + "watchdog:\n  mode: off\n" + line)
    settings, warnings = load_settings_with_warnings(path, {})
    assert settings.watchdog.agent_death_guard is expected
    assert warnings == []


def test_bad_environment_value_names_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(valid_config(tmp_path)))
    monkeypatch.setenv("HAAGENT_RESTAPI_LISTEN", "everywhere")
    status, _, err = validate(path, capsys)
    assert status == 2
    assert err.startswith("error: environment: HAAGENT_RESTAPI_LISTEN: "), err


def test_end_to_end_exit_status_through_python_m_haagent(tmp_path: Path) -> None:
    data = valid_config(tmp_path)
    put(data, "bootstrap.dcs.ttl", "abc")
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAAGENT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))

    result = subprocess.run(
        [sys.executable, "-m", "haagent", "--validate-config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {path}: bootstrap.dcs.ttl: 'abc' is not a whole number; "
        "expected an integer number of seconds\n"
    )


def test_the_testing_watchdog_driver_is_refused_without_the_harness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A production install: no package adds a watchdog driver (haagent.plugins).
    monkeypatch.setattr("haagent.config.sections.watchdog_drivers", dict)
    data = valid_config(tmp_path)
    put(data, "watchdog.driver", "testing")
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(data))

    status, out, err = validate(path, capsys)

    assert (status, out) == (2, "")
    assert err.startswith(f"error: {path}: watchdog.driver: 'testing' "), err
    assert "watchdog simulator" in err and "harness is not installed" in err
    assert err.rstrip().endswith("expected linux (a real watchdog device), or watchdog.mode: off")


def test_the_testing_watchdog_driver_is_accepted_where_the_harness_is_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # dev/setup installs haagent_lab, which adds `testing` (harness/pyproject.toml).
    data = valid_config(tmp_path)
    put(data, "watchdog.driver", "testing")
    put(data, "watchdog.device", str(tmp_path / "watchdog.sock"))
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(data))
    assert validate(path, capsys) == (0, f"{path}: configuration is valid\n", "")
    settings, _ = load_settings_with_warnings(path)
    assert settings.watchdog.driver == "testing"


def production_config(tmp_path: Path) -> dict[str, Any]:
    """A Patroni production config: pgBackRest replicas and bootstrap, scripts, ttl 10."""
    data = valid_config(tmp_path)
    put(data, "bootstrap.dcs.ttl", 10)
    put(data, "bootstrap.dcs.loop_wait", 2)
    put(data, "bootstrap.dcs.retry_timeout", 3)
    put(data, "bootstrap.method", "pitr")
    drop(data, "bootstrap.initdb")
    put(data, "bootstrap.pitr", {"command": "pgbackrest restore", "no_params": True,
                                 "keep_existing_recovery_conf": True})  # fmt: skip
    pg = data["postgresql"]
    pg["create_replica_methods"] = ["pgbackrest", "basebackup"]
    pg["pgbackrest"] = {"command": "pgbackrest --stanza=main restore", "no_params": True,
                        "delta": True, "process-max": 4}  # fmt: skip
    pg["recovery_conf"] = {"restore_command": 'pgbackrest archive-get %f "%p"'}
    pg["callbacks"] = {"on_role_change": "/usr/local/bin/vip.sh"}
    pg["pre_promote"] = "/usr/local/bin/check.sh"
    pg["before_stop"] = "/usr/local/bin/drain.sh"
    return data


def test_a_production_config_is_parsed_as_patroni_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(production_config(tmp_path)))
    settings, warnings = load_settings_with_warnings(path)
    pg = settings.postgresql
    assert warnings == []
    assert [m.name for m in pg.create_replica_methods] == ["pgbackrest", "basebackup"]
    method = pg.create_replica_methods[0]
    assert (method.command, method.no_params, method.keep_data) == (
        "pgbackrest --stanza=main restore", True, False
    )  # fmt: skip
    # Rendered as Patroni renders them on the command line.
    # (yaml.safe_dump sorts the keys: the order is the file's.)
    assert method.options == (("delta", "True"), ("no_params", "True"), ("process-max", "4"))
    assert pg.recovery_conf == {"restore_command": 'pgbackrest archive-get %f "%p"'}
    custom = settings.bootstrap.custom
    assert custom is not None and custom.keep_existing_recovery_conf and custom.no_params
    assert (pg.pre_promote, pg.before_stop) == (
        "/usr/local/bin/check.sh",
        "/usr/local/bin/drain.sh",
    )


def test_a_standby_cluster_restores_its_leader_with_its_own_methods(tmp_path: Path) -> None:
    """An archive-only standby cluster (no host) whose create_replica_methods name a section
    of postgresql that postgresql.create_replica_methods does not: the section is read (no
    warning), and the standby cluster's methods are the ones in effect, in order."""
    data = valid_config(tmp_path)
    put(data, "bootstrap.dcs.standby_cluster", {
        "restore_command": "cp /archive/%f %p",
        "create_replica_methods": ["restore", "basebackup"],
    })  # fmt: skip
    data["postgresql"]["restore"] = {"command": "restore-backup", "no_leader": True}
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(data))
    settings, warnings = load_settings_with_warnings(path)
    assert warnings == []
    standby = settings.bootstrap.dcs.standby_cluster
    assert standby is not None and not standby.streams
    assert [m.name for m in settings.postgresql.create_replica_methods] == ["basebackup"]
    chosen = replica_methods(settings.postgresql, settings.bootstrap.dcs)
    assert [(m.name, m.command) for m in chosen.methods] == [
        ("restore", "restore-backup"),
        ("basebackup", ""),
    ]
    assert chosen.key == "standby_cluster.create_replica_methods"
    assert chosen.without_leader
    # Without the section, the primary cluster's own methods are in effect.
    primary = replace(settings.bootstrap.dcs, standby_cluster=None)
    assert replica_methods(settings.postgresql, primary).methods == (ReplicaMethod("basebackup"),)
    # A name the etcd config gives that this node has no section for: the command of that
    # name (`command` empty), as for postgresql.create_replica_methods and in Patroni.
    other = replace(standby, create_replica_methods=("wal-g", "restore"))
    etcd = replace(settings.bootstrap.dcs, standby_cluster=other)
    chosen = replica_methods(settings.postgresql, etcd)
    assert [(m.name, m.command) for m in chosen.methods] == [
        ("wal-g", ""),
        ("restore", "restore-backup"),
    ]
    # What --validate-config lists: the standby cluster's method as any other's.
    assert [line.split(":")[0] for line in differences(settings)] == ["postgresql.restore"]
    without = replace(settings.bootstrap.dcs, standby_cluster=replace(standby,
                      create_replica_methods=()))  # fmt: skip
    found = differences(replace(settings, bootstrap=replace(settings.bootstrap, dcs=without)))
    assert found[0].startswith("bootstrap.dcs.standby_cluster: without create_replica_methods")


def test_validate_config_lists_what_differs_from_patroni(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(production_config(tmp_path)))
    status, out, err = validate(path, capsys)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{path}: configuration is valid"
    keys = [line.split(": ")[1] for line in lines[1:]]
    assert all(line.startswith("differs from Patroni: ") for line in lines[1:])
    assert keys == [
        "bootstrap.dcs.ttl",
        "bootstrap.pitr",
        "postgresql.pgbackrest",
        "postgresql.callbacks (on_role_change)",
        "postgresql.pre_promote",
        "postgresql.before_stop",
    ]
    assert "Patroni empties it first" in lines[3]


def test_a_replica_recovery_target_is_warned_about_with_its_key(tmp_path: Path) -> None:
    data = valid_config(tmp_path)
    put(data, "postgresql.recovery_conf", {"restore_command": "cp %f %p",
                                           "recovery_target_time": "2026-01-01"})  # fmt: skip
    path = tmp_path / "node1.yml"
    path.write_text(yaml.safe_dump(data))
    settings, warnings = load_settings_with_warnings(path)
    assert settings.postgresql.recovery_conf == {"restore_command": "cp %f %p"}
    assert len(warnings) == 1 and "postgresql.recovery_conf.recovery_target_time" in warnings[0]
