"""How a request to a member's REST API goes over the wire: the transport seam.

`RestClient` builds an `HttpRequest` and hands it to a `Transport`, which answers an
`HttpResponse` or raises `ApiUnreachable`.  `AiohttpTransport` is the real one;
`MockTransport` answers from a function, so a test hands in a fake transport instead
of patching (as httpx's `MockTransport` does).

What `AiohttpTransport` guarantees, whatever the URL or the answer:

- TLS: an `https://` URL is called with the context `ssl_context()` returns (certificate
  verification, the client certificate); the context is asked for only then.
- redirects are never followed: a 3xx is an answer like any other;
- at most `max_bytes` of an answer are read (a larger Content-Length is refused before
  reading, a longer body is cut off as it passes the limit);
- a new connection per call: members are asked seldom, and a kept-alive connection
  could be closed by the member's idle timeout just as it is reused.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import aiohttp


class Failure(StrEnum):
    """Why a member's REST API could not be used: what the caller may add a hint to."""

    ADDRESS = "address"  # the api_url is not an http(s) URL to call
    TIMEOUT = "timeout"
    CERTIFICATE = "certificate"  # the member's certificate could not be verified
    TLS = "tls"  # another TLS failure
    CONNECT = "connect"  # refused, unreachable, no such host
    DISCONNECTED_TLS = "disconnected_tls"  # hung up during a TLS call (a client cert needed?)
    ANSWER = "answer"  # it answered, but not what was asked for
    OTHER = "other"


class ApiUnreachable(Exception):
    """The member's REST API did not answer usefully (refused, timed out, TLS failed, an
    answer too large or not a member's status): the text says which, for people."""

    def __init__(self, message: str, failure: Failure = Failure.OTHER) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: bytes | None = None
    timeout: float = 10.0
    max_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = b""


class Transport(Protocol):
    async def send(self, request: HttpRequest) -> HttpResponse:
        """The answer to `request`; raises ApiUnreachable when there is none."""
        ...

    async def close(self) -> None: ...


async def read_limited(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or ValueError as soon as it passes `limit` bytes (the rest unread)."""
    body = b""
    while True:
        chunk = await content.read(limit + 1 - len(body))
        if not chunk:
            return body
        body += chunk
        if len(body) > limit:
            raise ValueError(f"the answer is over {limit} bytes")


def _system_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class AiohttpTransport:
    """The real transport: one aiohttp session whose connections are never reused."""

    def __init__(self, ssl_context: Callable[[], ssl.SSLContext] = _system_context) -> None:
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, request: HttpRequest) -> HttpResponse:
        url = request.url
        https = url.startswith("https:")
        tls: ssl.SSLContext | bool = self._ssl_context() if https else False
        try:
            async with self._client().request(
                request.method,
                url,
                data=request.body,
                headers=dict(request.headers),
                ssl=tls,
                timeout=aiohttp.ClientTimeout(total=request.timeout),
                allow_redirects=False,
            ) as response:
                length = response.content_length
                if length is not None and length > request.max_bytes:
                    raise ApiUnreachable(
                        f"{url}: its answer of {length} bytes is over {request.max_bytes}",
                        Failure.ANSWER,
                    )
                body = await read_limited(response.content, request.max_bytes)
                return HttpResponse(response.status, body)
        except TimeoutError:
            raise ApiUnreachable(
                f"no answer from {url} within {request.timeout:g}s", Failure.TIMEOUT
            ) from None
        except aiohttp.ClientConnectorCertificateError as e:
            raise ApiUnreachable(
                f"TLS with {e.host}:{e.port} failed: {e.certificate_error}", Failure.CERTIFICATE
            ) from None
        except aiohttp.ClientSSLError as e:
            raise ApiUnreachable(
                f"TLS with {e.host}:{e.port} failed: {e.os_error}", Failure.TLS
            ) from None
        except aiohttp.ClientConnectorError as e:
            code = e.os_error.errno
            why = os.strerror(code) if code else str(e.os_error) or "refused"
            raise ApiUnreachable(
                f"cannot connect to {e.host}:{e.port} ({why})", Failure.CONNECT
            ) from None
        except aiohttp.ServerDisconnectedError as e:
            failure = Failure.DISCONNECTED_TLS if https else Failure.OTHER
            raise ApiUnreachable(f"{url}: {e or type(e).__name__}", failure) from None
        except aiohttp.ClientError as e:
            raise ApiUnreachable(f"{url}: {e or type(e).__name__}") from None
        except (OSError, ValueError) as e:
            raise ApiUnreachable(f"{url}: {e}", Failure.ANSWER) from None


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class MockTransport:
    """A transport that answers from `handler` (which may raise ApiUnreachable), and
    records every request it was handed: for tests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []
        self.closed = False

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        response = await self.handler(request)
        if len(response.body) > request.max_bytes:
            raise ApiUnreachable(
                f"{request.url}: the answer is over {request.max_bytes} bytes", Failure.ANSWER
            )
        return response

    async def close(self) -> None:
        self.closed = True
