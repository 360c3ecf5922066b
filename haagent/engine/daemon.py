"""The agent process: wires etcd, PostgreSQL, the watchdog, the REST API and the HA loop.

Lifecycle: open etcd (retrying until it answers), refuse a name a running member
already uses (exit 2), start the agent-death guard, start the REST API, run the
loop; SIGTERM/SIGINT hand over cleanly (a leader stops PostgreSQL with a
checkpoint and deletes its key, then the guard is disarmed and let go), SIGHUP
re-reads the config file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import haagent.engine.startup as startup
from haagent import __version__
from haagent.api.auth import TlsSettingsError, server_ssl_context
from haagent.api.metrics import Metrics
from haagent.api.server import RestApiServer
from haagent.config import ConfigError, Settings, load_settings
from haagent.core.snapshot import Decision
from haagent.dcs import create_dcs
from haagent.dcs.errors import AuthenticationFailed, DCSError
from haagent.dcs.protocol import DCS
from haagent.engine.agent_requests import RELOAD_REFUSED, AgentRequests
from haagent.engine.clock import system_clocks
from haagent.engine.configuration import Configuration
from haagent.engine.fatal import EXIT_STATUS, AgentStop
from haagent.engine.loop import HaLoop
from haagent.engine.peers import HttpPeerClient, peer_access
from haagent.engine.ports import LeaseFence
from haagent.engine.reloading import changed_settings, needing_restart
from haagent.engine.sdnotify import notify
from haagent.engine.unique_name import name_in_use
from haagent.postgres.local import LocalPostgres, PostgresControl
from haagent.watchdog.guard_client import start_guard
from haagent.watchdog.local_fence import LocalFence
from haagent.watchdog.manager import Watchdog

log = logging.getLogger("haagent")


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.configuration = Configuration(settings)
        self.clocks = system_clocks()
        self.stop = asyncio.Event()
        self.loop: HaLoop | None = None
        self.api: RestApiServer | None = None
        self.peers: HttpPeerClient | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    def reload(self) -> str:
        """Re-read the config file and apply what can change while running (one log line).

        Everything is checked before anything changes: a bad file, or TLS files that
        cannot be loaded, leave the running config as it was.  The REST API takes its
        new settings (authentication, allowlist, TLS files, listen address) in a task
        started here: a POST /reload must not wait for its own listener.
        """
        source = self.configuration.settings.source
        if source is None:
            return "no config file to reload"
        old = self.configuration.settings
        try:
            new = load_settings(Path(source))
            access = peer_access(new)
            server_ssl_context(new.restapi)
        except (ConfigError, TlsSettingsError) as e:
            log.error("reload refused, keeping the running config: %s", e)
            return f"{RELOAD_REFUSED}, keeping the running config: {e}"
        self.configuration.reload(new)
        logging.getLogger().setLevel(new.log.level)
        if self.api is not None:
            self._in_background(self._reconfigure_api(old, new))
        if self.peers is not None:
            self.peers.reconfigure(access)
        changed = changed_settings(old, new)
        restart = needing_restart(changed)
        applied = [key for key in changed if key not in restart]
        message = f"reloaded {source}: " + (
            f"applied {', '.join(applied)}" if applied else "nothing changed that applies now"
        )
        if restart:
            message += f"; {', '.join(restart)} changed and need a restart of haagent"
        log.info("%s", message)
        return message

    async def _reconfigure_api(self, old: Settings, new: Settings) -> None:
        """The REST API's new settings; its old ones again when they cannot be applied."""
        assert self.api is not None
        try:
            await self.api.reconfigure(new.restapi)
        except (TlsSettingsError, OSError) as e:
            log.error(
                "the REST API cannot use the reloaded restapi settings (%s); it keeps %s",
                e, old.restapi.listen,
            )  # fmt: skip
            try:
                await self.api.reconfigure(old.restapi)
            except (TlsSettingsError, OSError) as again:
                log.error("the REST API cannot listen on %s either: %s", old.restapi.listen, again)

    def _in_background(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_dcs(self) -> DCS | None:
        """Open etcd, retrying until it answers; None when asked to stop meanwhile."""
        dcs = create_dcs(self.configuration.settings)
        delay = 1.0
        while not self.stop.is_set():
            try:
                await dcs.open()
                return dcs
            except AuthenticationFailed as e:
                log.error("etcd refused our credentials: %s (fix etcd3.username/password)", e)
            except DCSError as e:
                log.warning(
                    "etcd cannot be reached yet: %s; trying again in %.0fs (etcd3.hosts in %s)",
                    e, delay, self.configuration.settings.source,
                )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
            delay = min(delay * 2, 5.0)
        return None

    async def run(self) -> int:
        s = self.configuration.settings
        running = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            running.add_signal_handler(sig, self.stop.set)
        running.add_signal_handler(signal.SIGHUP, self.reload)

        access = startup.preflight(s)  # TLS files, the REST API address: a line and a status
        dcs = await self._open_dcs()
        if dcs is None:
            return 0
        clash = await name_in_use(dcs.view(), s.name)
        if clash is not None:
            log.error("%s", clash)
            await dcs.close()
            return EXIT_STATUS
        pg: PostgresControl = LocalPostgres.from_settings(s)
        watchdog = Watchdog(s.watchdog)
        dynamic = dcs.view().config or s.bootstrap.dcs
        watchdog.configure(dynamic.ttl, dynamic.loop_wait)
        guard = await start_guard(s)
        fence: LeaseFence = guard if guard is not None else LocalFence(s.postgresql.data_dir)
        peers = self.peers = HttpPeerClient(access, members=lambda: dcs.view().members)
        metrics = Metrics(scope=s.scope, name=s.name)

        def on_decision(decision: Decision, seconds: float) -> None:
            metrics.record_decision(str(decision.reason.code))
            metrics.observe_loop(seconds)

        loop = HaLoop(
            self.configuration,
            dcs,
            pg,
            watchdog,
            peers,
            clocks=self.clocks,
            fence=fence,
            fallback_fence=lambda: LocalFence(s.postgresql.data_dir),
            version=__version__,
            on_decision=on_decision,
            on_refused_role_change=metrics.record_refused_role_change,
        )
        self.loop = loop
        api = RestApiServer(
            s.restapi,
            AgentRequests(loop, dcs, clocks=self.clocks, reload=self.reload),
            scope=s.scope,
            name=s.name,
            metrics=metrics,
        )
        try:
            await api.start()
        except OSError as e:  # taken since the preflight check
            raise startup.bind_failure(s, e) from None
        self.api = api
        log.info("haagent %s: member %s of cluster %s", __version__, s.name, s.scope)
        task = asyncio.create_task(loop.run())
        ready = asyncio.create_task(self._notify_ready(loop))
        status = 0
        try:
            stop_wait = asyncio.create_task(self.stop.wait())
            await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if task.done():
                task.result()
        except AgentStop as e:
            log.error("%s", e)
            status = EXIT_STATUS
        finally:
            notify("STOPPING=1")
            ready.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, AgentStop):
                await task
            log.info("shutting down")
            try:
                await asyncio.wait_for(loop.shutdown(), max(30.0, float(dynamic.ttl)))
            except (TimeoutError, DCSError) as e:
                log.error("clean shutdown did not finish: %s", e)
            await loop.close()
            if guard is not None:
                # Disarmed by the last cycle unless PostgreSQL may still be a primary: then
                # the guard stops it as the pipe closes (a replica will take over).
                await guard.close()
            elif loop.fencing.armed:
                # No guard: the in-agent fence stops PostgreSQL before we are gone.
                loop.fencing.fire(None, "leaving while PostgreSQL may still run as a primary")
                await asyncio.sleep(0.2)
            await api.stop()
            await peers.close()
            await dcs.close()
            await pg.close()
        return status

    async def _notify_ready(self, loop: HaLoop) -> None:
        await loop.next_cycle()
        notify(f"READY=1\nSTATUS={loop.status().role}: {loop.status().reason_text}")
        while True:
            await loop.next_cycle()
            notify(f"STATUS={loop.status().role}: {loop.status().reason_text}")


def run_daemon(settings: Settings) -> int:
    return asyncio.run(Daemon(settings).run())
