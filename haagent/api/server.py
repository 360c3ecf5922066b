"""The REST API server: Patroni's endpoints on aiohttp's low-level server.

One handler dispatches on a dict of paths; there is no router and no
middleware.  A health check is a dict lookup keyed by the published status
object and the query string, and answers pre-encoded bytes: no SQL, no etcd
call, no JSON encoding per request.  A new status (a different object) empties
the cache, and a cached 200 from a leader check expires with the leader key's
lease, so a node never answers 200 on `/primary` after it published that it
is demoting, nor after its lease would have lapsed.

Access checks (allowlist, client certificate, basic auth) run only for the
changing endpoints, and only those are access-logged.

The engine wires it as::

    server = RestApiServer(settings.restapi, controller, scope=..., name=..., metrics=metrics)
    await server.start()
    ...
    await server.stop()
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from haagent.api import auth, health, status_json
from haagent.api.bodies import BodyError
from haagent.api.changing import ACTIONS, text
from haagent.api.limits import LimitedServer
from haagent.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from haagent.api.metrics import Metrics
from haagent.config.model import RestApiSettings
from haagent.config.parse import is_member_name
from haagent.dcs.errors import DCSError
from haagent.dcs.events import event_document, parse_since
from haagent.engine.requests import Controller
from haagent.engine.status import PublishedStatus

log = logging.getLogger("haagent.api")

_JSON = {"Content-Type": "application/json"}
_CACHE_LIMIT = 512
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Read-only documents other than the health checks: path -> builder (None = 502).
_DOCUMENTS: Mapping[str, Callable[[PublishedStatus], Any]] = {
    "/patroni": status_json.node_status,
    "/cluster": status_json.cluster,
    "/history": status_json.history,
    "/config": status_json.config,
    "/failsafe": status_json.failsafe,
}
_OTHER_READS = frozenset({"/metrics", "/openapi.json", "/events"})


class _AccessLogger(AbstractAccessLogger):
    """Logs the changing requests only: health checks are far too many to log."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.method in _READ_METHODS:
            return
        self.logger.info(
            '%s "%s %s" %d %.3fs',
            request.remote,
            request.method,
            request.path,
            response.status,
            time,
        )


def _openapi_bytes() -> bytes:
    return resources.files("haagent.api").joinpath("openapi.json").read_bytes()


class RestApiServer:
    """Serves the REST API from `controller`'s published status and forwards changes to it."""

    def __init__(
        self,
        settings: RestApiSettings,
        controller: Controller,
        *,
        scope: str,
        name: str,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.controller = controller
        self.scope = scope
        self.name = name
        self.metrics = metrics if metrics is not None else Metrics(scope=scope, name=name)
        self._clock = clock
        self._started_at = clock()
        self._runner: web.ServerRunner | None = None
        self._allowlist: tuple[auth.Network, ...] = ()
        self._ssl_context: ssl.SSLContext | None = None
        self._cache_status: PublishedStatus | None = None
        self._cache: dict[tuple[object, str], tuple[int, float, bytes]] = {}
        self._openapi = _openapi_bytes()
        self._failures: set[tuple[str, str]] = set()  # (path, error) already logged in full

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def _client_cert_needed(self) -> bool:
        return self.settings.certfile is not None and self.settings.verify_client != "none"

    @staticmethod
    def _warn_if_open(settings: RestApiSettings) -> None:
        if settings.authentication is None:
            log.warning(
                "restapi.authentication is not set: the changing endpoints (switchover, failover,"
                " restart, reinitialize, reload, config) accept requests without a password%s",
                " from the restapi.allowlist" if settings.allowlist else " from anywhere",
            )

    async def start(self) -> None:
        """Listen on every `restapi.listen` host; raises TlsSettingsError or OSError."""
        settings = self.settings
        ssl_context = auth.server_ssl_context(settings)
        self._allowlist = await auth.resolve_allowlist(settings.allowlist)
        self._ssl_context = ssl_context
        self._warn_if_open(settings)
        self._started_at = self._clock()
        server = LimitedServer(
            self._handle,
            access_log_class=_AccessLogger,
            access_log=logging.getLogger("haagent.api.access"),
        )
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        self._runner = runner
        try:
            for host in settings.listen.hosts:
                bind = None if host in ("*", "") else host
                site = web.TCPSite(runner, bind, settings.listen.port, ssl_context=ssl_context)
                await site.start()
        except BaseException:
            await self.stop()
            raise
        log.info("REST API listening on %s (%s)", settings.listen, settings.scheme)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def reconfigure(self, settings: RestApiSettings) -> None:
        """Apply new `restapi` settings (on a reload) without dropping health checks if it can.

        Authentication and the allowlist change in place.  With the same listen address
        and TLS files, certificates are re-read into the running context (rotation); a
        new listen address or TLS mode restarts the listeners.  Bad TLS settings raise
        TlsSettingsError and leave the running server as it was.
        """
        old = self.settings
        ssl_context = auth.server_ssl_context(settings)  # validate before changing anything
        allowlist = await auth.resolve_allowlist(settings.allowlist)
        same_listener = settings.listen == old.listen and (
            (settings.certfile is None) == (old.certfile is None)
        )
        if same_listener and self._runner is not None:
            if ssl_context is not None and self._ssl_context is not None:
                auth.reload_ssl_context(self._ssl_context, settings)
            self.settings = settings
            self._allowlist = allowlist
            if settings.authentication != old.authentication:
                self._warn_if_open(settings)
            return
        await self.stop()
        self.settings = settings
        await self.start()

    @property
    def port(self) -> int:
        """The port actually bound (useful when `listen` asks for port 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the REST API server is not running")
        return int(self._runner.addresses[0][1])

    # -- dispatch --------------------------------------------------------------------------

    async def _handle(self, request: BaseRequest) -> web.StreamResponse:
        path = request.path
        method = request.method
        if method in _READ_METHODS:
            try:
                kind = health.PATHS.get(path)
                if kind is not None:
                    return self._health(kind, request, method)
                if path == "/events":
                    return await self._events(request, method)
                return self._read(path, method)
            except Exception as exc:  # a health check must fail closed, with a code HAProxy reads
                self._log_failure(method, path, exc)
                return text(503, "the agent's status is unavailable; see its log")
        action = ACTIONS.get((method, path))
        if action is None:
            return self._not_found(path, method)
        denied = await self._check_access(request)
        if denied is not None:
            return denied
        try:
            return await action(self.controller, request)
        except BodyError as exc:
            answer = text(exc.status, exc.message)
            answer.force_close()  # the body may be partly unread: nothing more on this connection
            return answer

    def _log_failure(self, method: str, path: str, exc: Exception) -> None:
        """A failed read: the traceback the first time per path and error, one line after."""
        key = (path, type(exc).__name__)
        detail = " ".join(str(exc).split())[:160]
        if key in self._failures:
            log.warning("%s %s failed again: %s: %s", method, path, key[1], detail)
            return
        if len(self._failures) < _CACHE_LIMIT:
            self._failures.add(key)
        log.error("%s %s failed: %s: %s", method, path, key[1], detail, exc_info=exc)

    def _status(self) -> PublishedStatus:
        status = self.controller.status()
        if status is not self._cache_status:
            self._cache_status = status
            self._cache.clear()
        return status

    def _health(self, kind: health.Kind, request: BaseRequest, method: str) -> web.Response:
        status = self._status()
        key = (kind, request.query_string)
        entry = self._cache.get(key)
        now = self._clock()
        if entry is None or now >= entry[1]:
            query: dict[str, str] = {}
            for name, value in request.query.items():
                query.setdefault(name, value)  # the first of repeated parameters, as Patroni
            code, until = health.check(kind, status, query, now, started_at=self._started_at)
            entry = (code, until, self._status_body(status))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = entry
        if method == "GET":
            return web.Response(body=entry[2], status=entry[0], headers=_JSON)
        return web.Response(status=entry[0])

    def _status_body(self, status: PublishedStatus) -> bytes:
        cached = self._cache.get(("/patroni", ""))
        if cached is None:
            cached = (200, health.FOREVER, status_json.encode(status_json.node_status(status)))
            self._cache[("/patroni", "")] = cached
        return cached[2]

    def _read(self, path: str, method: str) -> web.Response:
        if path == "/metrics":
            body = self.metrics.render(self._status())
            headers = {"Content-Type": METRICS_CONTENT_TYPE}
            return web.Response(body=body if method == "GET" else None, headers=headers)
        if path == "/openapi.json":
            return web.Response(body=self._openapi if method == "GET" else None, headers=_JSON)
        builder = _DOCUMENTS.get(path)
        if builder is None:
            return self._not_found(path, method)
        status = self._status()
        entry = self._cache.get((path, ""))
        if entry is None:
            if path == "/patroni":
                entry = (200, health.FOREVER, self._status_body(status))
            else:
                document = builder(status)
                if document is None:
                    entry = (502, health.FOREVER, b"")
                else:
                    entry = (200, health.FOREVER, status_json.encode(document))
            self._cache[(path, "")] = entry
        if method != "GET" or entry[0] != 200:
            return web.Response(status=entry[0])
        return web.Response(body=entry[2], status=200, headers=_JSON)

    async def _events(self, request: BaseRequest, method: str) -> web.Response:
        """`GET /events[?since=2h][&member=NAME]`: the event history, read from etcd."""
        if method == "OPTIONS":
            return self._not_found(request.path, method)
        member = request.query.get("member")
        if member is not None and not is_member_name(member):
            return text(400, f"member {member[:40]!r} is not a member name")
        since = request.query.get("since")
        try:
            start = None if since is None else parse_since(since, datetime.now(UTC))
        except ValueError as e:
            return text(400, str(e))
        try:
            read = await self.controller.events(member=member, since=start)
        except DCSError as e:
            return text(503, f"etcd cannot be reached: {e}")
        document = {"events": [event_document(e) for e in read.events], "skipped": read.skipped}
        body = status_json.encode(document) if method == "GET" else None
        return web.Response(body=body, headers=_JSON)

    def _not_found(self, path: str, method: str = "GET") -> web.Response:
        """404 for an unknown path; 405 with `Allow` for a known path and another method."""
        allowed = {m for m, p in ACTIONS if p == path}
        if path in health.PATHS or path in _DOCUMENTS or path in _OTHER_READS:
            allowed |= _READ_METHODS
        if not allowed:
            return text(404, f"no such endpoint: {path}")
        allow = {"Allow": ", ".join(sorted(allowed | {"OPTIONS"}))}
        if method == "OPTIONS":
            return web.Response(status=200, headers=allow)
        return web.Response(status=405, headers=allow)

    # -- access ----------------------------------------------------------------------------

    async def _check_access(self, request: BaseRequest) -> web.Response | None:
        """None when `request` may change things; else the 403 or 401 to answer."""
        remote = request.remote
        if self.settings.allowlist or self.settings.allowlist_include_members:
            networks = self._allowlist
            if self.settings.allowlist_include_members:
                networks = networks + await self._member_networks()
            if not auth.allowed(remote, networks):
                log.warning(
                    "refused %s %s from %s: not in restapi.allowlist",
                    request.method,
                    request.path,
                    remote,
                )
                return text(403, "Access is denied")
        if self._client_cert_needed:
            transport = request.transport
            peercert = transport.get_extra_info("peercert") if transport is not None else None
            if not peercert:
                return text(403, "client certificate required")
        credentials = self.settings.authentication
        if credentials is not None:
            reason = auth.check_basic_auth(request.headers.get("Authorization"), credentials)
            if reason is not None:
                log.warning(
                    "refused %s %s from %s: %s", request.method, request.path, remote, reason
                )
                return text(401, reason, {"WWW-Authenticate": auth.WWW_AUTHENTICATE})
        return None

    async def _member_networks(self) -> tuple[auth.Network, ...]:
        hosts = auth.member_hosts(m.api_url for m in self._status().cluster.members.values())
        return await auth.resolve_allowlist(hosts)
