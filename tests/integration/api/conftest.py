"""A real REST API server on a free port of 127.0.0.1, over the in-memory fake controller."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import pytest

from haagent.api import RestApiServer
from haagent.config.model import ListenAddress, RestApiSettings
from haagent.engine.status import PublishedStatus
from haagent_lab.fake_api import ApiClient, FakeController


@dataclass
class Api(ApiClient):
    server: RestApiServer | None = None
    controller: FakeController | None = None

    def publish(self, status: PublishedStatus) -> None:
        assert self.controller is not None
        self.controller.publish(status)


StartApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def start_api() -> AsyncIterator[StartApi]:
    """Starts servers on 127.0.0.1:<free port>; stops them at the end of the test."""
    servers: list[RestApiServer] = []

    async def start(
        status: PublishedStatus,
        settings: RestApiSettings | None = None,
        *,
        client_ssl: ssl.SSLContext | None = None,
    ) -> Api:
        settings = replace(settings or RestApiSettings(), listen=ListenAddress(("127.0.0.1",), 0))
        controller = FakeController(status)
        server = RestApiServer(settings, controller, scope=status.scope, name=status.name)
        await server.start()
        servers.append(server)
        base = f"{settings.scheme}://127.0.0.1:{server.port}"
        return Api(base, client_ssl, server=server, controller=controller)

    yield start
    for server in servers:
        await server.stop()
