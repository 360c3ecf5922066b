"""`LocalPostgres`: the local PostgreSQL as the HA loop drives it.

`PostgresControl`, below, is what the engine calls; `LocalPostgres` implements it for
the daemon (the simulation's in-memory PostgreSQL for tests): a new PostgreSQL action
is a method of both here.  Each operation is idempotent (start when running,
promote on a primary... are no-ops that say so), bounded by a timeout,
serialized with the others (status reads are not), and logged as one line with
its outcome and duration on the `haagent.postgres` logger.  Passwords never
appear in logs, command lines or process titles: tools read them from the
pgpass file.

What the loop's calls mean:

- `start("primary")` never ends recovery on an old timeline: a standby on disk
  is started as one and promoted (`start_as_primary`);
- `start("replica", leader)` / `follow` / `demote` rewind first when the
  timeline diverged (RewindError / RewindImpossible otherwise); a failed rewind
  re-clones from the upstream only when the matching flag is on
  (`postgresql.remove_data_directory_on_rewind_failure`, or
  `remove_data_directory_on_diverged_timelines` when pg_rewind cannot be used);
  otherwise the error goes up and the data directory is kept;
- `change_slots(changes)` carries out what the slot rules decided (`haagent.core.slots`),
  the slow part (logical slots) in the background; `copy_logical_slots` copies the
  primary's logical slots to a replica (PostgreSQL before 17);
- `set_dynamic_config` rewrites and reloads the config in the background when
  the cluster-wide parameters change.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Literal, Protocol

from haagent.config.model import (
    BASEBACKUP,
    BootstrapSettings,
    DynamicConfig,
    PostgresqlSettings,
    ReplicaMethod,
    Settings,
)
from haagent.config.replica_methods import replica_methods
from haagent.postgres import files, slots
from haagent.postgres.bootstrap import bootstrap as run_bootstrap
from haagent.postgres.controldata import read_controldata
from haagent.postgres.errors import (
    DataDirectoryError,
    PostgresError,
    RewindError,
    RewindImpossible,
)
from haagent.postgres.instance import Instance, StopMode, log
from haagent.postgres.layout import Layout
from haagent.postgres.model import PostgresStatus, TimelineSwitch, Upstream
from haagent.postgres.replica import build_replica
from haagent.postgres.rewind import (
    Divergence,
    become_replica,
    check_divergence,
    parse_history_entries,
    rewind_blocker,
    running_replica_divergence,
)
from haagent.postgres.status import StatusReader

SLACK = 5.0  # the outer bound of an action, beyond its own timeout


class PostgresControl(Protocol):
    """Everything the agent does to its local PostgreSQL; every call is bounded in time.

    A new PostgreSQL action is a type (`haagent.core.actions`), its handler
    (`haagent.engine.executor`) and a method here with its implementation in
    `LocalPostgres` below: three files (and the simulation's in-memory PostgreSQL,
    `haagent_lab.sim.postgres`).  What a method returns is for logs and tests: the
    executor reports outcomes from whether a call returned or raised.
    """

    @property
    def postmaster_died(self) -> asyncio.Event:
        """Set when a postmaster this agent started or adopted exits."""
        ...

    def set_dynamic_config(self, config: DynamicConfig) -> None: ...

    async def status(self) -> PostgresStatus: ...

    async def bootstrap(self) -> str:
        """initdb, start, roles, post_bootstrap; leaves it running.  The system identifier."""
        ...

    async def create_replica(
        self, sources: Sequence[Upstream], basebackup_only: bool = False
    ) -> Upstream | None:
        """Build the data directory with `postgresql.create_replica_methods` in order, from
        the first of `sources` that works (none: only the methods that need no leader);
        the source used (None: built without one).  `basebackup_only`: pg_basebackup alone."""
        ...

    def add_reload_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each reload of PostgreSQL's configuration (on_reload)."""
        ...

    async def start(
        self, role: Literal["primary", "replica"], upstream: Upstream | None
    ) -> None: ...

    async def stop(
        self, mode: Literal["smart", "fast", "immediate"], timeout: float | None = None
    ) -> bool:
        """Stop and wait until gone; past `timeout` (default pg_ctl_timeout) escalate.
        False when it was not running."""
        ...

    async def restart(
        self, role: Literal["primary", "replica"], upstream: Upstream | None
    ) -> None: ...

    async def promote(self) -> bool:
        """False when it already ran as a primary."""
        ...

    async def demote(
        self,
        mode: Literal["smart", "fast", "immediate"],
        upstream: Upstream | None,
        timeout: float | None = None,
    ) -> str:
        """Stop accepting writes now (the postmaster is signalled first, nothing is asked of
        it), escalating past `timeout`, then run as a replica of `upstream` (rewinding if
        needed).  What was done."""
        ...

    async def follow(self, upstream: Upstream | None, *, recheck: bool = False) -> str:
        """Stream from `upstream` (None: from nobody, the archive only); rewinds first when
        the timelines diverged (`recheck`: look again even when the upstream is the same).
        What was done."""
        ...

    async def checkpoint(self) -> None: ...

    async def change_slots(self, changes: slots.SlotChanges) -> str:
        """Carry out the slot rules' changes (quick ones now, slow ones in the background);
        failures are logged, not raised.  What was done."""
        ...

    async def copy_logical_slots(self, upstream: Upstream, wanted: Sequence[slots.SlotSpec]) -> str:
        """Copy these logical slots from `upstream` (the primary) into this replica,
        restarting PostgreSQL once to load them.  What was done."""
        ...

    async def set_synchronous_standby_names(self, value: str) -> str: ...

    async def last_timeline_switch(self) -> TimelineSwitch | None: ...

    async def remove_data_directory(self, reason: str) -> None: ...

    async def close(self) -> None: ...


class LocalPostgres:
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
        self.name = name
        self.instance = Instance(settings, bootstrap, name, scope, dynamic, on_postmaster_death)
        self._status = StatusReader(self.instance)
        self._slots = slots.SlotKeeper(self.instance)
        self._lock = asyncio.Lock()
        self._handed: DynamicConfig | None = None  # the last config the loop handed in
        self._apply: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, dynamic: DynamicConfig | None = None
    ) -> LocalPostgres:
        return cls(settings.postgresql, settings.bootstrap, settings.name, settings.scope, dynamic)

    @property
    def layout(self) -> Layout:
        return self.instance.layout

    @property
    def postmaster_died(self) -> asyncio.Event:
        """Set the moment the postmaster exits without haagent stopping it."""
        return self.instance.postmaster_died

    @property
    def upstream(self) -> Upstream | None:
        """The member this node is configured to replicate from (None on a primary)."""
        return self.instance.upstream if self.instance.standby else None

    @property
    def settings(self) -> PostgresqlSettings:
        return self.instance.settings

    @property
    def dynamic(self) -> DynamicConfig:
        return self.instance.dynamic

    def set_dynamic_config(self, config: DynamicConfig) -> None:
        """Use `config` from now on; when its `postgresql` section changed (or on the first
        call), rewrite the config files and reload in the background (`apply_config`)."""
        before, self._handed = self._handed, config
        self.instance.dynamic = config
        if before is None or before.postgresql != config.postgresql:
            self._apply = asyncio.get_running_loop().create_task(self._apply_in_background())

    async def _apply_in_background(self) -> None:
        try:
            pending = await self.apply_config()
        except PostgresError as exc:
            log.warning("applying the new dynamic config failed: %s", exc)
        else:
            if pending:
                log.info("the new dynamic config needs a restart to take full effect")

    async def close(self) -> None:
        """Stop watching and close the connection; PostgreSQL itself keeps running."""
        await self._slots.close()
        if self._apply is not None and not self._apply.done():
            self._apply.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._apply
        if self.instance.watch is not None:
            self.instance.watch.close()
            self.instance.watch = None
        await self.instance.session.close()

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
        return float(self.instance.settings.pg_ctl_timeout) if timeout is None else timeout

    # -- observation -----------------------------------------------------------------------

    async def status(self, timeout: float = 2.0) -> PostgresStatus:
        """One bounded observation; never raises for PostgreSQL trouble (see `error`)."""
        return await self._status.read(timeout)

    # -- life cycle --------------------------------------------------------------------------

    async def bootstrap(self, timeout: float = 300.0) -> str:
        """initdb, config, roles, post_bootstrap; leaves it running. The system identifier."""
        async with self._action("bootstrap", timeout) as outcome:
            outcome.extend(await run_bootstrap(self.instance, timeout))
            control = await read_controldata(self.instance.layout, timeout)
            outcome.append(f"system identifier {control.system_identifier}")
        return control.system_identifier

    def add_reload_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` after each reload of the configuration (the `on_reload` callback)."""
        self.instance.reload_listeners.append(listener)

    async def create_replica(
        self,
        sources: Sequence[Upstream],
        basebackup_only: bool = False,
        timeout: float = 3600.0,
        attempts: int = 3,
        retry_delay: float = 5.0,
    ) -> Upstream | None:
        """The replica methods in effect (`config.replica_methods`: in a standby cluster,
        `standby_cluster.create_replica_methods` when set, else
        `postgresql.create_replica_methods`) in order, from the first of `sources` (none: the
        no_leader methods only); configured as a standby of the source used, stopped.
        `basebackup_only`: pg_basebackup alone (a reinitialize from the leader)."""
        chosen = replica_methods(self.instance.settings, self.instance.dynamic)
        methods, key = chosen.methods, chosen.key
        if basebackup_only:
            methods, key = (ReplicaMethod(BASEBACKUP),), "reinitialize from the leader"
        async with self._action("create replica", timeout) as outcome:
            source = await build_replica(
                self.instance,
                methods,
                sources,
                timeout,
                attempts,
                retry_delay,
                key=key,
            )
            outcome.append(f"built from {source}" if source else "built from a backup")
        return source

    async def start(
        self,
        role: Literal["primary", "replica"],
        upstream: Upstream | None,
        timeout: float | None = None,
    ) -> None:
        """Run as the primary (`start_as_primary`), or as a replica of `upstream` (None: of no
        one yet), rewinding first when its timeline diverged (`follow`)."""
        if role == "primary":
            await self.start_as_primary(timeout)
        else:
            await self.follow(upstream, timeout)

    async def start_on_disk(self, timeout: float | None = None) -> bool:
        """Start in the role on disk; returns once accepting connections. False if running."""
        timeout = self._default_timeout(timeout)
        async with self._action("start", timeout) as outcome:
            started = await self.instance.start(timeout)
            outcome.append("accepting connections" if started else "already running")
        return started

    async def start_as_primary(self, timeout: float | None = None) -> str:
        """Run as a primary: start it, and promote it when it is a standby on disk (so that
        it gets a new timeline, never ending recovery on its old one), or when running one."""
        timeout = self._default_timeout(timeout)
        async with self._action("start as primary", 2 * timeout) as outcome:
            if self.instance.postmaster() is None:
                await self.instance.start(timeout)
                outcome.append("started")
            rows = await self.instance.sql(
                "SELECT pg_is_in_recovery()", timeout, "start as primary"
            )
            if rows[0][0]:
                await self.instance.promote(timeout)
                outcome.append("promoted")
            outcome.append("running as a primary")
        return ", ".join(outcome)

    async def stop(self, mode: StopMode = "fast", timeout: float | None = None) -> bool:
        """Stop (escalating past `timeout`) and wait until gone. False if not running."""
        timeout = self._default_timeout(timeout)
        async with self._action(f"stop ({mode})", timeout + 3 * SLACK) as outcome:
            stopped = await self.instance.stop(mode, timeout)
            outcome.append("stopped" if stopped else "was not running")
        return stopped

    async def restart(self, role: Literal["primary", "replica"], upstream: Upstream | None) -> None:
        """A fast stop, then `start(role, upstream)`."""
        await self.stop("fast")
        await self.start(role, upstream)

    async def reload(self, timeout: float = 10.0) -> bool:
        async with self._action("reload", timeout) as outcome:
            done = await self.instance.reload(timeout)
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
            changed = await self.instance.save_config()
            pending = False
            if changed and await self.instance.reload(timeout):
                rows = await self.instance.sql(
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
            promoted = await self.instance.promote(timeout)
            outcome.append("promoted" if promoted else "already a primary")
        return promoted

    async def demote(
        self, mode: StopMode, upstream: Upstream | None, timeout: float | None = None
    ) -> str:
        """Stop a primary and start it as a standby of `upstream` (None: of no one yet),
        rewinding first when its timeline diverged (RewindImpossible: left stopped, unless
        the re-clone policy applies).

        The postmaster is signalled first, without asking PostgreSQL anything: a primary
        that does not answer queries must stop accepting writes all the same.  The stop
        escalates to immediate past `timeout` (default pg_ctl_timeout)."""
        return await self._or_reclone(upstream, lambda: self._demote(mode, upstream, timeout))

    async def _demote(
        self, mode: StopMode, upstream: Upstream | None, timeout: float | None
    ) -> str:
        stop_timeout = self._default_timeout(timeout)
        budget = self._default_timeout(None)
        async with self._action(f"demote to follow {upstream}", stop_timeout + 2 * budget) as out:
            if self.instance.postmaster() is not None:
                await self.instance.stop(mode, stop_timeout)
                out.append(f"stopped ({mode})")
            out.append(await become_replica(self.instance, upstream, 2 * budget))
        return "; ".join(out)

    async def follow(
        self, upstream: Upstream | None, timeout: float | None = None, *, recheck: bool = False
    ) -> str:
        """Replicate from `upstream`: a reload on a running standby (PostgreSQL 15 re-reads
        primary_conninfo), a demotion on a primary, a (rewound if needed) start when stopped.
        A rewind that fails re-clones when the re-clone policy says so."""
        return await self._or_reclone(
            upstream, lambda: self._follow_once(upstream, timeout, recheck)
        )

    async def _or_reclone(
        self, upstream: Upstream | None, step: Callable[[], Awaitable[str]]
    ) -> str:
        """`step`; when its rewind fails, a re-clone from `upstream` only when the matching flag
        is on (`remove_data_directory_on_rewind_failure`, or `..._on_diverged_timelines` when
        pg_rewind cannot be used); otherwise the error goes up and the data directory is kept."""
        try:
            return await step()
        except RewindError as exc:
            settings = self.instance.settings
            flag = (
                settings.remove_data_directory_on_diverged_timelines
                if isinstance(exc, RewindImpossible)
                else settings.remove_data_directory_on_rewind_failure
            )
            if not flag or upstream is None:
                raise
            log.warning("re-cloning from %s as configured, after: %s", upstream, exc)
            await self.reinit([upstream])
            return f"re-cloned from {upstream}"

    async def _follow_once(
        self, upstream: Upstream | None, timeout: float | None, recheck: bool = False
    ) -> str:
        timeout = self._default_timeout(timeout)
        async with self._action(f"follow {upstream}", 3 * timeout) as outcome:
            outcome.append(await self._follow_steps(upstream, timeout, recheck))
        return outcome[0]

    async def _follow_steps(
        self, upstream: Upstream | None, timeout: float, recheck: bool = False
    ) -> str:
        instance = self.instance
        if instance.postmaster() is None:
            return await become_replica(instance, upstream, 2 * timeout)
        rows = await instance.sql("SELECT pg_is_in_recovery()", timeout, "follow")
        if not rows[0][0]:
            await instance.stop("fast", timeout)
            return "demoted: " + await become_replica(instance, upstream, 2 * timeout)
        if (
            upstream is not None
            and upstream.checks_timeline
            and (recheck or upstream != instance.upstream)
        ):
            div = await running_replica_divergence(
                instance, upstream.primary, timeout, stuck=recheck
            )
            if div.diverged:
                control = await read_controldata(instance.layout, timeout)
                blocker = rewind_blocker(instance.dynamic.postgresql.use_pg_rewind, control)
                if blocker is not None:
                    raise RewindImpossible(
                        f"cannot follow {upstream}: {div.reason}, and pg_rewind cannot be used: "
                        f"{blocker}. Still running as a standby; reinit to re-clone"
                    )
                await instance.stop("fast", timeout)
                return "restarted: " + await become_replica(instance, upstream, 2 * timeout)
        previous = instance.upstream
        instance.standby, instance.upstream = True, upstream
        if await instance.save_config():
            await instance.reload(timeout)
            return f"now following {upstream} (was {previous}): reloaded"
        return f"already following {upstream}"

    async def rewind(self, upstream: Upstream, timeout: float | None = None) -> str:
        """Stop, rewind if the timeline diverged from `upstream`'s, start as its standby."""
        timeout = self._default_timeout(timeout)
        async with self._action(f"rewind from {upstream}", 3 * timeout) as outcome:
            await self.instance.stop("fast", timeout)
            outcome.append(await become_replica(self.instance, upstream, 2 * timeout))
        return outcome[0]

    async def check_divergence(self, upstream: Upstream, timeout: float = 30.0) -> Divergence:
        """Whether this (stopped) node's timeline diverged from `upstream`'s; changes nothing
        but a crash recovery when the last shutdown was not clean."""
        async with self._action(f"divergence check against {upstream}", timeout) as outcome:
            if self.instance.postmaster() is not None:
                div = await running_replica_divergence(self.instance, upstream, timeout)
            else:
                div = await check_divergence(self.instance, upstream, timeout)
            outcome.append(("diverged: " if div.diverged else "not diverged: ") + div.reason)
        return div

    async def checkpoint(self, timeout: float = 60.0) -> None:
        """CHECKPOINT (before a switchover, so that the shutdown after it is short)."""
        async with self._action("checkpoint", timeout):
            await self.instance.checkpoint(timeout)

    # -- slots and synchronous replication ------------------------------------------------

    async def change_slots(self, changes: slots.SlotChanges, timeout: float = 5.0) -> str:
        """Carry out what the slot rules decided (`haagent.core.slots`): report lost slots,
        drop and create physical ones now, each statement bounded by `timeout`; logical
        creations and advances go on in the background.  Failures are logged, not raised:
        a permanent slot that cannot be made must not stop the HA cycle."""
        if not changes:
            return "nothing to change"
        async with asyncio.timeout(timeout * (len(changes.drop) + len(changes.create) + 1)):
            done = await self._slots.apply(changes, timeout)
        if done:
            log.info("replication slots: %s", "; ".join(done))
        later = changes.advance or any(spec.kind == "logical" for spec in changes.create)
        return "; ".join(done) or ("handed to the background" if later else "nothing changed")

    async def copy_logical_slots(
        self, upstream: Upstream, wanted: Sequence[slots.SlotSpec], timeout: float | None = None
    ) -> str:
        """A replica before PostgreSQL 17: copy these logical slots from `upstream` (the
        primary), restarting PostgreSQL once to load them."""
        timeout = self._default_timeout(timeout)
        names = ", ".join(spec.name for spec in wanted)
        async with self._action(f"copy logical slots {names} from {upstream}", 3 * timeout) as out:
            await self._slots.close()
            out.append(await slots.copy_logical_slots(self.instance, upstream, wanted, timeout))
        return out[0]

    async def set_synchronous_standby_names(self, value: str, timeout: float = 10.0) -> str:
        """Set synchronous_standby_names (`FIRST 1 ("a")`, `*`, or empty for none; rendered by
        `sync_names.synchronous_standby_names`) in haagent's postgresql.conf and reload."""
        async with self._action("set synchronous_standby_names", timeout) as outcome:
            self.instance.sync_names = value
            if await self.instance.save_config() and await self.instance.reload(timeout):
                shown = await self.instance.sql(
                    "SHOW synchronous_standby_names", timeout, "synchronous_standby_names"
                )
                if shown[0][0] != value:
                    raise PostgresError(
                        f"synchronous_standby_names is {shown[0][0]!r} after reload"
                    )
            outcome.append(repr(value))
        return value

    async def last_timeline_switch(self, timeout: float = 5.0) -> TimelineSwitch | None:
        """This node's newest timeline switch; None on timeline 1."""
        status = await self.status(timeout)
        if status.timeline is None or status.timeline <= 1:
            return None
        history = self.layout.data_dir / "pg_wal" / f"{status.timeline:08X}.history"
        try:
            entries = parse_history_entries(history.read_text())
        except OSError:
            return None
        return TimelineSwitch(*entries[-1]) if entries else None

    # -- wiping (explicit only) -------------------------------------------------------------

    async def remove_data_directory(self, reason: str, timeout: float = 120.0) -> None:
        """Delete the cluster's files. Only ever called with an explicit reason (reinit)."""
        async with self._action(f"remove data directory ({reason})", timeout) as outcome:
            if self.instance.postmaster() is not None:
                raise DataDirectoryError(
                    f"refusing to remove {self.layout.data_dir}: PostgreSQL is running; stop it"
                )
            await asyncio.to_thread(files.remove_data_directory, self.layout)
            self.instance.standby, self.instance.upstream = False, None
            outcome.append(f"removed the contents of {self.layout.data_dir}")

    async def reinit(self, sources: Sequence[Upstream], timeout: float = 3600.0) -> Upstream | None:
        """Throw this node's data away and clone it again, then start it as a standby."""
        await self.stop("immediate", timeout=30)
        await self.remove_data_directory("reinit", timeout)
        source = await self.create_replica(sources, timeout=timeout)
        await self._follow_once(source, None)
        return source
