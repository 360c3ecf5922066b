"""The REST client of the members' APIs over a MockTransport: what goes out (addresses,
credentials, bodies), what comes back (a typed status, or ApiUnreachable), and the
status document haagent writes read back into the same typed value."""

from __future__ import annotations

import json
import ssl

import pytest

from haagent.api import status_json
from haagent.config.model import Credentials
from haagent.dcs.model import Member
from haagent.engine.peers import HttpPeerClient, PeerAccess
from haagent.rest_client import (
    ApiUnreachable,
    Authorization,
    Failure,
    HttpRequest,
    HttpResponse,
    MemberStatus,
    MockTransport,
    RestClient,
    parse_status,
)
from haagent.rest_client.status import LastDecision
from haagent_lab.fake_api import LEADER_LSN, primary_status, replica_status

API = "http://127.0.0.12:8008/patroni"
TOKEN = "Basic b3BzOnMzY3JldA=="  # ops:s3cret
REPLICA = {"state": "running", "role": "replica", "timeline": 2,
           "xlog": {"received_location": 500, "replayed_location": 400}}  # fmt: skip


def answering(status: int = 200, body: object = REPLICA) -> MockTransport:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(status, raw)

    return MockTransport(handler)


def client(transport: MockTransport, *, tls_only: bool = False) -> RestClient:
    auth = Authorization.basic(Credentials("ops", "s3cret"), tls_only=tls_only)
    return RestClient(transport, auth, hints={Failure.CONNECT: " (is the agent running?)"})


async def test_a_status_is_one_typed_value() -> None:
    transport = answering()
    status = await client(transport).status(API)
    assert status == MemberStatus(state="running", role="replica", timeline=2,
                                  received_location=500, replayed_location=400)  # fmt: skip
    assert status.lsn == 500 and status.running and status.in_recovery
    assert status.haagent is None  # Patroni's document has no `haagent` block
    [request] = transport.requests
    assert (request.method, request.url, dict(request.headers)) == ("GET", API, {})


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b"<html>", b"[" * 100_000, {"role": 7}, {"xlog": "0/3000000"},
     {"tags": "nofailover"}, {"role": "primary", "xlog": {"location": True}},
     {"role": "primary", "xlog": {"location": 2**64}}],
)  # fmt: skip
async def test_a_document_that_is_not_a_status_is_refused(body: object) -> None:
    with pytest.raises(ApiUnreachable) as caught:
        await client(answering(body=body)).status(API)
    assert caught.value.failure is Failure.ANSWER
    assert "not a member's status" in str(caught.value)


async def test_only_a_200_is_a_status_and_an_oversized_answer_is_refused() -> None:
    with pytest.raises(ApiUnreachable, match="answered 503"):
        await client(answering(503)).status(API)
    huge = RestClient(answering(body=b" " * 2048), max_bytes=1024)
    with pytest.raises(ApiUnreachable, match="over 1024 bytes"):
        await huge.status(API)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://127.0.0.12/patroni", "http://u:p@127.0.0.12:8008/patroni",
     "http://127.0.0.12:8008/pat\nroni", "", "http://127.0.0.12:99999/patroni"],
)  # fmt: skip
async def test_only_http_urls_are_called(url: str) -> None:
    transport = answering()
    with pytest.raises(ApiUnreachable) as caught:
        await client(transport).status(url)
    with pytest.raises(ApiUnreachable):
        await client(transport).call("POST", url, "/restart", {}, timeout=1)
    assert caught.value.failure is Failure.ADDRESS
    assert transport.requests == []


async def test_credentials_go_with_changing_requests_only() -> None:
    transport = answering(body={"ok": True})
    rest = client(transport)
    await rest.call("GET", API, "/cluster", timeout=1)
    await rest.call("POST", API, "/restart", {"role": "replica"}, timeout=1)
    await rest.call("POST", API, "/failsafe", {}, timeout=1, authorize=False)
    get, post, unauthorized = transport.requests
    assert "Authorization" not in get.headers and get.url == "http://127.0.0.12:8008/cluster"
    assert post.headers["Authorization"] == TOKEN and json.loads(post.body or b"") == {
        "role": "replica"
    }
    assert post.headers["Content-Type"] == "application/json"
    assert "Authorization" not in unauthorized.headers


async def test_credentials_never_go_over_plain_http_once_tls_is_configured() -> None:
    transport = answering(body={})
    rest = client(transport, tls_only=True)
    await rest.call("POST", API, "/reload", timeout=1)
    await rest.call("POST", API.replace("http:", "https:"), "/reload", timeout=1)
    plain, secure = transport.requests
    assert "Authorization" not in plain.headers
    assert secure.headers["Authorization"] == TOKEN


async def test_a_failure_carries_the_callers_hint() -> None:
    async def refuse(request: HttpRequest) -> HttpResponse:
        raise ApiUnreachable("cannot connect to 127.0.0.12:8008 (refused)", Failure.CONNECT)

    rest = client(MockTransport(refuse))
    answers = await rest.statuses([Member("node2", "postgres://127.0.0.12:5432/postgres", API)])
    assert answers == {
        "node2": "cannot connect to 127.0.0.12:8008 (refused) (is the agent running?)"
    }


def test_the_document_haagent_writes_reads_back_into_the_typed_value() -> None:
    primary = parse_status(
        json.loads(status_json.encode(status_json.node_status(primary_status())))
    )
    assert (primary.role, primary.state, primary.timeline) == ("primary", "running", 2)
    assert primary.lsn == LEADER_LSN and not primary.in_recovery
    assert primary.server_version == 150006 and primary.version == "4.1.0"
    assert primary.haagent == LastDecision("leader_renewed", "renewed the leader key", "off")
    assert primary.tags == {"clonefrom": True}
    replica = parse_status(status_json.node_status(replica_status(replay_lsn=LEADER_LSN - 10)))
    assert replica.in_recovery and replica.replayed_location == LEADER_LSN - 10
    assert replica.lsn is not None and replica.lsn >= LEADER_LSN - 10


async def test_the_peer_client_over_a_mock_transport() -> None:
    """Positions from statuses; failsafe credentials only to a member key's api_url."""
    member = Member("node2", "postgres://127.0.0.12:5432/postgres", API)
    transport = answering(body={**REPLICA, "tags": {"nofailover": True}})
    credentials = Authorization.basic(Credentials("ops", "s3cret"), tls_only=False)
    access = PeerAccess(ssl.create_default_context(), credentials)
    peers = HttpPeerClient(access, lambda: {"node2": member}, transport)
    positions = await peers.positions([member], timeout=1)
    assert positions["node2"].reachable and positions["node2"].lsn == 500
    assert positions["node2"].nofailover and positions["node2"].timeline == 2
    assert await peers.confirm_failsafe({"node2": API, "node1": "x"}, "node1", timeout=1)
    # the failsafe key names an address no member key has: asked, without credentials
    assert await peers.confirm_failsafe({"node2": API + "?elsewhere"}, "node1", timeout=1)
    get, confirmed, stranger = transport.requests
    assert "Authorization" not in get.headers
    assert confirmed.url == "http://127.0.0.12:8008/failsafe"
    assert confirmed.headers["Authorization"] == TOKEN
    assert json.loads(confirmed.body or b"") == {"name": "node1"}
    assert "Authorization" not in stranger.headers
    await peers.close()
    assert transport.closed
