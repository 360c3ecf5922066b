"""Slow and greedy clients against a real REST API server: read timeouts, a cap per address.

The limits are lowered for the tests (1 s to read a request, 8 connections per address);
the shipped values are 10 s and 64.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from haagent.api import limits
from haagent_lab.fake_api import primary_status

StartApi = Any  # the start_api fixture (tests/integration/api/conftest.py)

TIMEOUT = 1.0
CAP = 8


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "REQUEST_READ_TIMEOUT", TIMEOUT)
    monkeypatch.setattr(limits, "MAX_CONNECTIONS_PER_ADDRESS", CAP)


def port_of(api: Any) -> int:
    return int(api.base.rsplit(":", 1)[1])


async def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((source, 0))
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def answer(sock: socket.socket, within: float) -> bytes:
    """What the server sends until it closes the connection (b"" when it closes at once)."""
    loop = asyncio.get_running_loop()
    received = b""
    async with asyncio.timeout(within):
        while chunk := await loop.sock_recv(sock, 65536):
            received += chunk
    return received


async def test_a_request_whose_headers_never_end_is_closed(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    sock = await connect(port_of(api))
    try:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, b"GET /primary HTTP/1.1\r\nHost: x\r\n")  # no end
        started = time.monotonic()
        assert await answer(sock, within=TIMEOUT + 10) == b""
        print(f"closed {time.monotonic() - started:.2f}s after the partial headers")
    finally:
        sock.close()


async def test_a_body_that_never_arrives_answers_408(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    sock = await connect(port_of(api))
    try:
        head = b"POST /restart HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        await asyncio.get_running_loop().sock_sendall(sock, head)
        reply = await answer(sock, within=TIMEOUT + 10)
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert api.controller.requests == []


async def test_connections_per_address_are_capped(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    port = port_of(api)
    held = [await connect(port) for _ in range(CAP)]
    try:
        extra = await connect(port)
        assert await answer(extra, within=5) == b""  # closed at once, nothing served
        extra.close()
        # Another address is not affected.
        other = await connect(port, source="127.0.0.2")
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(
            other, b"GET /primary HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert (await answer(other, within=5)).startswith(b"HTTP/1.1 200")
        other.close()
    finally:
        for sock in held:
            sock.close()
    # Once the held connections are gone, the address is served again.
    for _ in range(50):
        if (await api.call("GET", "/primary")).status == 200:
            break
        await asyncio.sleep(0.1)
    assert (await api.call("GET", "/primary")).status == 200
