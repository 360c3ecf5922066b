"""Requests built to hurt, against a real REST API server: each gets a short answer and at
most one short log line, never a traceback per request."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from haagent.engine.status import PublishedStatus
from haagent_lab.fake_api import lagging_replica_status, replica_status

StartApi = Any  # the start_api fixture (tests/integration/api/conftest.py)


def port_of(api: Any) -> int:
    return int(api.base.rsplit(":", 1)[1])


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        reply = b""
        async with asyncio.timeout(15):
            while chunk := await reader.read(65536):
                reply += chunk
        return reply
    finally:
        writer.close()


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("haagent", "aiohttp"))]


async def test_a_lag_of_400_digits_is_ignored_not_a_traceback(
    start_api: StartApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = await start_api(lagging_replica_status(lag=32 * 1024 * 1024))
    for _ in range(5):
        assert (await api.call("GET", "/replica?lag=" + "9" * 400)).status == 200
        # /readiness falls back to maximum_lag_on_failover (1 MB): 32 MB behind is a "no"
        assert (await api.call("GET", "/readiness?lag=" + "9" * 400 + "MB")).status == 503
    assert (await api.call("GET", "/replica?lag=1MB")).status == 503  # a real limit counts
    assert not any(r.exc_info for r in records(caplog))


async def test_a_failing_read_logs_its_traceback_once(
    start_api: StartApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = await start_api(replica_status())

    def broken() -> PublishedStatus:
        raise RuntimeError("x" * 5000)

    api.controller.status = broken
    for _ in range(10):
        assert (await api.call("GET", "/replica")).status == 503
    failures = [r for r in records(caplog) if "GET /replica failed" in r.getMessage()]
    assert len(failures) == 10
    assert len([r for r in failures if r.exc_info]) == 1
    assert all(len(r.getMessage()) < 300 for r in failures)


@pytest.mark.parametrize(
    "request_bytes",
    [
        # bytes past the declared body, parsed as a second request
        b"POST /switchover HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n" + b"B" * 200_000,
        # a body without Content-Length: all of it parsed as the next request
        b"POST /switchover HTTP/1.1\r\nHost: x\r\n\r\n" + b"C" * 200_000,
        # not HTTP at all
        b"\x16\x03\x01" + b"\x00" * 100_000,
    ],
    ids=["past-the-body", "no-length", "not-http"],
)
async def test_bytes_after_a_body_are_not_echoed_nor_logged_at_length(
    start_api: StartApi, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    api = await start_api(replica_status())
    reply = await exchange(port_of(api), request_bytes)
    assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n", 1)[0]
    assert len(reply) < 1024, len(reply)  # the bad bytes are not sent back
    logged = records(caplog)
    assert not any(r.exc_info for r in logged)
    assert all(len(r.getMessage()) < 300 for r in logged), [len(r.getMessage()) for r in logged]
    assert api.controller.requests == []
