"""Asking other members over their REST API: WAL positions for a race, failsafe confirmation."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from haagent.config import ConfigError, Settings
from haagent.config import tags as tag_rules
from haagent.core.snapshot import PeerPosition
from haagent.dcs import codec
from haagent.dcs.member_api import api_url_problem, read_limited
from haagent.dcs.model import Member

log = logging.getLogger("haagent.engine")

# A member's /patroni document is a few kilobytes; a peer answering more is not one.
MAX_RESPONSE_BYTES = 1024 * 1024


def _int_in(value: object, maximum: int) -> int | None:
    """An integer of a peer's JSON within 0..maximum, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum:
        return value
    return None


def position_from_status(name: str, body: Mapping[str, Any]) -> PeerPosition:
    """A peer's position from its `GET /patroni` JSON.

    Raises ValueError when the document is not a member's status (the caller
    treats such a peer as unreachable): a peer is untrusted input.
    """
    xlog = body.get("xlog") or {}
    tags = body.get("tags") or {}
    role = body.get("role")
    for key, value, kind in (("xlog", xlog, dict), ("tags", tags, dict), ("role", role, str)):
        if value is not None and not isinstance(value, kind):
            raise ValueError(f"{key} is a {type(value).__name__}, not a {kind.__name__}")
    lsn: int | None
    if role in ("primary", "master", "standby_leader") and "location" in xlog:
        lsn = _int_in(xlog["location"], codec.MAX_LSN)
        if lsn is None:
            raise ValueError(f"xlog.location {str(xlog['location'])[:40]!r} is not a WAL position")
    else:
        values = (xlog.get("received_location"), xlog.get("replayed_location"))
        known = [p for p in (_int_in(v, codec.MAX_LSN) for v in values) if p is not None]
        lsn = max(known) if known else None
    priority = tag_rules.failover_priority(tags)
    return PeerPosition(
        name=name,
        reachable=True,
        lsn=lsn,
        timeline=_int_in(body.get("timeline"), codec.MAX_TIMELINE),
        running=body.get("state") == "running",
        in_recovery=role not in ("primary", "master"),
        failover_priority=priority,
        # A peer whose required watchdog is unusable cannot lead: it never counts as ahead.
        nofailover=tag_rules.nofailover(tags) or bool(body.get("watchdog_failed")),
    )


def _problem(error: BaseException) -> str:
    """One short line about why a peer's answer was not used."""
    if isinstance(error, TimeoutError):
        return "no answer in time"
    text = str(error) if isinstance(error, ValueError | aiohttp.ClientError) else ""
    return (text or type(error).__name__)[:200]


@dataclass(frozen=True)
class PeerAccess:
    """How this agent calls its peers: the TLS context and the changing requests' credentials.

    `tls` is True when this node's own REST API uses TLS: the cluster's APIs are
    HTTPS, and credentials are then never sent over plain HTTP.
    """

    ssl_context: ssl.SSLContext
    authorization: str | None = field(default=None, repr=False)  # the header's value
    tls: bool = False


def peer_access(settings: Settings) -> PeerAccess:
    """Patroni's rules: `ctl.cacert` else `restapi.cafile` verifies the peers (else the
    system's CAs); `ctl.certfile` else `restapi.certfile` is presented as the client
    certificate; `ctl.authentication` else `restapi.authentication` is sent with the
    failsafe POST; `ctl.insecure` turns verification off.  Raises ConfigError naming the
    files when they cannot be loaded."""
    ctl, rest = settings.ctl, settings.restapi
    cafile = ctl.cacert or rest.cafile
    own = ctl.certfile is not None
    where = "ctl" if own else "restapi"
    cert = ctl.certfile if own else rest.certfile
    key = ctl.keyfile if own else rest.keyfile
    password = ctl.keyfile_password if own else rest.keyfile_password
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as e:
        key_path = "ctl.cacert" if ctl.cacert else "restapi.cafile"
        raise ConfigError(
            key_path, f"cannot load {cafile}: {e}", "a readable PEM CA file", file=settings.source
        ) from None
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), str(key) if key else None, password=password)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(
                f"{where}.certfile",
                f"cannot load {cert} / {key}: {e}",
                "a readable PEM certificate and its key (keyfile_password if it is encrypted)",
                file=settings.source,
            ) from None
    if ctl.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    auth = ctl.authentication or rest.authentication
    token = None
    if auth is not None:
        token = base64.b64encode(f"{auth.username}:{auth.password or ''}".encode()).decode()
    return PeerAccess(
        ssl_context=context,
        authorization=f"Basic {token}" if token else None,
        tls=rest.certfile is not None,
    )


class HttpPeerClient:
    """Talks to peers' REST APIs with one shared aiohttp session.

    Everything a peer answers is untrusted: at most MAX_RESPONSE_BYTES are read,
    redirects are not followed, a document that is not a member's status makes the
    peer unreachable.  Credentials go only to the `api_url` of a member key of this
    cluster (`members()`), and never over plain HTTP when this node's API uses TLS.
    """

    def __init__(
        self,
        access: PeerAccess | None = None,
        members: Callable[[], Mapping[str, Member]] = dict,
    ) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.access = access if access is not None else PeerAccess(ssl.create_default_context())
        self._members = members
        self._problems: dict[str, str] = {}

    def reconfigure(self, access: PeerAccess) -> None:
        """New TLS files or credentials (a reload): used from the next request on."""
        self.access = access

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # A new connection per call: peers are asked seldom (a race, failsafe), and a
            # kept-alive one could be closed by the peer's idle timeout as it is reused.
            connector = aiohttp.TCPConnector(force_close=True)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _one(self, member: Member, timeout: float) -> PeerPosition:
        try:
            problem = api_url_problem(member.api_url)
            if problem is not None:
                raise ValueError(problem)
            async with self._client().get(
                member.api_url,
                timeout=aiohttp.ClientTimeout(total=timeout),
                ssl=self.access.ssl_context,
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    raise ValueError(f"answered {response.status}")
                length = response.content_length
                if length is not None and length > MAX_RESPONSE_BYTES:
                    raise ValueError(f"its answer of {length} bytes is over {MAX_RESPONSE_BYTES}")
                raw = await read_limited(response.content, MAX_RESPONSE_BYTES)
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            position = position_from_status(member.name, body)
        except Exception as e:  # any answer at all: the peer counts as unreachable
            self._report(member.name, member.api_url, _problem(e))
            return PeerPosition(name=member.name, reachable=False)
        self._report(member.name, member.api_url, None)
        return position

    def _report(self, name: str, url: str, problem: str | None) -> None:
        """Log a peer's problem once, when it starts or changes, and when it ends."""
        last = self._problems.get(name)
        if problem == last:
            return
        if problem is None:
            self._problems.pop(name, None)
            log.info("peer %s at %s answers again", name, url)
            return
        self._problems[name] = problem
        log.warning("peer %s at %s counts as unreachable: %s", name, url, problem)

    async def positions(self, members: Sequence[Member], timeout: float) -> dict[str, PeerPosition]:
        results = await asyncio.gather(*(self._one(m, timeout) for m in members))
        return {p.name: p for p in results}

    def _headers_for(self, name: str, url: str) -> dict[str, str]:
        """The credentials for a changing request to `url`, when it may carry them."""
        access = self.access
        if access.authorization is None:
            return {}
        member = self._members().get(name)
        if member is None or member.api_url != url:
            self._report(name, url, "not the api_url of a member key: no credentials sent")
            return {}
        if access.tls and not url.startswith("https://"):
            self._report(name, url, "plain http while this cluster uses TLS: no credentials sent")
            return {}
        return {"Authorization": access.authorization}

    async def _confirm(self, name: str, url: str, leader: str, timeout: float) -> bool:
        try:
            problem = api_url_problem(url)
            if problem is not None:
                raise ValueError(problem)
            failsafe_url = url.rsplit("/", 1)[0] + "/failsafe"
            async with self._client().post(
                failsafe_url,
                json={"name": leader},
                headers=self._headers_for(name, url),
                timeout=aiohttp.ClientTimeout(total=timeout),
                ssl=self.access.ssl_context,
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    raise ValueError(f"failsafe answered {response.status}")
        except Exception as e:  # not confirmed, whatever happened
            self._report(name, url, _problem(e))
            return False
        return True

    async def confirm_failsafe(
        self, members: Mapping[str, str], leader: str, timeout: float
    ) -> bool:
        others = {n: u for n, u in members.items() if n != leader}
        if not others:
            return True
        answers = await asyncio.gather(
            *(self._confirm(n, u, leader, timeout) for n, u in others.items())
        )
        return all(answers)
