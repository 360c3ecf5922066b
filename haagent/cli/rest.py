"""Calls to the members' REST APIs (Patroni's endpoints), with basic auth and TLS.

Credentials come from `--user` / `HAACTL_USER` + `HAACTL_PASSWORD`, else the config's
`ctl.authentication`, else `restapi.authentication`.  They go with the changing
requests only (reads need none), and never over plain HTTP when TLS is configured
(`--cacert`/`--cert`, `ctl.cacert`, `restapi.cafile`).  TLS: `--cacert` (or
`ctl.cacert`, `restapi.cafile`) verifies the members' certificates, `--cert`/`--key`
(or `ctl.certfile`/`ctl.keyfile`) present a client certificate, `-k`/`--insecure`
skips verification.  Member addresses come from etcd: only http(s) URLs are called,
redirects are not followed and answers are read up to MAX_REPLY_BYTES.  A member that
does not answer (or answers nonsense) is an `ApiUnreachable`, never a crash.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from haagent.cli.context import Connection
from haagent.cli.errors import BadInput
from haagent.dcs.member_api import api_url_problem, read_limited
from haagent.dcs.model import Member

STATUS_TIMEOUT = 3.0
MAX_REPLY_BYTES = 4 * 1024 * 1024
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class ApiUnreachable(Exception):
    """The member's REST API did not answer (refused, timed out, TLS failed)."""


@dataclass(frozen=True)
class Reply:
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


def base_url(api_url: str) -> str:
    """`http://node1:8008/patroni` -> `http://node1:8008`."""
    problem = api_url_problem(api_url)
    if problem is not None:
        raise ApiUnreachable(problem)
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}"


def ssl_context(conn: Connection) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=str(conn.rest_cacert) if conn.rest_cacert else None
        )
        if conn.rest_cert:
            context.load_cert_chain(
                str(conn.rest_cert), str(conn.rest_key) if conn.rest_key else None
            )
    except (OSError, ssl.SSLError) as e:
        raise BadInput(
            f"cannot load the REST API TLS files: {e}; check --cacert/--cert/--key"
        ) from None
    if conn.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class RestClient:
    """One aiohttp session for the calls of one command."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        auth = conn.rest_auth
        self._headers: dict[str, str] = {}
        if auth is not None:
            token = base64.b64encode(f"{auth.username}:{auth.password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._ssl: ssl.SSLContext | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def call(
        self,
        method: str,
        api_url: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float,
    ) -> Reply:
        """`method path` on the member whose `api_url` is given; raises `ApiUnreachable`."""
        url = base_url(api_url) + path
        tls: ssl.SSLContext | bool = False
        if url.startswith("https:"):
            if self._ssl is None:
                self._ssl = ssl_context(self._conn)
            tls = self._ssl
        headers = self._headers if self._sends_credentials(method, tls is not False) else {}
        try:
            async with self._client().request(
                method,
                url,
                json=None if body is None else dict(body),
                headers=headers,
                ssl=tls,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                raw = await read_limited(response.content, MAX_REPLY_BYTES)
                return Reply(response.status, raw.decode("utf-8", errors="replace"))
        except TimeoutError:
            raise ApiUnreachable(f"no answer from {url} within {timeout:g}s") from None
        except aiohttp.ClientConnectorCertificateError as e:
            raise ApiUnreachable(
                f"TLS with {e.host}:{e.port} failed: {e.certificate_error} "
                "(pass --cacert CA_FILE, or -k to skip the check)"
            ) from None
        except aiohttp.ClientSSLError as e:
            raise ApiUnreachable(
                f"TLS with {e.host}:{e.port} failed: {e.os_error} (check --cacert / --cert / --key)"
            ) from None
        except aiohttp.ClientConnectorError as e:
            code = e.os_error.errno
            why = os.strerror(code) if code else str(e.os_error) or "refused"
            raise ApiUnreachable(f"cannot connect to {e.host}:{e.port} ({why})") from None
        except aiohttp.ClientError as e:
            hint = ""
            if tls and isinstance(e, aiohttp.ServerDisconnectedError):
                hint = " (does it require a client certificate? pass --cert and --key)"
            raise ApiUnreachable(f"{url}: {e or type(e).__name__}{hint}") from None
        except (OSError, ValueError) as e:
            raise ApiUnreachable(f"{url}: {e}") from None

    def _sends_credentials(self, method: str, https: bool) -> bool:
        """Credentials go with changing requests, and over HTTPS only once TLS is configured."""
        if method.upper() in _READS:
            return False
        tls_configured = self._conn.rest_cacert is not None or self._conn.rest_cert is not None
        return https or not tls_configured

    async def status(self, member: Member, timeout: float = STATUS_TIMEOUT) -> dict[str, Any]:
        """The member's `GET /patroni` JSON; raises `ApiUnreachable`."""
        reply = await self.call("GET", member.api_url, "/patroni", timeout=timeout)
        body = reply.json()
        if not isinstance(body, dict):
            raise ApiUnreachable(f"{member.api_url} answered {reply.status} without a JSON status")
        return body

    async def statuses(
        self, members: list[Member], timeout: float = STATUS_TIMEOUT
    ) -> dict[str, dict[str, Any] | str]:
        """Each member's status JSON, or why it could not be had (a string)."""

        async def one(member: Member) -> dict[str, Any] | str:
            try:
                return await self.status(member, timeout)
            except ApiUnreachable as e:
                return str(e)

        results = await asyncio.gather(*(one(m) for m in members))
        return {m.name: r for m, r in zip(members, results, strict=True)}
