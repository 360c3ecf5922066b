"""haactl through a real REST API server (the API's fake controller, on its own thread).

Every member's api_url points at that one server, so these tests check what haactl sends
and how it reports the answers: auth, status codes, the `haagent` block of /patroni.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from haactl_memory import CONFIG, Cli, edit_member, get, put

from haagent.api import RestApiServer
from haagent.api.testing import FakeController, primary_status
from haagent.config.model import Credentials, ListenAddress, RestApiSettings
from haagent.dcs.memory import MemoryStore
from haagent.engine.requests import (
    ReinitializeRequest,
    RequestResult,
    RestartRequest,
    SwitchoverRequest,
)


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

    def start(auth: Credentials | None = None) -> Api:
        controller = FakeController(primary_status())
        settings = RestApiSettings(listen=ListenAddress(("127.0.0.1",), 0), authentication=auth)
        server = RestApiServer(settings, controller, scope="stampede", name="node1")
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        servers.append(server)
        for name in ("node1", "node2", "node3"):
            edit_member(store, name, api_url=f"http://127.0.0.1:{server.port}/patroni")
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
    result = cli("--user", "ops:s3cret", "pause")
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
