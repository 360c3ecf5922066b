"""Loading valid configs: Patroni's format round-trips into Settings; env overrides; warnings."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from haagent.config import (
    Address,
    ConfigError,
    Credentials,
    DynamicConfig,
    ListenAddress,
    Settings,
    dynamic_config_to_dict,
    load_settings,
    load_settings_with_warnings,
    parse_dynamic_config,
    parse_settings,
)
from haagent.config.model import ReplicaMethod
from haagent.core.roles import Role
from haagent.engine.member import member_data
from haagent.postgres.model import PostgresStatus

# A Patroni user's node1 config for a three-node cluster, as it would be brought over.
SEED_NODE1 = """\
scope: stampede
name: node1

restapi:
  listen: 0.0.0.0:8008
  connect_address: node1:8008

etcd3:
  host: node1:2379

bootstrap:
  # this section will be written into Etcd:/<namespace>/<scope>/config after initializing
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
#    master_start_timeout: 300
#    synchronous_mode: false
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        logging_collector: 'on'
        max_wal_senders: 5
        max_replication_slots: 5
        wal_log_hints: "on"
        #archive_mode: "on"

  # some desired options for 'initdb'
  initdb:  # Note: It needs to be a list (some options need values, others are switches)
  - encoding: UTF8
  - data-checksums

  pg_hba:  # Add following lines to pg_hba.conf after running 'initdb'
  - host replication replicator 127.0.0.1/32 md5
  - host replication replicator 192.168.1.0/24 md5
  - host all all 0.0.0.0/0 md5
  - host all all ::0/0 md5

  # Some additional users users which needs to be created after initializing new cluster
  users:
    admin:
      password: admin
      options:
        - createrole
        - createdb

postgresql:
  listen: 0.0.0.0:5432
  connect_address: node1:5432
  data_dir: "/var/lib/postgresql/12/main"
  bin_dir: "{bin_dir}"
#  config_dir:
  pgpass: /tmp/pgpass0
  authentication:
    replication:
      username: replicator
      password: vagrant
    superuser:
      username: postgres
      password: vagrant
  parameters:
    unix_socket_directories: '/var/run/postgresql'

watchdog:
  mode: required # Allowed values: off, automatic, required
  device: /dev/watchdog
  safety_margin: 5

tags:
    nofailover: false
    noloadbalance: false
    clonefrom: false
    nosync: false
    failover_priority: 2
    datacenter: east
"""


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "pgbin"
    path.mkdir()
    (path / "pg_ctl").write_text("#!/bin/sh\nexit 0\n")
    (path / "pg_ctl").chmod(0o755)
    return path


def minimal(bin_dir: Path, **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "scope": "demo",
        "name": "n1",
        "restapi": {"listen": "127.0.0.11:8008"},
        "etcd3": {"hosts": "127.0.0.11:2379"},
        "postgresql": {
            "listen": "127.0.0.11:5432",
            "data_dir": "/srv/pg/n1",
            "bin_dir": str(bin_dir),
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": {"username": "replicator", "password": "rep"},
            },
        },
    }
    data.update(sections)
    return data


def test_seed_node1_config_round_trips(tmp_path: Path, bin_dir: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(SEED_NODE1.replace("{bin_dir}", str(bin_dir)))

    settings, warnings = load_settings_with_warnings(path, {})

    assert warnings == [
        f"{path}: bootstrap.users: not supported (Patroni 4 dropped it too), ignored; "
        "create roles in post_bootstrap"
    ]
    assert (settings.scope, settings.name, settings.namespace) == ("stampede", "node1", "/service/")
    assert settings.source == path
    assert settings.dcs_prefix == "/service/stampede/"
    assert settings.restapi.listen == ListenAddress(("0.0.0.0",), 8008)
    assert settings.restapi.connect_address == Address("node1", 8008)
    assert settings.restapi.api_url == "http://node1:8008/patroni"
    assert settings.restapi.authentication is None
    assert settings.etcd3.hosts == (Address("node1", 2379),)
    assert settings.etcd3.protocol == "http"
    dcs = settings.bootstrap.dcs
    assert (dcs.ttl, dcs.loop_wait, dcs.retry_timeout) == (30, 10, 10)
    assert dcs.maximum_lag_on_failover == 1048576
    assert dcs.primary_start_timeout == 300
    assert dcs.synchronous_mode is False
    assert dcs.postgresql.use_pg_rewind is True
    assert dcs.postgresql.use_slots is True
    assert dict(dcs.postgresql.parameters) == {
        "wal_level": "replica",
        "hot_standby": "on",
        "logging_collector": "on",
        "max_wal_senders": 5,
        "max_replication_slots": 5,
        "wal_log_hints": "on",
    }
    assert dcs.raw == yaml.safe_load(path.read_text())["bootstrap"]["dcs"]
    assert settings.bootstrap.initdb == (("encoding", "UTF8"), "data-checksums")
    assert settings.bootstrap.pg_hba == (
        "host replication replicator 127.0.0.1/32 md5",
        "host replication replicator 192.168.1.0/24 md5",
        "host all all 0.0.0.0/0 md5",
        "host all all ::0/0 md5",
    )
    pg = settings.postgresql
    assert pg.listen == ListenAddress(("0.0.0.0",), 5432)
    assert pg.connect_address == Address("node1", 5432)
    assert pg.conn_url == "postgres://node1:5432/postgres"
    assert pg.data_dir == Path("/var/lib/postgresql/12/main")
    assert pg.bin_dir == bin_dir
    assert pg.config_dir is None
    assert pg.effective_config_dir == pg.data_dir
    assert pg.pgpass == Path("/tmp/pgpass0")
    assert pg.authentication.replication == Credentials("replicator", "vagrant")
    assert pg.authentication.superuser == Credentials("postgres", "vagrant")
    assert pg.authentication.rewind is None
    assert dict(pg.parameters) == {"unix_socket_directories": "/var/run/postgresql"}
    assert pg.create_replica_methods == (ReplicaMethod("basebackup"),)
    assert (settings.watchdog.mode, settings.watchdog.device) == ("required", "/dev/watchdog")
    assert (settings.watchdog.safety_margin, settings.watchdog.driver) == (5, "linux")
    tags = settings.tags
    assert (tags.nofailover, tags.noloadbalance, tags.clonefrom, tags.nosync) == (False,) * 4
    assert tags.failover_priority == 2
    assert tags.can_be_leader
    assert tags.raw["datacenter"] == "east"
    # Published as Patroni does: false boolean tags left out (nofailover stays next to
    # failover_priority).
    assert dict(tags.raw) == {"nofailover": False, "failover_priority": 2, "datacenter": "east"}
    assert settings.log.level == "INFO"


def test_defaults_and_derived_addresses(bin_dir: Path) -> None:
    data = minimal(bin_dir)
    data["postgresql"]["listen"] = "127.0.0.11, 10.0.0.1:5433"
    data["restapi"] = {"connect_address": "[::1]:8009"}
    settings = parse_settings(data, environ={})
    assert settings.restapi.connect_address == Address("::1", 8009)
    assert str(settings.restapi.connect_address) == "[::1]:8009"
    assert settings.restapi.listen == ListenAddress(("::1",), 8009)
    assert settings.postgresql.listen == ListenAddress(("127.0.0.11", "10.0.0.1"), 5433)
    assert settings.postgresql.connect_address == Address("127.0.0.11", 5433)
    assert settings.bootstrap.dcs == DynamicConfig()
    assert settings.watchdog.mode == "automatic"
    assert settings.etcd3.hosts == (Address("127.0.0.11", 2379),)


def test_etcd3_hosts_forms(bin_dir: Path) -> None:
    def hosts(etcd3: dict[str, Any]) -> tuple[tuple[Address, ...], str]:
        settings = parse_settings(minimal(bin_dir, etcd3=etcd3), environ={})
        return settings.etcd3.hosts, settings.etcd3.protocol

    a, b = Address("a", 2379), Address("b", 2380)
    assert hosts({"hosts": "a:2379, b:2380"}) == ((a, b), "http")
    assert hosts({"hosts": ["a", "b:2380"]}) == ((a, b), "http")
    assert hosts({"host": "a"}) == ((a,), "http")
    assert hosts({"hosts": ["https://a:2379", "https://b:2380/"]}) == ((a, b), "https")
    assert hosts({}) == ((Address("127.0.0.1", 2379),), "http")


def test_booleans_accept_yaml_and_words(tmp_path: Path, bin_dir: Path) -> None:
    text = yaml.safe_dump(minimal(bin_dir)) + (
        "bootstrap:\n"
        "  dcs:\n"
        "    pause: 'on'\n"
        "    failsafe_mode: yes\n"
        "    synchronous_mode: 'true'\n"
        "    check_timeline: 'No'\n"
        "    master_start_timeout: 120\n"
        "    member_slots_ttl: 30min\n"
        "    max_timelines_history: '50'\n"
        "    maximum_lag_on_failover: 16MB\n"
        "    postgresql: {use_slots: off, use_pg_rewind: on}\n"
        "watchdog:\n"
        "  mode: on\n"
    )
    path = tmp_path / "n1.yml"
    path.write_text(text)
    dcs = load_settings(path, {}).bootstrap.dcs
    assert (dcs.pause, dcs.failsafe_mode, dcs.synchronous_mode) == (True, True, True)
    assert dcs.check_timeline is False
    assert dcs.primary_start_timeout == 120
    assert dcs.member_slots_ttl == 1800
    assert dcs.max_timelines_history == 50
    assert dcs.maximum_lag_on_failover == 16 * 1024 * 1024
    assert (dcs.postgresql.use_slots, dcs.postgresql.use_pg_rewind) == (False, True)
    assert load_settings(path, {}).watchdog.mode == "automatic"


def test_environment_overrides_the_file(tmp_path: Path, bin_dir: Path) -> None:
    other_bin = tmp_path / "otherbin"
    other_bin.mkdir()
    (other_bin / "pg_ctl").write_text("")
    (other_bin / "pg_ctl").chmod(0o755)
    data = minimal(bin_dir)
    del data["postgresql"]["authentication"]["replication"]["password"]
    environ = {
        "HAAGENT_NAME": "n2",
        "HAAGENT_SCOPE": "other",
        "HAAGENT_NAMESPACE": "/ha/",
        "HAAGENT_RESTAPI_LISTEN": "*:9008",
        "HAAGENT_RESTAPI_CONNECT_ADDRESS": "127.0.0.12:9008",
        "HAAGENT_RESTAPI_USERNAME": "admin",
        "HAAGENT_RESTAPI_PASSWORD": "s3cret",
        "HAAGENT_ETCD3_HOSTS": "127.0.0.11:2379,127.0.0.12:2379",
        "HAAGENT_POSTGRESQL_LISTEN": "127.0.0.12:5433",
        "HAAGENT_POSTGRESQL_CONNECT_ADDRESS": "db2:5433",
        "HAAGENT_POSTGRESQL_DATA_DIR": "/srv/pg/n2",
        "HAAGENT_POSTGRESQL_BIN_DIR": str(other_bin),
        "HAAGENT_POSTGRESQL_PGPASS": "/tmp/pgpass-n2",
        "HAAGENT_REPLICATION_PASSWORD": "from-env",
        "HAAGENT_LOG_LEVEL": "debug",
        "UNRELATED": "x",
    }
    settings = parse_settings(data, environ=environ)
    assert (settings.name, settings.scope, settings.namespace) == ("n2", "other", "/ha/")
    assert settings.dcs_prefix == "/ha/other/"
    assert settings.restapi.listen == ListenAddress(("*",), 9008)
    assert settings.restapi.connect_address == Address("127.0.0.12", 9008)
    assert settings.restapi.authentication == Credentials("admin", "s3cret")
    assert settings.etcd3.hosts == (Address("127.0.0.11", 2379), Address("127.0.0.12", 2379))
    assert settings.postgresql.listen == ListenAddress(("127.0.0.12",), 5433)
    assert settings.postgresql.connect_address == Address("db2", 5433)
    assert settings.postgresql.data_dir == Path("/srv/pg/n2")
    assert settings.postgresql.bin_dir == other_bin
    assert settings.postgresql.pgpass == Path("/tmp/pgpass-n2")
    assert settings.postgresql.authentication.replication.password == "from-env"
    assert settings.log.level == "DEBUG"
    assert data["name"] == "n1", "the caller's mapping is not modified"


@pytest.mark.parametrize(
    ("variable", "value", "detail"),
    [
        ("HAAGENT_ETCD3_HOSTS", "a:2379,b:99999", "port 99999 is out of range"),
        ("HAAGENT_ETCD3_HOSTS", "", "is not an address"),
        ("HAAGENT_POSTGRESQL_CONNECT_ADDRESS", "db2", "has no port"),
        ("HAAGENT_POSTGRESQL_DATA_DIR", "relative/dir", "relative path"),
        ("HAAGENT_NAME", "a/b", "contains '/'"),
        ("HAAGENT_LOG_LEVEL", "chatty", "is not a log level"),
    ],
)
def test_bad_environment_value(bin_dir: Path, variable: str, value: str, detail: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(minimal(bin_dir), source=Path("n1.yml"), environ={variable: value})
    assert caught.value.key == variable
    assert str(caught.value).startswith(f"environment: {variable}: ")
    assert detail in str(caught.value)


def test_unknown_keys_are_warnings_not_errors(
    tmp_path: Path, bin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = minimal(bin_dir, ctl={"insecure": True}, tags={"rack": "r1", "zone": 3})
    data["restapi"]["lisen"] = "127.0.0.11:8008"
    data["postgresql"]["authentication"]["superuser"]["sslmod"] = "require"  # a typo
    data["bootstrap"] = {"dcs": {"a_future_setting": 10}}
    path = tmp_path / "n1.yml"
    path.write_text(yaml.safe_dump(data))

    with caplog.at_level(logging.WARNING, logger="haagent.config"):
        settings = load_settings(path, {})

    assert sorted(r.getMessage() for r in caplog.records) == sorted(
        [
            f"{path}: restapi.lisen: unknown key, ignored",
            f"{path}: postgresql.authentication.superuser.sslmod: unknown key, ignored",
            f"{path}: bootstrap.dcs.a_future_setting: "
            "not used by haagent; kept in the DCS config as is",
        ]
    )
    assert settings.ctl.insecure  # Patroni's ctl section is honoured (the peer client uses it)
    assert all(r.name == "haagent.config" for r in caplog.records)
    assert settings.bootstrap.dcs.raw == {"a_future_setting": 10}
    assert dict(settings.tags.raw) == {"rack": "r1", "zone": 3}


def test_false_boolean_tags_are_not_published(tmp_path: Path, bin_dir: Path) -> None:
    path = tmp_path / "n1.yml"
    tags = (
        "tags:\n  clonefrom: false\n  nostream: 'off'\n  noloadbalance: true\n"
        "  nosync: false\n  sync_priority: 2\n  nofailover: false\n  custom: false\n"
    )
    path.write_text(yaml.safe_dump(minimal(bin_dir)) + tags)
    settings = load_settings(path, {})
    assert dict(settings.tags.raw) == {
        "noloadbalance": True,
        "nosync": False,  # kept next to sync_priority, as Patroni does
        "sync_priority": 2,
        "custom": False,  # a user's tag is published as written
    }
    assert settings.tags.noloadbalance and not settings.tags.clonefrom
    member = member_data(
        settings, PostgresStatus(True, True, False), Role.REPLICA, paused=False, version="x"
    )
    assert member["tags"] == dict(settings.tags.raw)
    plain = tmp_path / "n2.yml"
    plain.write_text(yaml.safe_dump(minimal(bin_dir)) + "tags:\n  nofailover: false\n")
    settings = load_settings(plain, {})
    member = member_data(
        settings, PostgresStatus(True, True, False), Role.REPLICA, paused=False, version="x"
    )
    assert "tags" not in member


def test_tags_must_be_json(tmp_path: Path, bin_dir: Path) -> None:
    path = tmp_path / "n1.yml"
    path.write_text(yaml.safe_dump(minimal(bin_dir)) + "tags:\n  since: 2021-05-24\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert caught.value.key == "tags.since"


def test_dynamic_config_from_etcd_keeps_unknown_keys() -> None:
    stored = {
        "ttl": 20,
        "loop_wait": 5,
        "retry_timeout": 5,
        "master_start_timeout": 100,
        "postgresql": {"parameters": {"max_connections": 200}, "recovery_conf": {}},
        "slots": {"cdc": {"type": "logical", "database": "app", "plugin": "pgoutput"}},
        "ignore_slots": [{"name": "ext", "type": "physical"}],
        "a_future_setting": 5,
    }
    warnings: list[str] = []
    config = parse_dynamic_config(json.loads(json.dumps(stored)), warnings=warnings)
    assert (config.ttl, config.loop_wait, config.retry_timeout) == (20, 5, 5)
    assert config.primary_start_timeout == 100
    assert config.slots["cdc"]["plugin"] == "pgoutput"
    # As Patroni infers it: a slot naming a database and a plugin is logical.
    inferred = parse_dynamic_config({"slots": {"a": {"database": "app", "plugin": "x"}, "b": None}})
    assert (inferred.slots["a"]["type"], inferred.slots["b"]["type"]) == ("logical", "physical")
    assert config.ignore_slots == ({"name": "ext", "type": "physical"},)
    assert config.raw == stored
    assert sorted(w.split(": ")[1] for w in warnings) == ["config.a_future_setting"]
    written = dynamic_config_to_dict(config)
    assert "master_start_timeout" not in written
    assert written["primary_start_timeout"] == 100
    assert written["a_future_setting"] == 5
    assert written["postgresql"]["recovery_conf"] == {}
    assert parse_dynamic_config(written, warnings=[]) == config


def test_quorum_round_trip() -> None:
    """`synchronous_mode: quorum` is synchronous mode with quorum commit, written back as
    `quorum`."""
    config = parse_dynamic_config({"synchronous_mode": "quorum"}, warnings=[])
    assert config.synchronous and config.quorum and config.quorum_commit
    written = dynamic_config_to_dict(config)
    assert written["synchronous_mode"] == "quorum"
    assert parse_dynamic_config(written, warnings=[]) == config
    plain = parse_dynamic_config({"synchronous_mode": True}, warnings=[])
    assert plain.synchronous and not plain.quorum


def test_standby_cluster_round_trip() -> None:
    """A standby_cluster section makes a standby cluster, where synchronous replication is
    not in force; one without a host replays the archive alone."""
    stored = {
        "synchronous_mode": "quorum",
        "standby_cluster": {"host": "10.0.0.1", "port": 5433, "primary_slot_name": "dr",
                            "restore_command": "cp /a/%f %p", "recovery_min_apply_delay": 60},
    }  # fmt: skip
    config = parse_dynamic_config(stored, warnings=[])
    assert config.synchronous_mode and config.quorum_commit
    assert config.standby_cluster is not None and config.standby_cluster.port == 5433
    assert config.standby_cluster.recovery_min_apply_delay == "60"
    assert not config.synchronous and not config.quorum  # a standby cluster: none in force
    written = dynamic_config_to_dict(config)
    assert written["standby_cluster"]["primary_slot_name"] == "dr"
    assert parse_dynamic_config(written, warnings=[]) == config
    archive = parse_dynamic_config(
        {"standby_cluster": {"restore_command": "cp /a/%f %p", "archive_cleanup_command": "x"}}
    )
    assert archive.standby_cluster is not None and not archive.standby_cluster.streams
    assert archive.standby_cluster.recovery == (
        ("restore_command", "cp /a/%f %p"),
        ("archive_cleanup_command", "x"),
    )
    assert parse_dynamic_config(dynamic_config_to_dict(archive)) == archive


@pytest.mark.parametrize(
    ("stored", "key"),
    [
        ({"ttl": 1, "loop_wait": 1, "retry_timeout": 1}, "config.ttl"),
        ({"synchronous_mode": "always"}, "config.synchronous_mode"),
        (
            {"standby_cluster": {"restore_command": "cp x\ny %p"}},
            "config.standby_cluster.restore_command",
        ),
        ({"synchronous_node_count": 0}, "config.synchronous_node_count"),
        ({"slots": {"Bad-Name": {}}}, "config.slots.Bad-Name"),
        ({"slots": {"cdc": {"type": "logical"}}}, "config.slots.cdc.database"),
        (
            {"slots": {"cdc": {"type": "logical", "database": "", "plugin": "x"}}},
            "config.slots.cdc.database",
        ),
        (
            {"slots": {"cdc": {"database": "app", "plugin": "x", "failover": True}}},
            "config.slots.cdc.failover",
        ),
        ({"slots": {"ext": {"type": "physical", "plugin": "x"}}}, "config.slots.ext.plugin"),
        ({"slots": {"ext": {"cluster_type": "replica"}}}, "config.slots.ext.cluster_type"),
        ({"postgresql": {"pg_hba": "host all all md5"}}, "config.postgresql.pg_hba"),
        ({"pause": "maybe"}, "config.pause"),
    ],
)
def test_dynamic_config_errors(stored: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_dynamic_config(stored)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"<dcs>: {key}: ")


@given(
    loop_wait=st.integers(1, 30),
    retry_timeout=st.integers(1, 30),
    slack=st.integers(0, 30),
    flags=st.lists(st.booleans(), min_size=7, max_size=7),
    lag=st.integers(0, 1 << 40),
    parameters=st.dictionaries(
        st.sampled_from(["work_mem", "max_connections", "wal_level"]),
        st.one_of(st.integers(0, 1000), st.text(alphabet="abc 0", max_size=5)),
    ),
)
def test_dynamic_config_round_trips(
    loop_wait: int,
    retry_timeout: int,
    slack: int,
    flags: list[bool],
    lag: int,
    parameters: dict[str, Any],
) -> None:
    source = {
        "ttl": loop_wait + 2 * retry_timeout + slack,
        "loop_wait": loop_wait,
        "retry_timeout": retry_timeout,
        "maximum_lag_on_failover": lag,
        "synchronous_mode": flags[0],
        "synchronous_mode_strict": flags[1],
        "failsafe_mode": flags[2],
        "check_timeline": flags[3],
        "pause": flags[4],
        "postgresql": {"use_pg_rewind": flags[5], "use_slots": flags[6], "parameters": parameters},
    }
    config = parse_dynamic_config(source, warnings=[])
    again = parse_dynamic_config(json.loads(json.dumps(dynamic_config_to_dict(config))))
    assert again == config
    assert dynamic_config_to_dict(again) == dynamic_config_to_dict(config)


def test_config_error_is_one_line_and_pickles() -> None:
    error = ConfigError(
        "postgresql.listen", "'x\ny' is bad", "host:port", file=Path("/etc/haagent/n1.yml")
    )
    assert str(error) == "/etc/haagent/n1.yml: postgresql.listen: 'x y' is bad; expected host:port"
    assert (error.file, error.key, error.expected) == (
        Path("/etc/haagent/n1.yml"),
        "postgresql.listen",
        "host:port",
    )
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert copy.file == error.file
    assert str(ConfigError("scope", "is missing")) == "<config>: scope: is missing"


def test_settings_is_frozen(bin_dir: Path) -> None:
    settings = parse_settings(minimal(bin_dir), environ={})
    assert isinstance(settings, Settings)
    with pytest.raises(AttributeError):
        settings.name = "other"  # type: ignore[misc]


def test_trust_on_host_lines_is_warned_about(tmp_path: Path, bin_dir: Path) -> None:
    hba = ["local all all peer", "host all all 10.0.0.0/8 trust", "hostssl all all ::1/128 md5"]
    data = minimal(bin_dir, bootstrap={"pg_hba": hba})
    data["postgresql"]["pg_hba"] = ["host replication all 10.0.0.0 255.0.0.0 trust # lab"]
    path = tmp_path / "n1.yml"
    path.write_text(yaml.safe_dump(data))
    _, warnings = load_settings_with_warnings(path, {})
    trust = [w for w in warnings if "without a password" in w]
    assert len(trust) == 2
    assert trust[0].startswith(f"{path}: bootstrap.pg_hba[1]: 'host all all 10.0.0.0/8 trust'")
    assert f"{path}: postgresql.pg_hba[0]: " in trust[1]
    dynamic: list[str] = []
    parse_dynamic_config({"postgresql": {"pg_hba": ["host all all 0/0 trust"]}}, warnings=dynamic)
    assert any("postgresql.pg_hba[0]" in w and "without a password" in w for w in dynamic)
