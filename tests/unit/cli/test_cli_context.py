"""Where haactl finds the cluster, and what happens when etcd does not answer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from haagent.cli.context import Options, load_connection, parse_dcs_url
from haagent.cli.errors import BadInput
from haagent.cli.main import main

REPO = Path(__file__).resolve().parents[3]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_node_config_file_gives_scope_hosts_timeout_and_credentials() -> None:
    conn = load_connection(Options(config_file=REPO / "config" / "node1.yml"))
    assert conn.scope == "stampede"
    assert [str(h) for h in conn.etcd.hosts] == ["node1:2379", "node2:2379", "node3:2379"]
    assert conn.retry_timeout == 10
    assert conn.rest_auth is not None and conn.rest_auth.username == "haagent"
    assert conn.superuser is not None and conn.superuser.username == "postgres"
    assert conn.prefix("stampede") == "/service/stampede/"
    assert "node1.yml" in conn.source


def test_a_short_ctl_only_file_works(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ctl.yml",
        "namespace: /db/\netcd3:\n  hosts: 10.0.0.1:2379\n"
        "ctl:\n  insecure: true\n  authentication: {username: ops, password: pw}\n",
    )
    conn = load_connection(Options(config_file=path))
    assert conn.scope is None and conn.namespace == "/db/"
    assert conn.insecure and conn.rest_auth is not None and conn.rest_auth.username == "ops"
    assert conn.prefix("x") == "/db/x/"


def test_options_override_the_file() -> None:
    conn = load_connection(
        Options(
            config_file=REPO / "config" / "node1.yml",
            dcs_url="etcd3://127.0.0.1:2379,127.0.0.2:2379",
            scope="other",
            timeout=2.5,
            user="admin:secret",
        )
    )
    assert [str(h) for h in conn.etcd.hosts] == ["127.0.0.1:2379", "127.0.0.2:2379"]
    assert conn.scope == "other" and conn.retry_timeout == 2.5
    assert conn.rest_auth is not None and conn.rest_auth.password == "secret"
    assert conn.source.startswith("--dcs-url")


def test_dcs_url_forms() -> None:
    assert str(parse_dcs_url("http://h1:2379").hosts[0]) == "h1:2379"
    assert parse_dcs_url("https://h1:2379").protocol == "https"
    assert str(parse_dcs_url("h1").hosts[0]) == "h1:2379"
    with pytest.raises(BadInput):
        parse_dcs_url("etcd3://")
    with pytest.raises(BadInput):
        parse_dcs_url("consul://h:1")


def test_a_broken_config_file_is_bad_usage(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yml", "scope: s\netcd3:\n  hosts: [\n")
    result = CliRunner().invoke(main, ["-c", str(path), "list"])
    assert result.exit_code == 2
    assert "bad.yml" in result.output and "fix the file" in result.output


def test_a_missing_config_file_is_bad_usage(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["-c", str(tmp_path / "nope.yml"), "list"])
    assert result.exit_code == 2
    assert "nope.yml" in result.output


def test_no_cluster_name_anywhere_is_bad_usage() -> None:
    result = CliRunner().invoke(main, ["--dcs-url", "127.0.0.1:2379", "list"])
    assert result.exit_code == 2
    assert "pass CLUSTER_NAME, --scope NAME" in result.output


def test_config_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yml", "scope: envscope\netcd3:\n  hosts: 127.0.0.1:1\n")
    result = CliRunner().invoke(
        main, ["--timeout", "0.3", "list"], env={"HAACTL_CONFIG": str(path)}
    )
    assert result.exit_code == 1
    assert "/service/envscope/" not in result.output  # etcd failed before the cluster check
    assert "etcd at 127.0.0.1:1 cannot be reached" in result.output


def test_unreachable_etcd_fails_within_retry_timeout(tmp_path: Path, closed_port: int) -> None:
    path = write(
        tmp_path / "c.yml",
        f"scope: stampede\netcd3:\n  hosts: [127.0.0.1:{closed_port}]\n"
        "bootstrap:\n  dcs: {ttl: 10, loop_wait: 2, retry_timeout: 2}\n",
    )
    for command in (["list"], ["explain"], ["switchover", "--force"], ["pause"], ["history"]):
        started = time.monotonic()
        result = CliRunner().invoke(main, ["-c", str(path), *command])
        elapsed = time.monotonic() - started
        assert result.exit_code == 1, (command, result.output)
        assert f"etcd at 127.0.0.1:{closed_port} cannot be reached" in result.output
        assert f"(check etcd3.hosts in {path} or that etcd runs)" in result.output
        assert 1.5 <= elapsed < 3.0, (command, elapsed)


def test_unreachable_etcd_with_the_default_timeout_message(closed_port: int) -> None:
    result = CliRunner().invoke(
        main, ["--dcs-url", f"127.0.0.1:{closed_port}", "--scope", "s", "--timeout", "0.5", "dsn"]
    )
    assert result.exit_code == 1
    assert "no answer within 0.5s" in result.output
    assert f"check --dcs-url 127.0.0.1:{closed_port} or that etcd runs" in result.output


def test_help_and_unknown_commands() -> None:
    assert CliRunner().invoke(main, ["--help"]).exit_code == 0
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert CliRunner().invoke(main, ["list", "--format", "xml"]).exit_code == 2
