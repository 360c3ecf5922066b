"""Connections to PostgreSQL whose every use is bounded in time.

A hung PostgreSQL (stopped with SIGSTOP, a dead network) must never hang the
agent.  `asyncio.wait_for` alone is not enough with psycopg: cancelling a
running query makes psycopg send a cancel request and wait up to 10 s for it.
So on a timeout the connection's socket is shut down instead: the query fails
at once with "connection closed", and the connection is thrown away.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection

from haagent.postgres.errors import QueryError

T = TypeVar("T")
Conn = AsyncConnection[Any]
_abandoned: set[asyncio.Task[Any]] = set()


@dataclass(frozen=True)
class ConnParams:
    host: str
    port: int
    user: str
    password: str | None = field(default=None, repr=False)
    dbname: str = "postgres"
    application_name: str = "haagent"
    statement_timeout_ms: int | None = None
    replication: bool = False
    # The user's libpq keys (sslmode, sslcert, ...): see libpq.py.
    libpq: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def __str__(self) -> str:
        kind = " (replication)" if self.replication else ""
        return f"{self.user}@{self.host}:{self.port}{kind}"

    def kwargs(self, connect_timeout: float) -> dict[str, Any]:
        args: dict[str, Any] = {
            **dict(self.libpq),
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            "application_name": self.application_name,
            "connect_timeout": max(2, int(connect_timeout + 0.999)),
            "autocommit": True,
        }
        if self.password is not None:
            args["password"] = self.password
        if self.statement_timeout_ms is not None:
            args["options"] = f"-c statement_timeout={self.statement_timeout_ms}"
        if self.replication:
            args["replication"] = "true"
        return args


def error_text(exc: BaseException) -> str:
    """The first line of a psycopg/OS error (no password is ever part of these)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _shutdown_socket(conn: Conn) -> None:
    with contextlib.suppress(Exception):
        dup = os.dup(conn.pgconn.socket)
        with socket.socket(fileno=dup) as s:
            s.shutdown(socket.SHUT_RDWR)


def _abandon(task: asyncio.Task[Any], conn: Conn) -> None:
    """Let a task that did not stop in time finish in the background, then close its conn."""
    _abandoned.add(task)

    def done(t: asyncio.Task[Any]) -> None:
        _abandoned.discard(t)
        if not t.cancelled():
            t.exception()
        conn.pgconn.finish()

    task.add_done_callback(done)


async def run_bounded(conn: Conn, fn: Callable[[Conn], Awaitable[T]], timeout: float) -> T:
    """`fn(conn)` within `timeout` seconds, or TimeoutError with the connection broken."""
    task: asyncio.Task[T] = asyncio.ensure_future(fn(conn))
    try:
        done, _ = await asyncio.wait({task}, timeout=max(timeout, 0.001))
    except asyncio.CancelledError:
        _shutdown_socket(conn)
        task.cancel()
        _abandon(task, conn)
        raise
    if done:
        return task.result()
    _shutdown_socket(conn)
    done, _ = await asyncio.wait({task}, timeout=1.0)
    if done:
        with contextlib.suppress(BaseException):
            task.result()
    else:
        task.cancel()
        _abandon(task, conn)
    raise TimeoutError


async def connect(params: ConnParams, timeout: float) -> Conn:
    """Connect within `timeout` (cancelling a connection attempt is safe with psycopg)."""
    return await asyncio.wait_for(
        AsyncConnection.connect(**params.kwargs(timeout)), max(timeout, 0.001)
    )


@contextlib.asynccontextmanager
async def connection(params: ConnParams, timeout: float, what: str) -> AsyncIterator[Conn]:
    """A one-off connection; QueryError naming `what` and the server when it cannot be made."""
    try:
        conn = await connect(params, timeout)
    except (psycopg.Error, OSError, TimeoutError) as exc:
        raise QueryError(f"{what}: cannot connect to {params}: {error_text(exc)}") from None
    try:
        yield conn
    finally:
        await conn.close()


async def query(
    conn: Conn, sql: str, timeout: float, what: str, params: tuple[Any, ...] | None = None
) -> list[tuple[Any, ...]]:
    """Run one statement on a one-off connection, bounded; its rows (empty without any)."""

    async def go(c: Conn) -> list[tuple[Any, ...]]:
        cur = await c.execute(sql.encode(), params)
        return await cur.fetchall() if cur.description is not None else []

    try:
        return await run_bounded(conn, go, timeout)
    except (psycopg.Error, OSError, TimeoutError) as exc:
        sqlstate = getattr(exc, "sqlstate", None)
        raise QueryError(f"{what} failed: {error_text(exc)}", sqlstate) from None


class Session:
    """The agent's long-lived connection to its own PostgreSQL, re-made after any failure."""

    def __init__(self, params: Callable[[], ConnParams]) -> None:
        self._params = params
        self._conn: Conn | None = None
        self._lock = asyncio.Lock()

    async def run(self, fn: Callable[[Conn], Awaitable[T]], timeout: float, what: str) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        params = self._params()
        try:
            async with asyncio.timeout(timeout):  # waiting for the lock and connecting
                await self._lock.acquire()
            try:
                reused = self._conn is not None and not self._conn.closed
                if self._conn is None or self._conn.closed:
                    self._conn = await connect(params, deadline - loop.time())
                try:
                    return await run_bounded(self._conn, fn, deadline - loop.time())
                except psycopg.OperationalError:
                    if not reused:
                        raise
                # The kept connection was broken (a restart since): one more try on a new one.
                await self.close()
                self._conn = await connect(params, deadline - loop.time())
                return await run_bounded(self._conn, fn, deadline - loop.time())
            except BaseException:
                await self.close()
                raise
            finally:
                self._lock.release()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            why = f"timed out after {timeout:g}s" if isinstance(exc, TimeoutError) else None
            raise QueryError(f"{what} on {params}: {why or error_text(exc)}") from None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.pgconn.finish()
