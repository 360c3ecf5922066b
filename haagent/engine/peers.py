"""Asking other members over their REST API: WAL positions for a race, failsafe confirmation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from haagent.config import tags as tag_rules
from haagent.core.snapshot import PeerPosition
from haagent.dcs.model import Member

log = logging.getLogger("haagent.engine")


def position_from_status(name: str, body: Mapping[str, Any]) -> PeerPosition:
    """A peer's position from its `GET /patroni` JSON."""
    xlog = body.get("xlog") or {}
    role = body.get("role")
    lsn: int | None
    if role in ("primary", "master", "standby_leader") and "location" in xlog:
        lsn = int(xlog["location"])
    else:
        values = [xlog.get("received_location"), xlog.get("replayed_location")]
        known = [int(v) for v in values if isinstance(v, int)]
        lsn = max(known) if known else None
    tags = body.get("tags") or {}
    priority = tag_rules.failover_priority(tags)
    return PeerPosition(
        name=name,
        reachable=True,
        lsn=lsn,
        timeline=body.get("timeline") if isinstance(body.get("timeline"), int) else None,
        running=body.get("state") == "running",
        in_recovery=role not in ("primary", "master"),
        failover_priority=priority,
        # A peer whose required watchdog is unusable cannot lead: it never counts as ahead.
        nofailover=tag_rules.nofailover(tags) or bool(body.get("watchdog_failed")),
    )


class HttpPeerClient:
    """Talks to peers' REST APIs with one shared aiohttp session."""

    def __init__(self, auth: aiohttp.BasicAuth | None = None, ssl: Any = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._auth = auth
        self._ssl = ssl

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _one(self, member: Member, timeout: float) -> PeerPosition:
        try:
            async with self._client().get(
                member.api_url,
                timeout=aiohttp.ClientTimeout(total=timeout),
                ssl=self._ssl,
            ) as response:
                body = await response.json(content_type=None)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            return position_from_status(member.name, body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            log.info("peer %s at %s did not answer: %s", member.name, member.api_url, e)
            return PeerPosition(name=member.name, reachable=False)

    async def positions(self, members: Sequence[Member], timeout: float) -> dict[str, PeerPosition]:
        results = await asyncio.gather(*(self._one(m, timeout) for m in members))
        return {p.name: p for p in results}

    async def _confirm(self, url: str, leader: str, timeout: float) -> bool:
        failsafe_url = url.rsplit("/", 1)[0] + "/failsafe"
        try:
            async with self._client().post(
                failsafe_url,
                json={"name": leader},
                auth=self._auth,
                timeout=aiohttp.ClientTimeout(total=timeout),
                ssl=self._ssl,
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def confirm_failsafe(
        self, members: Mapping[str, str], leader: str, timeout: float
    ) -> bool:
        others = {n: u for n, u in members.items() if n != leader}
        if not others:
            return True
        answers = await asyncio.gather(
            *(self._confirm(u, leader, timeout) for u in others.values())
        )
        return all(answers)
