"""Asking other members over their REST API: WAL positions for a race, failsafe confirmation.

The calls go through `haagent.rest_client` (the rules every call to a member follows:
addresses, answer limits, redirects, credentials); this module adds the agent's own:
which TLS files and credentials (`peer_access`), credentials only to the `api_url` of a
member key, and a peer that does not answer usefully counts as unreachable, logged once.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from haagent.config import ConfigError, Settings
from haagent.core.snapshot import PeerPosition
from haagent.dcs.model import Member
from haagent.rest_client import (
    AiohttpTransport,
    ApiUnreachable,
    Authorization,
    MemberStatus,
    RestClient,
    Transport,
)
from haagent.rest_client.client import MAX_ANSWER_BYTES

log = logging.getLogger("haagent.engine")

# A member's /patroni document is a few kilobytes; a peer answering more is not one.
MAX_RESPONSE_BYTES = MAX_ANSWER_BYTES


def peer_position(name: str, status: MemberStatus) -> PeerPosition:
    """What a race needs of a peer's status."""
    return PeerPosition(
        name=name,
        reachable=True,
        lsn=status.lsn,
        timeline=status.timeline,
        running=status.running,
        in_recovery=status.in_recovery,
        failover_priority=status.failover_priority,
        # A peer whose required watchdog is unusable cannot lead: it never counts as ahead.
        nofailover=status.nofailover,
    )


@dataclass(frozen=True)
class PeerAccess:
    """How this agent calls its peers: the TLS context and the changing requests' credentials.

    `authorization.tls_only` is True when this node's own REST API uses TLS: the
    cluster's APIs are HTTPS, and credentials are then never sent over plain HTTP.
    """

    ssl_context: ssl.SSLContext
    authorization: Authorization = field(default_factory=Authorization)


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
    credentials = ctl.authentication or rest.authentication
    return PeerAccess(
        ssl_context=context,
        authorization=Authorization.basic(credentials, tls_only=rest.certfile is not None),
    )


class HttpPeerClient:
    """Asks peers' REST APIs through one `RestClient`.

    Everything a peer answers is untrusted: a peer whose answer is not a member's status
    counts as unreachable, and each problem is logged once.  Credentials go only to the
    `api_url` of a member key of this cluster (`members()`), and never over plain HTTP
    when this node's API uses TLS.  `transport`: the real one unless a test hands in
    another.
    """

    def __init__(
        self,
        access: PeerAccess | None = None,
        members: Callable[[], Mapping[str, Member]] = dict,
        transport: Transport | None = None,
    ) -> None:
        self.access = access if access is not None else PeerAccess(ssl.create_default_context())
        self._members = members
        self._problems: dict[str, str] = {}
        if transport is None:
            transport = AiohttpTransport(lambda: self.access.ssl_context)
        self._rest = RestClient(transport, self.access.authorization)

    def reconfigure(self, access: PeerAccess) -> None:
        """New TLS files or credentials (a reload): used from the next request on."""
        self.access = access
        self._rest.authorization = access.authorization

    async def close(self) -> None:
        await self._rest.close()

    async def _one(self, member: Member, timeout: float) -> PeerPosition:
        try:
            status = await self._rest.status(member.api_url, timeout)
        except ApiUnreachable as e:  # any answer at all: the peer counts as unreachable
            self._report(member.name, member.api_url, str(e)[:200])
            return PeerPosition(name=member.name, reachable=False)
        self._report(member.name, member.api_url, None)
        return peer_position(member.name, status)

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

    def _may_authorize(self, name: str, url: str) -> bool:
        """Whether a changing request to `url` may carry this node's credentials."""
        authorization = self.access.authorization
        if authorization.header is None:
            return False
        member = self._members().get(name)
        if member is None or member.api_url != url:
            self._report(name, url, "not the api_url of a member key: no credentials sent")
            return False
        refusal = authorization.refusal(url)
        if refusal is not None:
            self._report(name, url, refusal)
            return False
        return True

    async def _confirm(self, name: str, url: str, leader: str, timeout: float) -> bool:
        try:
            reply = await self._rest.call(
                "POST",
                url,
                "/failsafe",
                {"name": leader},
                timeout=timeout,
                authorize=self._may_authorize(name, url),
            )
        except ApiUnreachable as e:  # not confirmed, whatever happened
            self._report(name, url, str(e)[:200])
            return False
        if reply.status != 200:
            self._report(name, url, f"failsafe answered {reply.status}")
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
