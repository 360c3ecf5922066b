"""gRPC channels to several etcd endpoints: failover, TLS and the auth token.

aetcd 1.0 opens one insecure channel to one host, so the channels are built
here (with `grpc.aio`) and only aetcd's generated stubs and messages are used.
One endpoint is "current"; a call that cannot reach it (or that it cannot
serve: no leader, timeout) moves to the next endpoint and retries there, all
within the caller's budget.  With a username the channel authenticates once
(`Auth.Authenticate`) and sends the token as `token` metadata on every call,
authenticating again when etcd says the token expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from aetcd import rpc

from haagent.config.model import Address
from haagent.dcs.errors import AuthenticationFailed, DCSError, DCSUnavailable, LeaseNotFound

log = logging.getLogger("haagent.dcs")

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]

# Quick reconnects after an etcd restart; keepalive pings find dead connections
# (etcd refuses pings more often than every 5 s by default).
GRPC_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 0),
)
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNKNOWN,
}
_TLS_WORDS = ("ssl", "handshake", "certificate", "tls", "tsi_")


@dataclass(frozen=True)
class TlsConfig:
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None


@dataclass
class Endpoint:
    """One etcd member's address, its channel and the stubs on it."""

    address: str
    channel: Any
    kv: Any = field(init=False)
    lease: Any = field(init=False)
    watch: Any = field(init=False)
    auth: Any = field(init=False)

    def __post_init__(self) -> None:
        self.kv = rpc.KVStub(self.channel)
        self.lease = rpc.LeaseStub(self.channel)
        self.watch = rpc.WatchStub(self.channel)
        self.auth = rpc.AuthStub(self.channel)


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as e:
        raise DCSError(f"cannot read {what} {path}: {e.strerror}; check etcd3.{what}") from e


def _details(error: grpc.aio.AioRpcError) -> str:
    return str(error.details() or error.code().name)


def is_tls_error(error: grpc.aio.AioRpcError) -> bool:
    text = _details(error).lower()
    return error.code() == grpc.StatusCode.UNAVAILABLE and any(w in text for w in _TLS_WORDS)


class EtcdChannel:
    """Calls to an etcd cluster through whichever of its endpoints answers."""

    def __init__(
        self,
        hosts: Sequence[Address],
        *,
        tls: TlsConfig | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if not hosts:
            raise DCSError("no etcd endpoint configured; set etcd3.hosts")
        if (username is None) != (password is None):
            raise DCSError("etcd3.username and etcd3.password must be set together")
        self.addresses = [str(h) for h in hosts]
        self._tls = tls
        self._username = username
        self._password = password
        self._token: str | None = None
        self._auth_lock = asyncio.Lock()
        self._credentials: Any = None
        self._endpoints: dict[str, Endpoint] = {}
        self._current = 0
        self._listeners: list[Callable[[str], None]] = []
        self.last_contact: float | None = None

    @property
    def current(self) -> str:
        return self.addresses[self._current]

    @property
    def needs_token(self) -> bool:
        return self._token_missing()

    def _token_missing(self) -> bool:
        return self._username is not None and self._token is None

    def describe(self) -> str:
        return ", ".join(self.addresses)

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call `callback(reason)` whenever calls move to another endpoint."""
        self._listeners.append(callback)

    def endpoint(self, address: str | None = None) -> Endpoint:
        address = address or self.current
        endpoint = self._endpoints.get(address)
        if endpoint is None:
            endpoint = Endpoint(address, self._open_channel(address))
            self._endpoints[address] = endpoint
        return endpoint

    def _open_channel(self, address: str) -> Any:
        options = list(GRPC_OPTIONS)
        if self._tls is None:
            return grpc.aio.insecure_channel(address, options=options)
        if self._credentials is None:
            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(self._tls.cacert, "cacert"),
                private_key=_read(self._tls.key, "key"),
                certificate_chain=_read(self._tls.cert, "cert"),
            )
        return grpc.aio.secure_channel(address, self._credentials, options=options)

    def metadata(self, *, require_leader: bool = False) -> Metadata:
        items: list[tuple[str, str]] = []
        if self._token:
            items.append(("token", self._token))
        if require_leader:
            # etcd cancels such a stream when its member loses the raft leader.
            items.append(("hasleader", "true"))
        return tuple(items)

    def forget_token(self) -> None:
        """Authenticate again before the next call (etcd said the token is invalid)."""
        if self._username is not None:
            self._token = None

    def failed(self, address: str, reason: str) -> None:
        """Move calls off `address` (if still current) to the next endpoint."""
        if len(self.addresses) < 2 or address != self.current:
            return
        self._current = (self._current + 1) % len(self.addresses)
        message = f"etcd {address} failed ({reason}); calls move to {self.current}"
        log.warning("%s", message)
        for callback in self._listeners:
            callback(message)

    def contact(self) -> None:
        self.last_contact = time.monotonic()

    async def close(self) -> None:
        endpoints, self._endpoints = self._endpoints, {}
        for endpoint in endpoints.values():
            await endpoint.channel.close()

    async def authenticate(self, endpoint: Endpoint, attempt: float) -> None:
        """Get a token unless there is one (or no username is configured)."""
        if not self._token_missing():
            return
        async with self._auth_lock:
            if not self._token_missing():  # another call authenticated meanwhile
                return
            request = rpc.AuthenticateRequest(name=self._username, password=self._password)
            try:
                response = await endpoint.auth.Authenticate(request, timeout=attempt)
            except grpc.aio.AioRpcError as e:
                text = _details(e)
                if "authentication is not enabled" in text:
                    log.warning("etcd3.username is set but etcd auth is not enabled; going on")
                    self._token = ""
                    return
                if "authentication failed" in text or e.code() in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.PERMISSION_DENIED,
                ):
                    raise AuthenticationFailed(
                        f"etcd at {endpoint.address} refused user {self._username!r}: {text}; "
                        "check etcd3.username and etcd3.password"
                    ) from e
                raise
            self._token = str(response.token)
            log.info("authenticated to etcd as %r via %s", self._username, endpoint.address)

    def _translate(self, error: grpc.aio.AioRpcError, address: str, what: str) -> DCSError:
        text = _details(error)
        code = error.code()
        if code == grpc.StatusCode.NOT_FOUND and "lease not found" in text:
            return LeaseNotFound(f"{what}: {text}")
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return AuthenticationFailed(
                f"{what}: etcd at {address} denied user {self._username!r}: {text}; "
                "grant it read/write on the cluster prefix"
            )
        if code == grpc.StatusCode.UNAUTHENTICATED or "user name is empty" in text:
            return AuthenticationFailed(
                f"{what}: etcd at {address} requires authentication ({text}); "
                "set etcd3.username and etcd3.password"
            )
        return DCSError(f"{what}: etcd at {address} refused the request: {text}")

    async def call(
        self, what: str, attempt_fn: Callable[[Endpoint, float, Metadata], Awaitable[T]],
        budget: float,
    ) -> T:  # fmt: skip
        """Run `attempt_fn(endpoint, timeout, metadata)`, moving to other endpoints on failure.

        Everything, retries and re-authentication included, ends within `budget` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        errors: list[str] = []
        tls_only = True
        reauthenticated = False
        tries = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0.001:
                break
            attempt = (
                remaining if len(self.addresses) == 1 else max(remaining / 2, min(1.0, remaining))
            )
            endpoint = self.endpoint()
            tries += 1
            try:
                async with asyncio.timeout(attempt):
                    await self.authenticate(endpoint, attempt)
                    result = await attempt_fn(endpoint, attempt, self.metadata())
                self.contact()
                return result
            except TimeoutError:
                errors.append(f"{endpoint.address}: no answer within {attempt:.1f}s")
                tls_only = False
                self.failed(endpoint.address, "timed out")
            except grpc.aio.AioRpcError as e:
                text = _details(e)
                if "auth token" in text and not reauthenticated:
                    log.info("etcd auth token expired; authenticating again")
                    self.forget_token()
                    reauthenticated = True
                    continue
                if e.code() not in _RETRYABLE:
                    raise self._translate(e, endpoint.address, what) from e
                errors.append(f"{endpoint.address}: {text}")
                tls_only = tls_only and is_tls_error(e)
                self.failed(endpoint.address, text)
                if tries % len(self.addresses) == 0:
                    # Every endpoint refused at once: give them a moment before the next round.
                    await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
        last = errors[-1] if errors else "no attempt made"
        if errors and tls_only:
            raise AuthenticationFailed(
                f"{what}: TLS with etcd ({self.describe()}) failed: {last}; "
                "check etcd3.cacert, etcd3.cert and etcd3.key"
            )
        raise DCSUnavailable(
            f"{what}: etcd ({self.describe()}) did not answer within {budget:.1f}s "
            f"(last error: {last}); check that etcd is running and etcd3.hosts is right"
        )
