"""The one client of the members' REST APIs: the agent asking its peers, and `haactl`.

Addresses come from etcd (a member key's `api_url`, the failsafe key), answers from
other machines: both are untrusted.  Whatever the caller:

- only `http://` and `https://` URLs naming a host, without credentials or control
  characters in them, are called (`api_url_problem`);
- redirects are not followed, at most MAX_ANSWER_BYTES of an answer are read, and
  every call has its own connection (the transport's rules);
- credentials (basic auth) go with changing requests only (never with GET, HEAD,
  OPTIONS), only where the caller allows them (`authorize`), and never over plain
  HTTP once TLS is configured (`Authorization.tls_only`);
- a member's status is parsed into one typed value (`MemberStatus`), or refused.

Everything else (which TLS files, whose credentials) is the caller's: the agent's
peer client (`haagent.engine.peers`) and haactl (`haagent.cli.rest`).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from haagent.config.model import Credentials
from haagent.dcs.model import Member
from haagent.rest_client.status import BadStatus, MemberStatus, decode_status
from haagent.rest_client.transport import (
    AiohttpTransport,
    ApiUnreachable,
    Failure,
    HttpRequest,
    HttpResponse,
    Transport,
)

# A member's /patroni document is a few kilobytes, an action's answer a line: a member
# answering more is not one.
MAX_ANSWER_BYTES = 1024 * 1024
STATUS_TIMEOUT = 3.0
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def api_url_problem(url: str) -> str | None:
    """Why `url` is not an address to call, or None.

    Only `http://` and `https://` URLs naming a host, without credentials in them and
    without control characters: anything else in etcd is not a member's REST API.
    """
    shown = repr(url[:80])
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as e:
        return f"api_url {shown} is not a URL ({e})"
    if parts.scheme not in ("http", "https"):
        return f"api_url {shown} is not an http:// or https:// URL"
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return f"api_url {shown} names no host, or carries credentials"
    if not url.isprintable():
        return f"api_url {shown} contains control characters"
    return None


def checked_url(api_url: str) -> str:
    """`api_url` when it is an address to call; raises ApiUnreachable otherwise."""
    problem = api_url_problem(api_url)
    if problem is not None:
        raise ApiUnreachable(problem, Failure.ADDRESS)
    return api_url


def base_url(api_url: str) -> str:
    """`http://node1:8008/patroni` -> `http://node1:8008`; raises ApiUnreachable."""
    parts = urlsplit(checked_url(api_url))
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Authorization:
    """The credentials sent with changing requests, and where they may not go.

    `tls_only`: TLS is configured, so the cluster's APIs are HTTPS, and credentials
    are never sent over plain HTTP (an `http://` address in etcd is not trusted with
    them)."""

    header: str | None = field(default=None, repr=False)  # the Authorization header's value
    tls_only: bool = False

    @classmethod
    def basic(cls, credentials: Credentials | None, *, tls_only: bool) -> Authorization:
        if credentials is None:
            return cls(None, tls_only)
        pair = f"{credentials.username}:{credentials.password or ''}".encode()
        return cls(f"Basic {base64.b64encode(pair).decode()}", tls_only)

    def refusal(self, url: str) -> str | None:
        """Why the credentials may not go to `url`, or None (also when there are none)."""
        if self.header is not None and self.tls_only and not url.startswith("https://"):
            return "plain http while this cluster uses TLS: no credentials sent"
        return None


@dataclass(frozen=True)
class Reply:
    """A member's answer to a call."""

    status: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except (ValueError, RecursionError):
            return None

    @property
    def message(self) -> str:
        """The answer as one line for people."""
        return " ".join(self.text.split()) or f"HTTP {self.status}"


class RestClient:
    """Calls to the members' REST APIs over one transport.

    `hints` adds a sentence to the message of a failure of that kind (haactl names its
    options there).  Raises ApiUnreachable, never anything of the transport's own.
    """

    def __init__(
        self,
        transport: Transport | None = None,
        authorization: Authorization | None = None,
        *,
        hints: Mapping[Failure, str] | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.transport: Transport = transport if transport is not None else AiohttpTransport()
        self.authorization = authorization if authorization is not None else Authorization()
        self._hints = dict(hints or {})
        self._max_bytes = max_bytes

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    async def _send(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self.transport.send(request)
        except ApiUnreachable as e:
            hint = self._hints.get(e.failure)
            if hint is None:
                raise
            raise ApiUnreachable(f"{e}{hint}", e.failure) from None

    async def call(
        self,
        method: str,
        api_url: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float,
        authorize: bool = True,
    ) -> Reply:
        """`method path` on the member whose `api_url` is given, with a JSON `body`.

        Credentials go with a changing request when `authorize` and the `Authorization`
        allow them.  Raises ApiUnreachable."""
        url = base_url(api_url) + path
        headers: dict[str, str] = {}
        auth = self.authorization
        if (
            auth.header is not None
            and authorize
            and method.upper() not in _READS
            and auth.refusal(url) is None
        ):
            headers["Authorization"] = auth.header
        data = None
        if body is not None:
            data = json.dumps(dict(body)).encode()
            headers["Content-Type"] = "application/json"
        request = HttpRequest(method, url, headers, data, timeout, self._max_bytes)
        response = await self._send(request)
        return Reply(response.status, response.body.decode("utf-8", errors="replace"))

    async def status(self, api_url: str, timeout: float = STATUS_TIMEOUT) -> MemberStatus:
        """The member's status, from `GET api_url` (the URL its member key publishes);
        raises ApiUnreachable, also when the answer is not a member's status."""
        request = HttpRequest("GET", checked_url(api_url), {}, None, timeout, self._max_bytes)
        response = await self._send(request)
        if response.status != 200:
            raise ApiUnreachable(f"{api_url} answered {response.status}", Failure.ANSWER)
        try:
            return decode_status(response.body)
        except BadStatus as e:
            raise ApiUnreachable(
                f"{api_url} answered a document that is not a member's status: {e}",
                Failure.ANSWER,
            ) from None

    async def statuses(
        self, members: Sequence[Member], timeout: float = STATUS_TIMEOUT
    ) -> dict[str, MemberStatus | str]:
        """Each member's status, or why it could not be had (a string), all at once."""

        async def one(member: Member) -> MemberStatus | str:
            try:
                return await self.status(member.api_url, timeout)
            except ApiUnreachable as e:
                return str(e)

        results = await asyncio.gather(*(one(m) for m in members))
        return {m.name: r for m, r in zip(members, results, strict=True)}
