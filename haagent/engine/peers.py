"""Asking other members over their REST API: WAL positions for a race, failsafe confirmation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from haagent.core.snapshot import PeerPosition
from haagent.dcs import codec
from haagent.dcs.model import Member

log = logging.getLogger("haagent.engine")


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
    priority = tags.get("failover_priority", 1)
    if isinstance(priority, str) and priority.strip().isascii() and priority.strip().isdigit():
        priority = int(priority.strip()[:18])
    if not isinstance(priority, int) or isinstance(priority, bool):
        priority = 1
    return PeerPosition(
        name=name,
        reachable=True,
        lsn=lsn,
        timeline=_int_in(body.get("timeline"), codec.MAX_TIMELINE),
        running=body.get("state") == "running",
        in_recovery=role not in ("primary", "master"),
        failover_priority=priority,
        # A peer whose required watchdog is unusable cannot lead: it never counts as ahead.
        nofailover=bool(tags.get("nofailover", False)) or bool(body.get("watchdog_failed")),
    )


def _problem(error: BaseException) -> str:
    """One short line about why a peer's answer was not used."""
    if isinstance(error, TimeoutError):
        return "no answer in time"
    text = str(error) if isinstance(error, ValueError | aiohttp.ClientError) else ""
    return (text or type(error).__name__)[:200]


class HttpPeerClient:
    """Talks to peers' REST APIs with one shared aiohttp session."""

    def __init__(self, auth: aiohttp.BasicAuth | None = None, ssl: Any = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._auth = auth
        self._ssl = ssl
        self._problems: dict[str, str] = {}

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
            position = position_from_status(member.name, body)
        except Exception as e:  # any answer at all: the peer counts as unreachable
            self._report(member, _problem(e))
            return PeerPosition(name=member.name, reachable=False)
        self._report(member, None)
        return position

    def _report(self, member: Member, problem: str | None) -> None:
        """Log a peer's problem once, when it starts or changes, and when it ends."""
        last = self._problems.get(member.name)
        if problem == last:
            return
        if problem is None:
            self._problems.pop(member.name, None)
            log.info("peer %s at %s answers again", member.name, member.api_url)
            return
        self._problems[member.name] = problem
        log.warning("peer %s at %s counts as unreachable: %s", member.name, member.api_url, problem)

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
