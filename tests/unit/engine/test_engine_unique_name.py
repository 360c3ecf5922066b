"""A second agent with a name a running member uses refuses to start (Patroni's check)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from haagent.dcs.model import ClusterView, Member
from haagent.engine.unique_name import liveness_url, name_in_use


def view(api_url: str) -> ClusterView:
    member = Member("node1", "postgres://127.0.0.11:5432/postgres", api_url)
    return ClusterView(members={"node1": member})


@pytest.fixture
async def api() -> AsyncIterator[str]:
    """A REST API answering /liveness with 503 (any answer means someone runs there)."""

    async def liveness(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/liveness", liveness)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/patroni"
    await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_liveness_url() -> None:
    assert liveness_url("http://h:8008/patroni") == "http://h:8008/liveness"
    assert liveness_url("https://h:8008/") == "https://h:8008/liveness"


async def test_a_running_member_with_the_name(api: str) -> None:
    why = await name_in_use(view(api), "node1")
    assert why is not None
    assert why.startswith("stopping: there is already a running member named 'node1'")
    assert api.replace("/patroni", "/liveness") in why
    assert "\n" not in why


async def test_the_name_is_free_when_nobody_answers_or_nobody_has_it(api: str) -> None:
    # This node's own key, left by an agent that just died: nothing answers, start.
    assert await name_in_use(view(f"http://127.0.0.1:{closed_port()}/patroni"), "node1") is None
    assert await name_in_use(view(api), "node2") is None
    assert await name_in_use(ClusterView(), "node1") is None
