"""The peer client against a real HTTP server answering hostile status documents.

A peer is untrusted input: whatever it answers, `positions()` returns, the peer
counts as unreachable when its document is not a member's status, and each
problem is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from haagent.dcs.model import Member
from haagent.engine.peers import HttpPeerClient

pytestmark = pytest.mark.integration

GOOD = b'{"state":"running","role":"replica","timeline":2,"xlog":{"received_location":500}}'
HOSTILE: dict[str, bytes] = {
    "overflow": b'{"state":"running","role":"primary","xlog":{"location":1e309}}',
    "bool-lsn": b'{"state":"running","role":"primary","xlog":{"location":true}}',
    "string-xlog": b'{"state":"running","role":"replica","xlog":"0/3000000"}',
    "string-tags": b'{"state":"running","role":"replica","tags":"nofailover"}',
    "list": b"[1, 2, 3]",
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "not-json": b"<html>hello</html>",
    "number-role": b'{"state":"running","role":7}',
}


@pytest.fixture
async def peer_server() -> AsyncIterator[str]:
    """A server on 127.0.0.1:<free port> answering /<case> with that case's document."""

    async def handle(request: web.Request) -> web.Response:
        name = request.path.strip("/")
        body = GOOD if name == "good" else HOSTILE[name]
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{case}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def member(base: str, case: str) -> Member:
    return Member(
        name=case, conn_url="postgres://127.0.0.1:5432/postgres", api_url=f"{base}/{case}"
    )


async def test_hostile_status_documents_make_the_peer_unreachable(
    peer_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="haagent.engine")
    client = HttpPeerClient()
    try:
        members = [member(peer_server, c) for c in ("good", *HOSTILE)]
        for _ in range(2):
            positions = await client.positions(members, timeout=5)
            assert positions["good"].reachable and positions["good"].lsn == 500
            assert positions["good"].timeline == 2
            for case in HOSTILE:
                assert not positions[case].reachable, case
    finally:
        await client.close()
    for case in HOSTILE:
        lines = [r.getMessage() for r in caplog.records if f"peer {case} at" in r.getMessage()]
        assert len(lines) == 1, (case, lines)  # once, not once per cycle
        assert "counts as unreachable" in lines[0]
