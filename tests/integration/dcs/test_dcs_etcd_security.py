"""TLS with a CA and a client certificate made in the test, and username/password auth."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from haagent.config.model import Etcd3Settings, PostgresqlSettings, Settings
from haagent.dcs import create_dcs
from haagent.dcs.errors import AuthenticationFailed
from haagent.dcs.etcd import EtcdDCS, read_raw
from haagent_lab.lab.etcd import EtcdCluster, EtcdTls, make_cluster

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pa55"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def issue(name: str, cwd: Path, extensions: str, ca: str = "ca") -> None:
    """A key and a certificate `<name>.crt` signed by `<ca>.crt`."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)  # fmt: skip
    (cwd / f"{name}.ext").write_text(extensions)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
            cwd=cwd)  # fmt: skip


def make_ca(name: str, cwd: Path) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.crt", "-days", "2", "-subj", f"/CN={name}", cwd=cwd)  # fmt: skip


@pytest.fixture
def pki(workdir: Path) -> Path:
    path = workdir / "pki"
    path.mkdir()
    make_ca("ca", path)
    issue("server", path, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    issue("client", path, "extendedKeyUsage=clientAuth\n")
    make_ca("other-ca", path)
    return path


@pytest.fixture
def tls_etcd(workdir: Path, pki: Path) -> Iterator[EtcdCluster]:
    tls = EtcdTls(cert=pki / "server.crt", key=pki / "server.key", ca=pki / "ca.crt")
    cluster = make_cluster(workdir / "etcd", ["127.0.0.1"], tls=tls)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def settings(cluster: EtcdCluster, workdir: Path, **etcd3: object) -> Settings:
    return Settings(
        scope="secure",
        name="node1",
        postgresql=PostgresqlSettings(data_dir=workdir / "pgdata"),
        etcd3=Etcd3Settings(hosts=cluster.hosts, **etcd3),  # type: ignore[arg-type]
    )


async def test_tls_with_a_client_certificate(
    tls_etcd: EtcdCluster, workdir: Path, pki: Path
) -> None:
    config = settings(
        tls_etcd, workdir, protocol="https", cacert=pki / "ca.crt", cert=pki / "client.crt",
        key=pki / "client.key",
    )  # fmt: skip
    dcs = create_dcs(config)
    await dcs.open()
    try:
        assert await dcs.take_leader()
        assert dcs.view().leader_name == "node1"
    finally:
        await dcs.close()
    assert (await read_raw(config))["/service/secure/leader"] == b"node1"


@pytest.mark.parametrize("case", ["no client certificate", "unknown CA"])
async def test_tls_refusals_are_authentication_errors(
    tls_etcd: EtcdCluster, workdir: Path, pki: Path, case: str
) -> None:
    if case == "no client certificate":
        config = settings(tls_etcd, workdir, protocol="https", cacert=pki / "ca.crt")
    else:
        config = settings(
            tls_etcd, workdir, protocol="https", cacert=pki / "other-ca.crt",
            cert=pki / "client.crt", key=pki / "client.key",
        )  # fmt: skip
    dcs = EtcdDCS.from_settings(config)
    dcs.set_retry_timeout(2)
    with pytest.raises(AuthenticationFailed) as error:
        await dcs.open()
    message = str(error.value)
    assert "TLS" in message and "etcd3.cacert" in message
    assert str(tls_etcd.hosts[0]) in message


def etcdctl(cluster: EtcdCluster, *args: str, user: str | None = None) -> str:
    argv = ["/usr/bin/etcdctl", "--endpoints", cluster.endpoints, *args]
    if user:
        argv[3:3] = ["--user", user]
    env = {**os.environ, "ETCDCTL_API": "3"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout


@pytest.fixture
def auth_etcd(workdir: Path) -> Iterator[EtcdCluster]:
    # Tokens live 1 s, so the tests also see the client authenticate again.
    cluster = make_cluster(workdir / "etcd", ["127.0.0.1"], extra_args=["--auth-token-ttl", "1"])
    try:
        cluster.start()
        etcdctl(cluster, "user", "add", f"root:{PASSWORD}")
        etcdctl(cluster, "user", "add", "nobody:nothing")
        etcdctl(cluster, "auth", "enable")
        yield cluster
    finally:
        cluster.stop()


async def test_username_and_password(auth_etcd: EtcdCluster, workdir: Path) -> None:
    dcs = create_dcs(settings(auth_etcd, workdir, username="root", password=PASSWORD))
    await dcs.open()
    try:
        assert await dcs.take_leader()
        await asyncio.sleep(2.5)  # the token expired meanwhile
        await dcs.renew_leader()
        await dcs.write_failover(leader="node1", candidate="node2", scheduled_at=None)
        assert dcs.view().leader_name == "node1"
        assert dcs.view().failover is not None
    finally:
        await dcs.close()
    raw = etcdctl(auth_etcd, "get", "/service/secure/leader", "--print-value-only",
                  user=f"root:{PASSWORD}")  # fmt: skip
    assert raw == "node1\n"


async def test_a_wrong_password_is_a_clear_error(auth_etcd: EtcdCluster, workdir: Path) -> None:
    dcs = create_dcs(settings(auth_etcd, workdir, username="root", password="wrong-password"))
    with pytest.raises(AuthenticationFailed) as error:
        await dcs.open()
    message = str(error.value)
    assert "refused user 'root'" in message and "etcd3.password" in message
    assert "wrong-password" not in message


async def test_missing_credentials_and_missing_permissions(
    auth_etcd: EtcdCluster, workdir: Path
) -> None:
    anonymous = create_dcs(settings(auth_etcd, workdir))
    with pytest.raises(AuthenticationFailed, match=r"set etcd3\.username"):
        await anonymous.open()
    nobody = create_dcs(settings(auth_etcd, workdir, username="nobody", password="nothing"))
    with pytest.raises(AuthenticationFailed, match="denied user 'nobody'"):
        await nobody.open()
