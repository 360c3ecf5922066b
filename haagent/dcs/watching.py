"""The prefix watch that keeps a `ViewState` current.

After a full read at revision R the watch starts at R+1.  When the stream
breaks (error, compaction, cancel by etcd, or a restart because calls moved to
another endpoint) the loop re-reads the whole prefix and watches again, with
a short backoff while etcd stays unreachable.  A re-sync wakes the HA loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from haagent.dcs.errors import DCSError, DCSUnavailable, WatchCompacted
from haagent.dcs.kv import KVBackend, prefix_range_end
from haagent.dcs.view import ViewState, read_cluster

log = logging.getLogger("haagent.dcs")


class WatchLoop:
    def __init__(
        self,
        backend: KVBackend,
        state: ViewState,
        prefix: bytes,
        *,
        retry_timeout: Callable[[], float],
        name: str,
    ) -> None:
        self._backend = backend
        self._state = state
        self._prefix = prefix
        self._range_end = prefix_range_end(prefix)
        self._retry_timeout = retry_timeout
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._stream: asyncio.Task[None] | None = None
        self._live = asyncio.Event()
        self._failures = 0

    @property
    def live(self) -> bool:
        return self._live.is_set()

    def start(self) -> None:
        """Start watching from the state's revision + 1 (the caller has just read the prefix)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"haagent-dcs-watch-{self._name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._live.clear()

    def restart(self, reason: str) -> None:
        """Drop the current stream and re-sync (e.g. calls moved to another endpoint)."""
        stream = self._stream
        if stream is not None and not stream.done():
            log.info("restarting the watch on %s: %s", self._prefix.decode(), reason)
            stream.cancel()

    async def wait_live(self, budget: float) -> bool:
        try:
            await asyncio.wait_for(self._live.wait(), budget)
        except TimeoutError:
            return False
        return True

    def _created(self) -> None:
        if self._failures:
            log.info(
                "watch on %s is back via %s at revision %d",
                self._prefix.decode(), self._backend.endpoint, self._state.revision,
            )  # fmt: skip
        self._failures = 0
        self._live.set()

    async def _resync(self) -> None:
        revision, kvs = await read_cluster(
            self._backend, self._prefix, budget=self._retry_timeout()
        )
        self._state.replace(revision, kvs, force=True)
        log.info("view of %s re-synced at revision %d", self._prefix.decode(), revision)

    async def _stream_once(self) -> None:
        stream = asyncio.create_task(
            self._backend.watch(
                self._prefix,
                self._range_end,
                self._state.revision + 1,
                self._state.apply,
                budget=self._retry_timeout(),
                on_created=self._created,
            )
        )
        self._stream = stream
        try:
            await asyncio.wait({stream})
        finally:
            self._stream = None
            self._live.clear()
            if not stream.done():
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream
        if stream.cancelled():
            return
        error = stream.exception()
        raise error if error is not None else DCSUnavailable("the watch stream ended")

    async def _run(self) -> None:
        resync = False
        while True:
            try:
                if resync:
                    await self._resync()
                resync = True
                await self._stream_once()
            except asyncio.CancelledError:
                raise
            except WatchCompacted as e:
                log.info("watch on %s: %s; re-reading", self._prefix.decode(), e)
            except Exception as e:
                self._failures += 1
                if not isinstance(e, DCSError):
                    log.exception("watch on %s failed unexpectedly", self._prefix.decode())
                elif self._failures == 1:
                    log.warning("watch on %s broke: %s; re-reading", self._prefix.decode(), e)
                else:
                    log.debug("watch on %s still broken: %s", self._prefix.decode(), e)
                await self._backend.pause_before_retry(self._failures)
