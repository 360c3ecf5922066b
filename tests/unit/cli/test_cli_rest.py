"""haactl through a real REST API server (the API's fake controller, on its own thread).

Every member's api_url points at that one server, so these tests check what haactl sends
and how it reports the answers: auth, status codes, the `haagent` block of /patroni.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from haactl_memory import CONFIG, Cli, edit_member, get, put

from haagent.api import RestApiServer
from haagent.config.model import Credentials, ListenAddress, RestApiSettings
from haagent.dcs.memory import MemoryStore
from haagent.engine.requests import (
    CancelRestartRequest,
    CancelSwitchoverRequest,
    ReinitializeRequest,
    ReloadRequest,
    RequestResult,
    RestartRequest,
    SwitchoverRequest,
)
from haagent_lab.fake_api import FakeController, primary_status


@dataclass
class Api:
    controller: FakeController
    port: int


StartApi = Callable[..., Api]


@pytest.fixture
def start_api(store: MemoryStore) -> Iterator[StartApi]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers: list[RestApiServer] = []

    def start(auth: Credentials | None = None, **tls: Any) -> Api:
        controller = FakeController(primary_status())
        settings = RestApiSettings(
            listen=ListenAddress(("127.0.0.1",), 0), authentication=auth, **tls
        )
        server = RestApiServer(settings, controller, scope="stampede", name="node1")
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        servers.append(server)
        url = f"{settings.scheme}://127.0.0.1:{server.port}/patroni"
        for name in ("node1", "node2", "node3"):
            edit_member(store, name, api_url=url)
        return Api(controller, server.port)

    yield start
    for server in servers:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_pause_goes_through_the_api_with_credentials(cli: Cli, start_api: StartApi) -> None:
    api = start_api(Credentials("ops", "s3cret"))
    result = cli("pause")
    assert result.exit_code == 1
    assert "refused the change (401" in result.output and "--user" in result.output
    result = cli("--user", "ops:s3cret", "pause")  # a password in argv is refused
    assert result.exit_code == 2 and "HAACTL_PASSWORD" in result.output
    assert api.controller.requests == []
    result = cli("--user", "ops", "pause", env={"HAACTL_PASSWORD": "s3cret"})
    assert result.exit_code == 0, result.output
    assert "Success: cluster management is paused" in result.output
    assert api.controller.config["pause"] is True
    assert get(cli.store, "config") == CONFIG  # the agent writes etcd, not haactl


def test_credentials_from_the_environment(cli: Cli, start_api: StartApi) -> None:
    api = start_api(Credentials("ops", "s3cret"))
    from click.testing import CliRunner

    from haagent.cli.context import Ctl
    from haagent.cli.main import main

    result = CliRunner().invoke(
        main,
        ["--scope", "stampede", "pause"],
        obj=Ctl(backend_factory=cli.backend),
        env={"HAACTL_USER": "ops", "HAACTL_PASSWORD": "s3cret"},
    )
    assert result.exit_code == 0, result.output
    assert api.controller.config["pause"] is True


def test_switchover_through_the_api_reports_the_agents_refusal(
    cli: Cli, start_api: StartApi
) -> None:
    api = start_api()
    api.controller.results[SwitchoverRequest] = RequestResult(412, "candidate not fit: lagging")
    result = cli("switchover", "--candidate", "node2", "--force")
    assert result.exit_code == 1
    assert "switchover failed: node1 answered 412: candidate not fit: lagging" in result.output
    assert api.controller.requests == [SwitchoverRequest("node1", "node2", None)]
    assert get(cli.store, "failover") is None  # no fallback when the API answered


def test_switchover_through_the_api_waits_for_etcd_to_agree(
    cli: Cli, store: MemoryStore, start_api: StartApi
) -> None:
    api = start_api()

    async def submit(request: object) -> RequestResult:
        put(store, "leader", "node2")  # what the agents do before answering 200
        edit_member(store, "node2", role="primary")
        return RequestResult(200, 'Successfully switched over to "node2"')

    api.controller.submit = submit  # type: ignore[method-assign]
    result = cli("switchover", "--leader", "node1", "--candidate", "node2", "--force")
    assert result.exit_code == 0, result.output
    assert 'Successfully switched over to "node2" in ' in result.output
    assert "REST API did not answer" not in result.output


def test_scheduled_switchover_through_the_api(cli: Cli, start_api: StartApi) -> None:
    api = start_api()
    api.controller.results[SwitchoverRequest] = RequestResult(202, "switchover scheduled")
    result = cli(
        "switchover", "--candidate", "node2", "--scheduled", "2099-05-01T08:00+02:00", "--force"
    )
    assert result.exit_code == 0, result.output
    assert "switchover scheduled" in result.output
    request = api.controller.requests[0]
    assert isinstance(request, SwitchoverRequest) and request.scheduled_at is not None
    assert request.scheduled_at.isoformat() == "2099-05-01T08:00:00+02:00"


def test_restart_reinit_reload_through_the_api(cli: Cli, start_api: StartApi) -> None:
    api = start_api()
    result = cli("restart", "node2", "--role", "replica", "--pg-version", "16.4", "--force")
    assert result.exit_code == 0, result.output
    assert "Success: restart on member node2" in result.output
    assert api.controller.requests == [RestartRequest(role="replica", postgres_version="16.4")]
    result = cli("reinit", "node3", "--from-leader", "--force")
    assert result.exit_code == 0, result.output
    assert api.controller.requests[1:] == [ReinitializeRequest(force=True, from_leader=True)]
    result = cli("reload", "node1", "--force")
    assert result.exit_code == 0 and "Success: reload on member node1" in result.output
    api.controller.results[ReloadRequest] = RequestResult(202, "reloaded")  # as the agent answers
    result = cli("reload", "node1", "--force")
    assert result.exit_code == 0
    assert "Success: reload on member node1: reloaded" in result.output, result.output
    api.controller.results[RestartRequest] = RequestResult(503, "restart failed: boom")
    result = cli("restart", "node2", "--force")
    assert result.exit_code == 1
    assert "Failed: restart for member node2, status code=503, (restart failed: boom)" in (
        result.output
    )


def test_explain_shows_each_members_last_decision(cli: Cli, start_api: StartApi) -> None:
    start_api()
    result = cli("explain")
    assert result.exit_code == 0, result.output
    assert "last decision: leader_renewed: renewed the leader key" in result.output
    assert "unreachable" not in result.output


def test_version_asks_the_members(cli: Cli, start_api: StartApi) -> None:
    start_api()
    result = cli("version")
    assert result.exit_code == 0
    assert "node1: haagent 4.1.0 PostgreSQL 15.6" in result.output.splitlines()


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl."""
    days = ["-days", "2"]
    _openssl(tmp_path, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-subj", "/CN=haactl test CA", *days)  # fmt: skip
    (tmp_path / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    (tmp_path / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl(tmp_path, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", f"/CN={name}")  # fmt: skip
        _openssl(tmp_path, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey",
                 "ca.key", "-CAcreateserial", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
                 *days)  # fmt: skip
    return tmp_path


def test_tls_with_a_client_certificate(cli: Cli, start_api: StartApi, pki: Path) -> None:
    start_api(
        certfile=pki / "server.crt",
        keyfile=pki / "server.key",
        cafile=pki / "ca.crt",
        verify_client="required",
    )
    tls = ["--cacert", str(pki / "ca.crt")]
    client = ["--cert", str(pki / "client.crt"), "--key", str(pki / "client.key")]
    result = cli(*tls, *client, "version")
    assert result.exit_code == 0
    assert "node1: haagent 4.1.0 PostgreSQL 15.6" in result.output.splitlines()
    unverified = cli("version")  # the system CAs do not know this server
    assert "node1: REST API unreachable" in unverified.output
    assert "certificate verify failed" in unverified.output.lower()
    result = cli(*tls, *client, "reload", "node2", "--force")
    assert result.exit_code == 0 and "Success: reload on member node2" in result.output


def test_insecure_skips_verification(cli: Cli, start_api: StartApi, pki: Path) -> None:
    start_api(certfile=pki / "server.crt", keyfile=pki / "server.key")
    result = cli("-k", "version")
    assert "node1: haagent 4.1.0 PostgreSQL 15.6" in result.output.splitlines()


def test_unreadable_tls_files_are_bad_input(cli: Cli, start_api: StartApi, pki: Path) -> None:
    start_api(certfile=pki / "server.crt", keyfile=pki / "server.key")
    result = cli("--cacert", str(pki / "missing.crt"), "reload", "--force")
    assert result.exit_code == 2
    assert "cannot load the REST API TLS files" in result.output


def test_missing_client_certificate_is_named(cli: Cli, start_api: StartApi, pki: Path) -> None:
    start_api(
        certfile=pki / "server.crt",
        keyfile=pki / "server.key",
        cafile=pki / "ca.crt",
        verify_client="required",
    )
    result = cli("--cacert", str(pki / "ca.crt"), "version")
    assert "node1: REST API unreachable" in result.output
    assert "pass --cert and --key" in result.output


def test_flush_through_the_api(cli: Cli, store: MemoryStore, start_api: StartApi) -> None:
    api = start_api()
    put(store, "failover", {"leader": "node1", "member": "node2",
                            "scheduled_at": "2099-01-01T00:00:00+00:00"})  # fmt: skip
    result = cli("flush", "switchover", "--force")
    assert result.exit_code == 0, result.output
    assert api.controller.requests == [CancelSwitchoverRequest()]
    api.controller.results[CancelRestartRequest] = RequestResult(404, "no restart is scheduled")
    result = cli("flush", "stampede", "node2", "node3", "restart", "--force")
    assert result.exit_code == 0, result.output
    assert "No scheduled restart for member node2" in result.output
    assert api.controller.requests[1:] == [CancelRestartRequest(), CancelRestartRequest()]
