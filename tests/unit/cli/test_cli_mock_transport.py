"""haactl's REST calls over a MockTransport handed in through `Ctl.rest_transport`: what
each command sends, and how it reads the typed status the members answer."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result
from haactl_memory import SCOPE, Cli

from haagent.cli.context import Ctl
from haagent.cli.main import main
from haagent.rest_client import ApiUnreachable, Failure, HttpRequest, HttpResponse, MockTransport

HAAGENT = {"state": "running", "role": "replica", "server_version": 150006,
           "patroni": {"version": "9.9.9", "scope": SCOPE, "name": "node2"},
           "haagent": {"reason_code": "following_leader", "reason_text": "following"}}  # fmt: skip
PATRONI = {"state": "running", "role": "replica", "server_version": 160002,
           "patroni": {"version": "4.0.4", "scope": SCOPE}}  # fmt: skip


def run(
    cli: Cli, transport: MockTransport, *args: str, env: dict[str, str] | None = None
) -> Result:
    ctl = Ctl(backend_factory=cli.backend, rest_transport=lambda conn: transport)
    return CliRunner().invoke(main, ["--scope", SCOPE, *args], obj=ctl, env=env)


def test_version_reads_haagent_and_patroni_statuses(cli: Cli) -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        if request.url.startswith("http://127.0.0.1:") and len(transport.requests) == 3:
            raise ApiUnreachable("cannot connect to 127.0.0.13:8008 (refused)", Failure.CONNECT)
        body = PATRONI if len(transport.requests) == 2 else HAAGENT
        return HttpResponse(200, json.dumps(body).encode())

    transport = MockTransport(handler)
    result = run(cli, transport, "version")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "node1: haagent 9.9.9 PostgreSQL 15.6" in lines
    assert "node2: Patroni 4.0.4 PostgreSQL 16.2" in lines
    assert "node3: REST API unreachable (cannot connect to 127.0.0.13:8008 (refused))" in lines
    assert all(r.method == "GET" and "Authorization" not in r.headers for r in transport.requests)


def test_restart_posts_its_body_with_the_credentials(cli: Cli) -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, b"restarted")

    transport = MockTransport(handler)
    result = run(cli, transport, "--user", "ops", "restart", "node2", "--role", "replica",
                 "--force", env={"HAACTL_PASSWORD": "s3cret"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Success: restart on member node2" in result.output
    [request] = transport.requests
    assert request.method == "POST" and request.url.endswith("/restart")
    assert json.loads(request.body or b"") == {"role": "replica"}
    assert request.headers["Authorization"] == "Basic b3BzOnMzY3JldA=="
    assert transport.closed
