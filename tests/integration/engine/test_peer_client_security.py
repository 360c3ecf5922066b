"""The agent's peer client (and haactl's REST client) against real servers: TLS, credentials,
addresses and answers taken from etcd are untrusted.

- certificates are verified (`restapi.cafile`, `ctl.cacert`): a peer with a certificate
  from an unknown CA is unreachable;
- the client certificate (`ctl.certfile`, else `restapi.certfile`) is presented, so a
  peer with `verify_client: required` answers;
- the failsafe POST carries credentials only to the api_url of a member key, and never
  over plain HTTP when this node's API uses TLS; haactl sends them with changing requests
  only;
- answers are read up to a limit; only http(s) URLs are called.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from haagent.api import RestApiServer
from haagent.cli.context import Connection
from haagent.cli.rest import haactl_client
from haagent.config import ConfigError
from haagent.config.model import (
    Credentials,
    CtlSettings,
    ListenAddress,
    PostgresqlSettings,
    RestApiSettings,
    Settings,
)
from haagent.dcs.model import Member
from haagent.engine.peers import MAX_RESPONSE_BYTES, HttpPeerClient, peer_access
from haagent_lab.fake_api import FakeController, replica_status
from support.api_pki import make_pki

pytestmark = pytest.mark.integration

STATUS = b'{"state":"running","role":"replica","timeline":2,"xlog":{"received_location":500}}'
SECRET = Credentials("admin", "peer-s3cret")
TOKEN = "Basic " + base64.b64encode(b"admin:peer-s3cret").decode()


@pytest.fixture
def pki(workdir: Path) -> Path:
    return make_pki(workdir)


def settings(**kw: object) -> Settings:
    return Settings(
        scope="demo",
        name="node1",
        postgresql=PostgresqlSettings(data_dir=Path("/nonexistent")),
        restapi=kw.pop("restapi", RestApiSettings()),  # type: ignore[arg-type]
        ctl=kw.pop("ctl", CtlSettings()),  # type: ignore[arg-type]
    )


@dataclass
class Peer:
    """A peer's REST API stand-in: records what it receives."""

    base: str
    authorization: list[str | None] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    streamed: list[int] = field(default_factory=lambda: [0])

    def member(self, name: str = "node2", path: str = "/patroni") -> Member:
        return Member(
            name=name, conn_url="postgres://127.0.0.1:5432/postgres", api_url=self.base + path
        )


StartPeer = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def start_peer() -> AsyncIterator[StartPeer]:
    runners: list[web.AppRunner] = []

    async def start(context: ssl.SSLContext | None = None) -> Peer:
        peer = Peer("")

        async def status(request: web.Request) -> web.Response:
            peer.requests.append(request.path)
            peer.authorization.append(request.headers.get("Authorization"))
            return web.Response(body=STATUS, content_type="application/json")

        async def failsafe(request: web.Request) -> web.Response:
            peer.requests.append(request.path)
            peer.authorization.append(request.headers.get("Authorization"))
            return web.Response(text="Accepted")

        async def big(request: web.Request) -> web.StreamResponse:
            peer.requests.append(request.path)
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            chunk = b" " * 65536
            try:
                for _ in range(200 * 16):  # 200 MB, chunked, no Content-Length
                    await response.write(chunk)
                    peer.streamed[0] += len(chunk)
            except (ConnectionError, RuntimeError):
                pass
            return response

        async def redirect(request: web.Request) -> web.Response:
            peer.requests.append(request.path)
            raise web.HTTPFound("/patroni")

        app = web.Application()
        app.router.add_get("/patroni", status)
        app.router.add_post("/failsafe", failsafe)
        app.router.add_get("/big/patroni", big)
        app.router.add_get("/moved/patroni", redirect)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        scheme = "https" if context else "http"
        peer.base = f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
        return peer

    yield start
    for runner in runners:
        await runner.cleanup()


def server_context(pki: Path, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki / f"{name}.crt"), str(pki / f"{name}.key"))
    return context


async def reachable(client: HttpPeerClient, member: Member) -> bool:
    return (await client.positions([member], timeout=5))[member.name].reachable


async def test_peer_certificates_are_verified(pki: Path, start_peer: StartPeer) -> None:
    genuine = await start_peer(server_context(pki, "server"))
    rogue = await start_peer(server_context(pki, "rogue-server"))
    for trust in (
        settings(restapi=RestApiSettings(cafile=pki / "ca.crt")),
        settings(ctl=CtlSettings(cacert=pki / "ca.crt")),
    ):
        client = HttpPeerClient(peer_access(trust))
        try:
            assert await reachable(client, genuine.member())
            assert not await reachable(client, rogue.member())
        finally:
            await client.close()
    assert rogue.requests == []  # the handshake failed: nothing was asked
    # ctl.insecure is the operator's explicit choice to skip the check
    insecure = HttpPeerClient(peer_access(settings(ctl=CtlSettings(insecure=True))))
    try:
        assert await reachable(insecure, rogue.member())
    finally:
        await insecure.close()


async def test_the_client_certificate_is_presented(pki: Path) -> None:
    """A peer with verify_client: required (a real haagent REST API) answers only then."""
    required = RestApiSettings(
        listen=ListenAddress(("127.0.0.1",), 0),
        certfile=pki / "server.crt",
        keyfile=pki / "server.key",
        cafile=pki / "ca.crt",
        verify_client="required",
    )
    server = RestApiServer(required, FakeController(replica_status()), scope="demo", name="node2")
    await server.start()
    member = Member(
        "node2", "postgres://127.0.0.1:5432/postgres", f"https://127.0.0.1:{server.port}/patroni"
    )
    try:
        client_cert = CtlSettings(
            cacert=pki / "ca.crt", certfile=pki / "client.crt", keyfile=pki / "client.key"
        )
        own_cert = RestApiSettings(
            certfile=pki / "node.crt", keyfile=pki / "node.key", cafile=pki / "ca.crt"
        )
        for config, answers in (
            (settings(restapi=own_cert), True),  # restapi.certfile presented
            (settings(ctl=client_cert), True),  # ctl.certfile presented
            (settings(ctl=CtlSettings(cacert=pki / "ca.crt")), False),  # no certificate
        ):
            client = HttpPeerClient(peer_access(config))
            try:
                assert await reachable(client, member) is answers, config.ctl
            finally:
                await client.close()
    finally:
        await server.stop()


def test_unreadable_tls_files_are_one_config_error(pki: Path) -> None:
    (pki / "broken.crt").write_text("not a certificate\n")
    with pytest.raises(ConfigError) as caught:
        peer_access(
            settings(ctl=CtlSettings(certfile=pki / "broken.crt", keyfile=pki / "client.key"))
        )
    assert caught.value.key == "ctl.certfile" and "broken.crt" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        peer_access(settings(restapi=RestApiSettings(cafile=pki / "broken.crt")))
    assert caught.value.key == "restapi.cafile"


async def test_failsafe_credentials_go_only_to_members_and_never_over_plain_http(
    pki: Path, start_peer: StartPeer
) -> None:
    plain = await start_peer()
    member = plain.member()
    known = {"node2": member}
    client = HttpPeerClient(
        peer_access(settings(restapi=RestApiSettings(authentication=SECRET))), members=lambda: known
    )
    try:
        assert await client.confirm_failsafe({"node2": member.api_url}, "node1", timeout=5)
        # the failsafe key names an address that no member key has: no credentials
        stranger = plain.base + "/patroni?elsewhere"
        await client.confirm_failsafe({"node2": stranger, "node9": member.api_url}, "node1", 5)
    finally:
        await client.close()
    assert plain.authorization == [TOKEN, None, None]
    # this node's API uses TLS: a plain-http peer never gets the password
    tls_node = RestApiSettings(
        authentication=SECRET,
        certfile=pki / "node.crt",
        keyfile=pki / "node.key",
        cafile=pki / "ca.crt",
    )
    client = HttpPeerClient(peer_access(settings(restapi=tls_node)), members=lambda: known)
    try:
        await client.confirm_failsafe({"node2": member.api_url}, "node1", timeout=5)
    finally:
        await client.close()
    assert plain.authorization[-1] is None
    # ... while an https peer of the cluster does
    secure = await start_peer(server_context(pki, "server"))
    tls_member = secure.member()
    client = HttpPeerClient(
        peer_access(settings(restapi=tls_node)), members=lambda: {"node2": tls_member}
    )
    try:
        assert await client.confirm_failsafe({"node2": tls_member.api_url}, "node1", timeout=5)
    finally:
        await client.close()
    assert secure.authorization == [TOKEN]


async def test_an_oversized_answer_is_cut_off(start_peer: StartPeer) -> None:
    peer = await start_peer()
    client = HttpPeerClient()
    try:
        started = asyncio.get_running_loop().time()
        assert not await reachable(client, peer.member(path="/big/patroni"))
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        await client.close()
    await asyncio.sleep(0.2)
    mib = peer.streamed[0] / 2**20
    print(f"peer streamed {mib:.1f} MiB before the client hung up, {elapsed:.2f}s")
    assert peer.streamed[0] < 32 * MAX_RESPONSE_BYTES  # far from the 200 MB it offered


async def test_only_http_urls_are_called_and_redirects_not_followed(start_peer: StartPeer) -> None:
    peer = await start_peer()
    port = peer.base.rsplit(":", 1)[1]
    client = HttpPeerClient()
    try:
        for url in (
            "file:///etc/passwd",
            f"ftp://127.0.0.1:{port}/patroni",
            f"http://user:pw@127.0.0.1:{port}/patroni",
            f"http://127.0.0.1:{port}/pat\nroni",
            "",
        ):
            member = Member("node2", "postgres://127.0.0.1:5432/postgres", url)
            assert not await reachable(client, member), url
        assert not await reachable(client, peer.member(path="/moved/patroni"))
    finally:
        await client.close()
    assert peer.requests == ["/moved/patroni"]


async def test_haactl_sends_credentials_with_changing_requests_only(
    pki: Path, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    url = peer.member().api_url
    async with haactl_client(Connection(scope="demo", rest_auth=SECRET)) as client:
        assert (await client.call("GET", url, "/patroni", timeout=5)).status == 200
        assert (await client.call("POST", url, "/failsafe", {}, timeout=5)).status == 200
    # with TLS configured, a plain-http address from etcd never gets the password
    tls = Connection(scope="demo", rest_auth=SECRET, rest_cacert=pki / "ca.crt")
    async with haactl_client(tls) as client:
        assert (await client.call("POST", url, "/failsafe", {}, timeout=5)).status == 200
    assert peer.authorization == [None, TOKEN, None]
