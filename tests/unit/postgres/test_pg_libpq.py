"""TLS and other libpq keys of postgresql.authentication.<user>: parsed, and used everywhere."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from haagent.config import ConfigError, Credentials, ListenAddress, load_settings, parse_settings
from haagent.postgres.conf import ConfInputs, render_conf
from haagent.postgres.libpq import options_for, tool_connection
from haagent.postgres.model import Upstream
from haagent.postgres.session import ConnParams


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    for name in ("ca.crt", "client.crt", "client.key", "crl.pem"):
        (tmp_path / name).write_text("x")
    (tmp_path / "crls").mkdir()
    return tmp_path


def config(tmp_path: Path, replication: dict[str, Any]) -> dict[str, Any]:
    bin_dir = tmp_path / "pgbin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pg_ctl").write_text("#!/bin/sh\n")
    (bin_dir / "pg_ctl").chmod(0o755)
    return {
        "scope": "demo",
        "name": "n1",
        "restapi": {"listen": "127.0.0.11:8008"},
        "etcd3": {"hosts": ["127.0.0.11:2379"]},
        "postgresql": {
            "listen": "127.0.0.11:5432",
            "data_dir": "/srv/pg",
            "bin_dir": str(bin_dir),
            "authentication": {
                "superuser": {"username": "postgres", "sslmode": "require"},
                "replication": {"username": "replicator", "password": "p", **replication},
            },
        },
    }


def test_the_keys_patroni_accepts_next_to_a_user(tmp_path: Path, pki: Path) -> None:
    replication = {
        "sslmode": "verify-full",
        "sslcert": str(pki / "client.crt"),
        "sslkey": str(pki / "client.key"),
        "sslpassword": "key-secret",
        "sslrootcert": str(pki / "ca.crt"),
        "sslcrl": str(pki / "crl.pem"),
        "sslcrldir": str(pki / "crls"),
        "gssencmode": "disable",
        "channel_binding": "prefer",
        "sslnegotiation": "postgres",
    }
    path = tmp_path / "n1.yml"
    path.write_text(yaml.safe_dump(config(tmp_path, replication)))
    auth = load_settings(path, {}).postgresql.authentication
    assert dict(auth.replication.libpq) == replication
    assert auth.replication.password == "p"
    assert dict(auth.superuser.libpq) == {"sslmode": "require"}
    assert "key-secret" not in repr(auth)
    settings = parse_settings(
        config(tmp_path, {"sslrootcert": "system"}),
        environ={"PATRONI_REPLICATION_SSLMODE": "verify-ca"},
    )
    assert dict(settings.postgresql.authentication.replication.libpq) == {
        "sslmode": "verify-ca",
        "sslrootcert": "system",
    }


@pytest.mark.parametrize(
    ("replication", "key", "detail"),
    [
        ({"sslmode": "sometimes"}, "sslmode", "'sometimes' is not a sslmode"),
        ({"channel_binding": "yes"}, "channel_binding", "is not a channel_binding"),
        ({"sslcert": "client.crt"}, "sslcert", "is a relative path"),
        ({"sslkey": "/nonexistent/client.key"}, "sslkey", "does not exist"),
        ({"sslcrldir": "/etc/hostname"}, "sslcrldir", "is not a directory"),
        ({"sslmode": ["require"]}, "sslmode", "is not text"),
    ],
)
def test_bad_libpq_keys_name_their_key_path(
    tmp_path: Path, replication: dict[str, Any], key: str, detail: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(tmp_path, replication), environ={})
    assert caught.value.key == f"postgresql.authentication.replication.{key}"
    assert detail in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(tmp_path, {}), environ={"PATRONI_REPLICATION_SSLMODE": "sometimes"})
    assert caught.value.key == "PATRONI_REPLICATION_SSLMODE"


def test_keys_newer_than_the_server_are_left_out_as_patroni_does() -> None:
    cred = Credentials(
        "rep", libpq=(("sslmode", "require"), ("sslnegotiation", "direct"), ("sslcrldir", "/d"))
    )
    assert options_for(cred, 150004) == ({"sslmode": "require", "sslcrldir": "/d"},
                                         ["sslnegotiation"])  # fmt: skip
    assert options_for(cred, 130000)[1] == ["sslnegotiation", "sslcrldir"]
    assert options_for(cred, 170000) == (dict(cred.libpq), [])
    assert options_for(cred, None) == (dict(cred.libpq), [])


def test_the_agents_connections_and_the_walreceiver_use_them() -> None:
    params = ConnParams("h", 5432, "postgres", "pw", libpq=(("sslmode", "verify-ca"),))
    assert params.kwargs(5)["sslmode"] == "verify-ca"
    inputs = ConfInputs(
        name="n1",
        scope="demo",
        listen=ListenAddress(("h",), 1),
        standby=True,
        upstream=Upstream("n2", "10.0.0.2", 5432),
        replication_options={"sslmode": "verify-full", "sslcert": "/pki/client 1.crt"},
        pgpass=Path("/p/pass"),
    )
    assert (
        "primary_conninfo = 'host=10.0.0.2 port=5432 user=replicator passfile=/p/pass "
        "application_name=n1 sslmode=verify-full sslcert=''/pki/client 1.crt'''"
    ) in render_conf(inputs)


def test_tools_get_secrets_through_a_service_file_only_while_they_run() -> None:
    with tool_connection({"sslmode": "require"}) as plain:
        assert plain.options == {"sslmode": "require"} and plain.env == {}
    with tool_connection({"sslmode": "require", "sslpassword": "key-secret"}) as tool:
        assert tool.options == {"sslmode": "require", "service": "haagent"}
        service = Path(tool.env["PGSERVICEFILE"])
        assert service.read_text() == "[haagent]\nsslpassword=key-secret\n"
        assert stat.S_IMODE(service.stat().st_mode) == 0o600
        assert stat.S_IMODE(service.parent.stat().st_mode) == 0o700
    assert not service.exists()
