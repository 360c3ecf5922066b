"""Limits that keep slow or greedy clients from holding the REST API.

- `REQUEST_READ_TIMEOUT`: a request's headers must arrive within this many seconds
  of the connection opening (or of the previous answer on a kept-alive connection),
  its body within as many seconds of the handler asking for it; otherwise the
  connection is closed (408 for a body, after LINGERING_TIME).
- `MAX_CONNECTIONS_PER_ADDRESS`: more open connections from one client address are
  closed at once, so one host cannot take every connection the agent can hold.
  HAProxy opens one short connection per check; `wrk -c8` eight.
- A request that is not HTTP (or bytes after a body, parsed as the next request) gets
  a short 400 and one log line of at most LOGGED_CHARS characters: never the bytes
  echoed back, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger("haagent.api")

REQUEST_READ_TIMEOUT = 10.0
MAX_CONNECTIONS_PER_ADDRESS = 64
# After an answer that leaves part of a body unread (400 too large, 408), the rest is
# read and dropped this long, so the client can still read the answer, then closed.
LINGERING_TIME = 2.0
LOGGED_CHARS = 160


class _Handler(RequestHandler):
    """aiohttp's connection handler, answering malformed requests briefly."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        detail = " ".join(str(exc or message or "").split())
        if len(detail) > LOGGED_CHARS:
            detail = detail[: LOGGED_CHARS - 3] + "..."
        log.info("malformed request from %s answered %d: %s", request.remote, status, detail)
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already sent on this connection")
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        answer = web.Response(status=status, text=f"{status} {phrase}: malformed request\n")
        answer.force_close()
        return answer


class LimitedServer(web.Server):
    """aiohttp's low-level server with a header timeout and a per-address connection cap."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        # aiohttp closes a connection whose request has not fully arrived when its
        # keep-alive timer fires: the timer starts when the connection opens and again
        # after each answer, so it is the header read timeout.
        super().__init__(
            handler,
            keepalive_timeout=REQUEST_READ_TIMEOUT,
            lingering_time=LINGERING_TIME,
            **kwargs,
        )
        self.per_address = MAX_CONNECTIONS_PER_ADDRESS
        self._open: Counter[str] = Counter()
        self._address: dict[RequestHandler, str] = {}
        self._refusing: set[str] = set()

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple | list) and peer else "?"
        self._address[handler] = address
        self._open[address] += 1
        if self._open[address] > self.per_address:
            if address not in self._refusing:
                self._refusing.add(address)
                log.warning(
                    "refusing connections from %s: it already has %d open (the limit per "
                    "address)", address, self.per_address,
                )  # fmt: skip
            transport.close()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        address = self._address.pop(handler, None)
        if address is None:
            return
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]
        if self._open[address] < self.per_address:
            self._refusing.discard(address)

    def open_connections(self, address: str) -> int:
        return self._open.get(address, 0)
