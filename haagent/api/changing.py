"""The changing endpoints: read and validate the body, hand a typed request to the
HA loop through the `Controller`, and answer with its outcome.

Outcomes are text (`text/plain`), as Patroni answers them; a result that
carries a body, and the config endpoints on success, answer JSON.  Access
checks (allowlist, client certificate, basic auth) run before any of this, in
`server.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from haagent.api import bodies, limits
from haagent.api.bodies import MAX_BODY_BYTES, BodyError
from haagent.api.status_json import encode
from haagent.engine.requests import (
    CancelRestartRequest,
    CancelSwitchoverRequest,
    ConfigWriteResult,
    Controller,
    ReloadRequest,
    Request,
    RequestResult,
)

log = logging.getLogger("haagent.api")

Action = Callable[[Controller, BaseRequest], Awaitable[web.Response]]


def text(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


def json_response(status: int, document: Any) -> web.Response:
    return web.Response(status=status, body=encode(document), content_type="application/json")


async def read_body(request: BaseRequest) -> bytes:
    """The request body, refused with 400 past 64 KiB without reading the rest, and
    with 408 when it has not arrived within `limits.REQUEST_READ_TIMEOUT` seconds."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise BodyError(f"request body is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    total = 0
    try:
        async with asyncio.timeout(limits.REQUEST_READ_TIMEOUT):
            while True:
                chunk = await request.content.read(MAX_BODY_BYTES + 1)
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_BODY_BYTES:
                    raise BodyError(f"request body is larger than {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyError(
            f"request body not received within {limits.REQUEST_READ_TIMEOUT:g}s", status=408
        ) from None
    return b"".join(chunks)


def _answer(result: RequestResult) -> web.Response:
    if result.body is not None:
        return json_response(result.status, result.body)
    return text(result.status, result.message)


async def _submit(controller: Controller, request: Request) -> web.Response:
    try:
        result = await controller.submit(request)
    except Exception:
        log.exception("the HA loop failed on %s", type(request).__name__)
        return text(503, f"{type(request).__name__} failed inside the agent; see its log")
    return _answer(result)


def _now() -> datetime:
    return datetime.now(UTC)


async def post_switchover(controller: Controller, request: BaseRequest) -> web.Response:
    doc = bodies.decode(await read_body(request), required=True)
    return await _submit(controller, bodies.switchover(doc, _now()))


async def post_failover(controller: Controller, request: BaseRequest) -> web.Response:
    doc = bodies.decode(await read_body(request), required=True)
    return await _submit(controller, bodies.failover(doc))


async def delete_switchover(controller: Controller, request: BaseRequest) -> web.Response:
    return await _submit(controller, CancelSwitchoverRequest())


async def post_restart(controller: Controller, request: BaseRequest) -> web.Response:
    doc = bodies.decode(await read_body(request), required=False)
    return await _submit(controller, bodies.restart(doc, _now()))


async def delete_restart(controller: Controller, request: BaseRequest) -> web.Response:
    return await _submit(controller, CancelRestartRequest())


async def post_reinitialize(controller: Controller, request: BaseRequest) -> web.Response:
    doc = bodies.decode(await read_body(request), required=False)
    return await _submit(controller, bodies.reinitialize(doc))


async def post_reload(controller: Controller, request: BaseRequest) -> web.Response:
    return await _submit(controller, ReloadRequest())


async def post_failsafe(controller: Controller, request: BaseRequest) -> web.Response:
    doc = bodies.decode(await read_body(request), required=True)
    return await _submit(controller, bodies.failsafe(doc))


async def _config_write(
    write: Callable[[Mapping[str, Any]], Awaitable[ConfigWriteResult]], document: Mapping[str, Any]
) -> web.Response:
    try:
        result = await write(document)
    except Exception:
        log.exception("writing the DCS config failed")
        return text(503, "writing the config failed inside the agent; see its log")
    if result.status == 200 and result.config is not None:
        return json_response(200, result.config)
    return text(result.status, result.message)


async def patch_config(controller: Controller, request: BaseRequest) -> web.Response:
    doc = bodies.decode(await read_body(request), required=True)
    return await _config_write(controller.patch_config, bodies.config(doc, patch=True))


async def put_config(controller: Controller, request: BaseRequest) -> web.Response:
    doc = bodies.decode(await read_body(request), required=True)
    return await _config_write(controller.replace_config, bodies.config(doc, patch=False))


ACTIONS: Mapping[tuple[str, str], Action] = {
    ("POST", "/switchover"): post_switchover,
    ("DELETE", "/switchover"): delete_switchover,
    ("POST", "/failover"): post_failover,
    ("POST", "/restart"): post_restart,
    ("DELETE", "/restart"): delete_restart,
    ("POST", "/reinitialize"): post_reinitialize,
    ("POST", "/reload"): post_reload,
    ("POST", "/failsafe"): post_failsafe,
    ("PATCH", "/config"): patch_config,
    ("PUT", "/config"): put_config,
}
