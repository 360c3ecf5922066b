"""Settings from PATRONI_* and HAAGENT_* variables, named as Patroni names them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from haagent.config import (
    Address,
    ConfigError,
    Credentials,
    ListenAddress,
    is_agent_variable,
    load_settings_with_warnings,
    parse_settings,
)
from haagent.config.environ import variables
from haagent.main import main
from haagent.watchdog.guard_client import guard_env


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "pgbin"
    path.mkdir()
    (path / "pg_ctl").write_text("#!/bin/sh\nexit 0\n")
    (path / "pg_ctl").chmod(0o755)
    return path


def minimal(bin_dir: Path) -> dict[str, Any]:
    return {
        "scope": "demo",
        "name": "n1",
        "restapi": {"listen": "127.0.0.11:8008"},
        "etcd3": {"host": "127.0.0.11:2379"},
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


def test_patroni_variables_as_patroni_names_them(tmp_path: Path, bin_dir: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    environ = {
        "PATRONI_NAME": "n2",
        "PATRONI_SCOPE": "batman",
        "PATRONI_NAMESPACE": "/ha/",
        "PATRONI_RESTAPI_LISTEN": "*:9008",
        "PATRONI_RESTAPI_CONNECT_ADDRESS": "127.0.0.12:9008",
        "PATRONI_RESTAPI_USERNAME": "admin",
        "PATRONI_RESTAPI_PASSWORD": "s3cret",
        "PATRONI_RESTAPI_ALLOWLIST": "127.0.0.1, 10.0.0.0/8",
        "PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS": "true",
        "PATRONI_ETCD3_HOSTS": "'127.0.0.11:2379','127.0.0.12:2379'",
        "PATRONI_ETCD3_PROTOCOL": "https",
        "PATRONI_ETCD3_CACERT": str(ca),
        "PATRONI_ETCD3_USERNAME": "root",
        "PATRONI_ETCD3_PASSWORD": "etcd-pw",
        "PATRONI_POSTGRESQL_LISTEN": "127.0.0.12:5433",
        "PATRONI_POSTGRESQL_DATA_DIR": "/srv/pg/n2",
        "PATRONI_POSTGRESQL_PGPASS": "/tmp/pgpass-n2",
        "PATRONI_SUPERUSER_USERNAME": "su",
        "PATRONI_SUPERUSER_PASSWORD": "su-pw",
        "PATRONI_REPLICATION_USERNAME": "rep",
        "PATRONI_REPLICATION_PASSWORD": "rep-pw",
        "PATRONI_REWIND_USERNAME": "rw",
        "PATRONI_REWIND_PASSWORD": "rw-pw",
        "PATRONI_LOGLEVEL": "debug",  # Patroni's old name of log.level
        "PATRONI_LOG_DIR": str(tmp_path / "logs"),
        "UNRELATED": "x",
    }
    settings = parse_settings(minimal(bin_dir), environ=environ)
    assert (settings.name, settings.scope, settings.dcs_prefix) == ("n2", "batman", "/ha/batman/")
    api = settings.restapi
    assert api.listen == ListenAddress(("*",), 9008)
    assert api.connect_address == Address("127.0.0.12", 9008)
    assert api.authentication == Credentials("admin", "s3cret")
    assert api.allowlist == ("127.0.0.1", "10.0.0.0/8") and api.allowlist_include_members
    etcd = settings.etcd3
    assert etcd.hosts == (Address("127.0.0.11", 2379), Address("127.0.0.12", 2379))
    assert (etcd.protocol, etcd.cacert, etcd.username, etcd.password) == (
        "https",
        ca,
        "root",
        "etcd-pw",
    )
    pg = settings.postgresql
    assert pg.listen == ListenAddress(("127.0.0.12",), 5433)
    assert pg.data_dir == Path("/srv/pg/n2") and pg.pgpass == Path("/tmp/pgpass-n2")
    assert pg.authentication.superuser == Credentials("su", "su-pw")
    assert pg.authentication.replication == Credentials("rep", "rep-pw")
    assert pg.authentication.rewind == Credentials("rw", "rw-pw")
    assert settings.log.level == "DEBUG" and settings.log.dir == tmp_path / "logs"


def test_haagent_variables_win_over_patroni_ones_and_both_over_the_file(bin_dir: Path) -> None:
    environ = {
        "PATRONI_NAME": "from-patroni",
        "HAAGENT_NAME": "from-haagent",
        "PATRONI_SCOPE": "patroni-scope",
        "PATRONI_ETCD3_HOST": "127.0.0.13:2379",
    }
    settings = parse_settings(minimal(bin_dir), environ=environ)
    assert (settings.name, settings.scope) == ("from-haagent", "patroni-scope")
    assert settings.etcd3.hosts == (Address("127.0.0.13", 2379),)  # replaces the file's host


def test_names_follow_patrons_rules() -> None:
    environ = {
        "PATRONI_POSTGRESQL_BIN_PG_REWIND": "/opt/pg_rewind",
        "PATRONI_REPLICATION_SSLMODE": "verify-ca",
        "PATRONI_CTL_INSECURE": "true",
        "PATRONI_CTL_USERNAME": "ctl",
        "PATRONI_LOG_LEVEL": "info",
        "PATRONI_LOGLEVEL": "debug",  # the new name wins
        "PATRONI_ETCD_URL": "http://e:2379",
        "PATRONI_RESTAPI_ALLOWLIST": "a",
        "PATRONI_SOMETHING_ELSE": "x",
        "HAAGENT_LAB_DIR": "/tmp/lab",
    }
    assert variables(environ, "PATRONI_") == {
        ("postgresql", "bin_name", "pg_rewind"): "PATRONI_POSTGRESQL_BIN_PG_REWIND",
        ("postgresql", "authentication", "replication", "sslmode"): "PATRONI_REPLICATION_SSLMODE",
        ("ctl", "insecure"): "PATRONI_CTL_INSECURE",
        ("ctl", "authentication", "username"): "PATRONI_CTL_USERNAME",
        ("log", "level"): "PATRONI_LOG_LEVEL",
        ("etcd", "url"): "PATRONI_ETCD_URL",
        ("restapi", "allowlist"): "PATRONI_RESTAPI_ALLOWLIST",
    }
    assert variables(environ, "HAAGENT_") == {}


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.11:2379,[::1]:2379",
        "[127.0.0.11:2379, '[::1]:2379']",
        "- 127.0.0.11:2379\n- '[::1]:2379'",
    ],
)
def test_host_lists_as_yaml_or_separated_by_commas(bin_dir: Path, text: str) -> None:
    settings = parse_settings(minimal(bin_dir), environ={"PATRONI_ETCD3_HOSTS": text})
    assert settings.etcd3.hosts == (Address("127.0.0.11", 2379), Address("::1", 2379))


def test_empty_patroni_variables_are_ignored_as_patroni_ignores_them(bin_dir: Path) -> None:
    settings = parse_settings(minimal(bin_dir), environ={"PATRONI_NAME": "", "PATRONI_SCOPE": ""})
    assert (settings.name, settings.scope) == ("n1", "demo")
    with pytest.raises(ConfigError) as caught:
        parse_settings(minimal(bin_dir), environ={"HAAGENT_NAME": ""})
    assert caught.value.key == "HAAGENT_NAME"


@pytest.mark.parametrize(
    ("variable", "value", "detail"),
    [
        ("PATRONI_ETCD3_HOSTS", "a:2379,b:99999", "port 99999 is out of range"),
        ("PATRONI_RESTAPI_LISTEN", "everywhere", "is not a listen address"),
        ("PATRONI_RESTAPI_HTTP_EXTRA_HEADERS", "[1, 2]", "cannot be read"),
    ],
)
def test_a_bad_value_names_the_patroni_variable(
    bin_dir: Path, variable: str, value: str, detail: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(minimal(bin_dir), source=Path("n1.yml"), environ={variable: value})
    assert caught.value.key == variable
    assert str(caught.value).startswith(f"environment: {variable}: ")
    assert detail in str(caught.value)


def test_a_section_made_by_variables_names_them(bin_dir: Path) -> None:
    data = minimal(bin_dir)
    del data["etcd3"]
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, environ={"PATRONI_ETCD_HOSTS": "e1:2379"})
    assert "haagent does not support etcd" in str(caught.value)
    assert "(set by PATRONI_ETCD_HOSTS)" in str(caught.value)


def test_without_a_file_the_yaml_or_the_variables_alone(
    bin_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"PATRONI_CONFIGURATION": yaml.safe_dump(minimal(bin_dir)), "PATRONI_NAME": "n9"}
    settings, _ = load_settings_with_warnings(None, environ)
    assert (settings.name, settings.scope, settings.source) == ("n9", "demo", None)
    alone = {
        "PATRONI_NAME": "n3",
        "PATRONI_SCOPE": "demo",
        "PATRONI_ETCD3_HOSTS": "127.0.0.11:2379",
        "PATRONI_RESTAPI_LISTEN": "127.0.0.13:8008",
        "PATRONI_POSTGRESQL_LISTEN": "127.0.0.13:5432",
        "PATRONI_POSTGRESQL_DATA_DIR": "/srv/pg/n3",
        "PATRONI_POSTGRESQL_BIN_DIR": str(bin_dir),
        "PATRONI_SUPERUSER_USERNAME": "postgres",
        "PATRONI_REPLICATION_USERNAME": "replicator",
        "PATRONI_REPLICATION_PASSWORD": "rep",
    }
    settings, _ = load_settings_with_warnings(None, alone)
    assert settings.name == "n3" and settings.postgresql.data_dir == Path("/srv/pg/n3")
    with pytest.raises(ConfigError) as caught:
        load_settings_with_warnings(None, {"PATRONI_CONFIGURATION": "a: [b"})
    assert caught.value.key == "PATRONI_CONFIGURATION"
    with pytest.raises(ConfigError) as caught:
        load_settings_with_warnings(None, {"PATRONI_CONFIGURATION": "scope: x\n"})
    assert str(caught.value).startswith("PATRONI_CONFIGURATION: name: is missing")
    for name in list(os.environ):
        if is_agent_variable(name):
            monkeypatch.delenv(name)
    for name, value in alone.items():
        monkeypatch.setenv(name, value)
    assert main(["--validate-config"]) == 0
    assert capsys.readouterr().out == "the environment: configuration is valid\n"


def test_no_agent_variable_reaches_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATRONI_SUPERUSER_PASSWORD", "s3cret")
    monkeypatch.setenv("HAAGENT_REPLICATION_PASSWORD", "s3cret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = guard_env()
    assert "s3cret" not in env.values() and env["LANG"] == "C.UTF-8"
    assert is_agent_variable("PATRONI_NAME") and not is_agent_variable("PGDATA")
