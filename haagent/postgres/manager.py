"""`Postgres`: everything the agent does to its local PostgreSQL, as async operations.

Each operation is idempotent (start when running, promote on a primary... are
no-ops that say so), bounded by a timeout, serialized with the others (status
reads are not), and logged as one line with its outcome and duration on the
`haagent.postgres` logger.  Passwords never appear in logs, command lines or
process titles: tools read them from the pgpass file.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from haagent.config.model import BootstrapSettings, DynamicConfig, PostgresqlSettings, Settings
from haagent.postgres import files, slots
from haagent.postgres.bootstrap import bootstrap as run_bootstrap
from haagent.postgres.control import Controller, StopMode, log
from haagent.postgres.controldata import read_controldata
from haagent.postgres.errors import DataDirectoryError, PostgresError, RewindImpossible
from haagent.postgres.layout import Layout
from haagent.postgres.model import PostgresStatus, Upstream
from haagent.postgres.replica import create_replica as run_basebackup
from haagent.postgres.rewind import (
    Divergence,
    become_replica,
    check_divergence,
    parse_history_entries,
    rewind_blocker,
    running_replica_divergence,
)
from haagent.postgres.status import StatusReader
from haagent.postgres.sync import SyncMethod, synchronous_standby_names

SLACK = 5.0  # the outer bound of an action, beyond its own timeout


class Postgres:
    """The local PostgreSQL of member `name` in cluster `scope`."""

    def __init__(
        self,
        settings: PostgresqlSettings,
        bootstrap: BootstrapSettings,
        name: str,
        scope: str,
        dynamic: DynamicConfig | None = None,
        *,
        on_postmaster_death: Callable[[], None] | None = None,
    ) -> None:
        self._ctl = Controller(settings, bootstrap, name, scope, dynamic, on_postmaster_death)
        self._status = StatusReader(self._ctl)
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, dynamic: DynamicConfig | None = None) -> Postgres:
        return cls(settings.postgresql, settings.bootstrap, settings.name, settings.scope, dynamic)

    @property
    def layout(self) -> Layout:
        return self._ctl.layout

    @property
    def postmaster_died(self) -> asyncio.Event:
        """Set the moment the postmaster exits without haagent stopping it."""
        return self._ctl.postmaster_died

    @property
    def upstream(self) -> Upstream | None:
        """The member this node is configured to replicate from (None on a primary)."""
        return self._ctl.upstream if self._ctl.standby else None

    @property
    def settings(self) -> PostgresqlSettings:
        return self._ctl.settings

    @property
    def dynamic(self) -> DynamicConfig:
        return self._ctl.dynamic

    def set_dynamic_config(self, cfg: DynamicConfig) -> None:
        """Use `cfg` from now on; `apply_config()` writes and reloads it."""
        self._ctl.dynamic = cfg

    async def close(self) -> None:
        """Stop watching and close the connection; PostgreSQL itself keeps running."""
        if self._ctl.watch is not None:
            self._ctl.watch.close()
            self._ctl.watch = None
        await self._ctl.session.close()

    @contextlib.asynccontextmanager
    async def _action(self, what: str, timeout: float) -> AsyncIterator[list[str]]:
        started = time.monotonic()
        outcome: list[str] = []
        try:
            async with asyncio.timeout(timeout + SLACK):
                async with self._lock:
                    yield outcome
        except TimeoutError:
            elapsed = time.monotonic() - started
            log.warning("%s: timed out after %.3fs", what, elapsed)
            raise PostgresError(f"{what} did not finish within {timeout:g}s") from None
        except BaseException as exc:
            log.warning("%s: failed after %.3fs: %s", what, time.monotonic() - started, exc)
            raise
        log.info("%s: %s (%.3fs)", what, "; ".join(outcome) or "done", time.monotonic() - started)

    def _default_timeout(self, timeout: float | None) -> float:
        return float(self._ctl.settings.pg_ctl_timeout) if timeout is None else timeout

    # -- observation -----------------------------------------------------------------------

    async def status(self, timeout: float = 2.0) -> PostgresStatus:
        """One bounded observation; never raises for PostgreSQL trouble (see `error`)."""
        return await self._status.read(timeout)

    # -- life cycle --------------------------------------------------------------------------

    async def bootstrap(self, timeout: float = 300.0) -> str:
        """initdb, config, roles, post_bootstrap; leaves it running. The system identifier."""
        async with self._action("bootstrap", timeout) as outcome:
            outcome.extend(await run_bootstrap(self._ctl, timeout))
            control = await read_controldata(self._ctl.layout, timeout)
            outcome.append(f"system identifier {control.system_identifier}")
        return control.system_identifier

    async def create_replica(
        self,
        sources: Sequence[Upstream],
        timeout: float = 3600.0,
        attempts: int = 3,
        retry_delay: float = 5.0,
    ) -> Upstream:
        """pg_basebackup from the first source that works; configured as its standby, stopped."""
        async with self._action("create replica", timeout) as outcome:
            source = await run_basebackup(self._ctl, sources, timeout, attempts, retry_delay)
            outcome.append(f"cloned from {source}")
        return source

    async def start(self, timeout: float | None = None) -> bool:
        """Start in the role on disk; returns once accepting connections. False if running."""
        timeout = self._default_timeout(timeout)
        async with self._action("start", timeout) as outcome:
            started = await self._ctl.start(timeout)
            outcome.append("accepting connections" if started else "already running")
        return started

    async def start_as_primary(self, timeout: float | None = None) -> str:
        """Run as a primary: start it, and promote it when it is a standby on disk (so that
        it gets a new timeline, never ending recovery on its old one), or when running one."""
        timeout = self._default_timeout(timeout)
        async with self._action("start as primary", 2 * timeout) as outcome:
            if self._ctl.postmaster() is None:
                await self._ctl.start(timeout)
                outcome.append("started")
            rows = await self._ctl.sql("SELECT pg_is_in_recovery()", timeout, "start as primary")
            if rows[0][0]:
                await self._ctl.promote(timeout)
                outcome.append("promoted")
            outcome.append("running as a primary")
        return ", ".join(outcome)

    async def stop(self, mode: StopMode = "fast", timeout: float | None = None) -> bool:
        """Stop (escalating past `timeout`) and wait until gone. False if not running."""
        timeout = self._default_timeout(timeout)
        async with self._action(f"stop ({mode})", timeout + 3 * SLACK) as outcome:
            stopped = await self._ctl.stop(mode, timeout)
            outcome.append("stopped" if stopped else "was not running")
        return stopped

    async def restart(self, mode: StopMode = "fast", timeout: float | None = None) -> None:
        timeout = self._default_timeout(timeout)
        async with self._action("restart", 2 * timeout + 3 * SLACK) as outcome:
            await self._ctl.stop(mode, timeout)
            await self._ctl.start(timeout)
            outcome.append("accepting connections")

    async def reload(self, timeout: float = 10.0) -> bool:
        async with self._action("reload", timeout) as outcome:
            done = await self._ctl.reload(timeout)
            outcome.append("configuration reloaded" if done else "not running")
        return done

    async def apply_config(self, timeout: float = 10.0) -> bool:
        """Rewrite the config files from the settings and reload when they changed.

        Returns whether a restart is pending (a changed parameter that needs one).
        """
        if not self.layout.initialized():
            return False  # nothing to configure yet (and the directory must stay empty)
        async with self._action("apply config", timeout) as outcome:
            # In a thread: new parameters are first read by the server (paramcheck.py).
            changed = await asyncio.to_thread(self._ctl.write_config)
            pending = False
            if changed and await self._ctl.reload(timeout):
                rows = await self._ctl.sql(
                    "SELECT name FROM pg_settings WHERE pending_restart", timeout, "apply config"
                )
                pending = bool(rows)
                if rows:
                    outcome.append("pending restart: " + ", ".join(str(r[0]) for r in rows))
            outcome.insert(0, "changed, reloaded" if changed else "unchanged")
        return pending

    # -- roles -------------------------------------------------------------------------------

    async def promote(self, timeout: float = 30.0) -> bool:
        """Leave recovery (pg_promote) and wait until out of it. False on a primary."""
        async with self._action("promote", timeout) as outcome:
            promoted = await self._ctl.promote(timeout)
            outcome.append("promoted" if promoted else "already a primary")
        return promoted

    async def demote(
        self, upstream: Upstream | None, mode: StopMode = "fast", timeout: float | None = None
    ) -> str:
        """Stop a primary and start it as a standby of `upstream` (None: of no one yet),
        rewinding first when its timeline diverged (RewindImpossible: left stopped).

        The postmaster is signalled first, without asking PostgreSQL anything: a primary
        that does not answer queries must stop accepting writes all the same.  The stop
        escalates to immediate past `timeout` (default pg_ctl_timeout)."""
        stop_timeout = self._default_timeout(timeout)
        budget = self._default_timeout(None)
        async with self._action(f"demote to follow {upstream}", stop_timeout + 2 * budget) as out:
            if self._ctl.postmaster() is not None:
                await self._ctl.stop(mode, stop_timeout)
                out.append(f"stopped ({mode})")
            out.append(await become_replica(self._ctl, upstream, 2 * budget))
        return "; ".join(out)

    async def follow(self, upstream: Upstream | None, timeout: float | None = None) -> str:
        """Replicate from `upstream`: a reload on a running standby (PostgreSQL 15 re-reads
        primary_conninfo), a demotion on a primary, a (rewound if needed) start when stopped."""
        timeout = self._default_timeout(timeout)
        async with self._action(f"follow {upstream}", 3 * timeout) as outcome:
            outcome.append(await self._follow(upstream, timeout))
        return outcome[0]

    async def _follow(self, upstream: Upstream | None, timeout: float) -> str:
        ctl = self._ctl
        if ctl.postmaster() is None:
            return await become_replica(ctl, upstream, 2 * timeout)
        rows = await ctl.sql("SELECT pg_is_in_recovery()", timeout, "follow")
        if not rows[0][0]:
            await ctl.stop("fast", timeout)
            return "demoted: " + await become_replica(ctl, upstream, 2 * timeout)
        if upstream is not None and upstream != ctl.upstream:
            div = await running_replica_divergence(ctl, upstream, timeout)
            if div.diverged:
                control = await read_controldata(ctl.layout, timeout)
                blocker = rewind_blocker(ctl.dynamic.postgresql.use_pg_rewind, control)
                if blocker is not None:
                    raise RewindImpossible(
                        f"cannot follow {upstream}: {div.reason}, and pg_rewind cannot be used: "
                        f"{blocker}. Still running as a standby; reinit to re-clone"
                    )
                await ctl.stop("fast", timeout)
                return "restarted: " + await become_replica(ctl, upstream, 2 * timeout)
        previous = ctl.upstream
        ctl.standby, ctl.upstream = True, upstream
        if ctl.write_config():
            await ctl.reload(timeout)
            return f"now following {upstream} (was {previous}): reloaded"
        return f"already following {upstream}"

    async def rewind(self, upstream: Upstream, timeout: float | None = None) -> str:
        """Stop, rewind if the timeline diverged from `upstream`'s, start as its standby."""
        timeout = self._default_timeout(timeout)
        async with self._action(f"rewind from {upstream}", 3 * timeout) as outcome:
            await self._ctl.stop("fast", timeout)
            outcome.append(await become_replica(self._ctl, upstream, 2 * timeout))
        return outcome[0]

    async def check_divergence(self, upstream: Upstream, timeout: float = 30.0) -> Divergence:
        """Whether this (stopped) node's timeline diverged from `upstream`'s; changes nothing
        but a crash recovery when the last shutdown was not clean."""
        async with self._action(f"divergence check against {upstream}", timeout) as outcome:
            if self._ctl.postmaster() is not None:
                div = await running_replica_divergence(self._ctl, upstream, timeout)
            else:
                div = await check_divergence(self._ctl, upstream, timeout)
            outcome.append(("diverged: " if div.diverged else "not diverged: ") + div.reason)
        return div

    async def checkpoint(self, timeout: float = 60.0) -> None:
        """CHECKPOINT (before a switchover, so that the shutdown after it is short)."""
        async with self._action("checkpoint", timeout):
            await self._ctl.checkpoint(timeout)

    # -- slots and synchronous replication ------------------------------------------------

    async def list_slots(self, timeout: float = 5.0) -> dict[str, slots.Slot]:
        rows = await self._ctl.sql(slots.LIST_SQL, timeout, "listing slots")
        return slots.slots_from_rows(rows)

    async def ensure_slots(self, wanted: Iterable[str], timeout: float = 5.0) -> set[str]:
        """Create the missing physical slots among `wanted` (slot names); the ones created."""
        names = {slots.check_slot_name(n) for n in wanted}
        async with self._action("ensure slots", timeout) as outcome:
            missing = names - set(await self.list_slots(timeout))
            for name in sorted(missing):
                await self._ctl.sql(
                    f"SELECT pg_create_physical_replication_slot('{name}', true)",
                    timeout,
                    f"creating slot {name}",
                )
            outcome.append(f"created {sorted(missing)}" if missing else "all present")
        return missing

    async def drop_slots(self, names: Iterable[str], timeout: float = 5.0) -> set[str]:
        """Drop these physical slots when present and inactive; the ones dropped."""
        wanted = {slots.check_slot_name(n) for n in names}
        async with self._action("drop slots", timeout) as outcome:
            existing = await self.list_slots(timeout)
            dropped = set()
            for name in sorted(wanted & set(existing)):
                if existing[name].active:
                    outcome.append(f"kept {name} (in use)")
                    continue
                await self._ctl.sql(
                    f"SELECT pg_drop_replication_slot('{name}')", timeout, f"dropping slot {name}"
                )
                dropped.add(name)
            outcome.insert(0, f"dropped {sorted(dropped)}")
        return dropped

    async def set_synchronous_standby_names(
        self,
        names: Sequence[str],
        count: int = 1,
        method: SyncMethod = "FIRST",
        timeout: float = 10.0,
    ) -> str:
        """Set synchronous_standby_names in haagent's postgresql.conf and reload; the value."""
        value = synchronous_standby_names(names, count, method)
        return await self.set_synchronous_standby_names_value(value, timeout)

    async def set_synchronous_standby_names_value(self, value: str, timeout: float = 10.0) -> str:
        """The same with a ready-made value (`FIRST 1 ("a")`, `*`, or empty for none)."""
        async with self._action("set synchronous_standby_names", timeout) as outcome:
            self._ctl.sync_names = value
            if self._ctl.write_config() and await self._ctl.reload(timeout):
                shown = await self._ctl.sql(
                    "SHOW synchronous_standby_names", timeout, "synchronous_standby_names"
                )
                if shown[0][0] != value:
                    raise PostgresError(
                        f"synchronous_standby_names is {shown[0][0]!r} after reload"
                    )
            outcome.append(repr(value))
        return value

    async def last_timeline_switch(self, timeout: float = 5.0) -> tuple[int, int, str] | None:
        """(timeline that ended, where, reason) of this node's newest switch; None on TL 1."""
        status = await self.status(timeout)
        if status.timeline is None or status.timeline <= 1:
            return None
        history = self.layout.data_dir / "pg_wal" / f"{status.timeline:08X}.history"
        try:
            entries = parse_history_entries(history.read_text())
        except OSError:
            return None
        return entries[-1] if entries else None

    # -- wiping (explicit only) -------------------------------------------------------------

    async def remove_data_directory(self, reason: str, timeout: float = 120.0) -> None:
        """Delete the cluster's files. Only ever called with an explicit reason (reinit)."""
        async with self._action(f"remove data directory ({reason})", timeout) as outcome:
            if self._ctl.postmaster() is not None:
                raise DataDirectoryError(
                    f"refusing to remove {self.layout.data_dir}: PostgreSQL is running; stop it"
                )
            await asyncio.to_thread(files.remove_data_directory, self.layout)
            self._ctl.standby, self._ctl.upstream = False, None
            outcome.append(f"removed the contents of {self.layout.data_dir}")

    async def reinit(self, sources: Sequence[Upstream], timeout: float = 3600.0) -> Upstream:
        """Throw this node's data away and clone it again, then start it as a standby."""
        await self.stop("immediate", timeout=30)
        await self.remove_data_directory("reinit", timeout)
        source = await self.create_replica(sources, timeout)
        await self.follow(source)
        return source
