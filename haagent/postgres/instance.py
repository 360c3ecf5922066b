"""The local PostgreSQL's process: start, stop, reload, promote, checkpoint, watch.

The postmaster is spawned directly (posix_spawn, in its own session, output to
`haagent-postmaster.log` in the data directory) rather than through pg_ctl, so
that its pid is known at once: a start that fails (port in use, bad setting)
is reported the moment the postmaster exits, and every wait ends on the real
outcome (postmaster.pid saying "ready"/"standby", or the process gone) rather
than on pg_ctl's 100 ms polling.  The postmaster does not depend on the agent:
an agent restarted after a SIGKILL adopts it through postmaster.pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Literal

from haagent.config.model import BootstrapSettings, Credentials, DynamicConfig, PostgresqlSettings
from haagent.config.recovery import RECOVERY_KEYS, replica_recovery
from haagent.postgres import conf, files, libpq, paramcheck, slots, versions
from haagent.postgres.errors import (
    PromoteError,
    QueryError,
    StartError,
    StartTimeout,
    StopError,
)
from haagent.postgres.layout import Layout, check_data_dir_usable
from haagent.postgres.model import Upstream
from haagent.postgres.proc import (
    PidFile,
    data_dir_processes,
    port_in_use,
    port_owner,
    read_pid_file,
    running_postmaster,
    scrubbed_environ,
)
from haagent.postgres.session import Conn, ConnParams, Session, connection, query
from haagent.postgres.watch import PostmasterWatch

log = logging.getLogger("haagent.postgres")
StopMode = Literal["smart", "fast", "immediate"]
_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
_ESCALATION: dict[str, tuple[StopMode, ...]] = {
    "smart": ("smart", "fast", "immediate"),
    "fast": ("fast", "immediate"),
    "immediate": ("immediate",),
}
ESCALATION_GRACE = 5.0  # seconds each harsher stop mode gets before the next one
POLL = 0.01
PROMOTE_RESIGNAL = 0.2


def local_host(settings: PostgresqlSettings) -> str:
    """Where the agent reaches its own PostgreSQL: the first listen address, or a socket dir."""
    if settings.use_unix_socket:
        dirs = str(settings.parameters.get("unix_socket_directories", "/var/run/postgresql"))
        return dirs.split(",")[0].strip() or "/var/run/postgresql"
    host = settings.listen.hosts[0] if settings.listen.hosts else "127.0.0.1"
    return {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


class Instance:
    """One local PostgreSQL: its settings, files, role on disk, connection and watch."""

    def __init__(
        self,
        settings: PostgresqlSettings,
        bootstrap: BootstrapSettings,
        name: str,
        scope: str,
        dynamic: DynamicConfig | None = None,
        on_postmaster_death: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.bootstrap_settings = bootstrap
        self.name = name
        self.scope = scope
        self.dynamic = dynamic if dynamic is not None else bootstrap.dcs
        self.layout = Layout.from_settings(settings)
        self.postmaster_died = asyncio.Event()
        self.on_postmaster_death = on_postmaster_death
        # Recovery role on disk: standby.signal present, and the upstream written last time.
        self.standby = self.layout.standby_signal.exists()
        self.upstream: Upstream | None = None
        self.sync_names: str | None = None  # managed by the HA loop when not None
        with contextlib.suppress(OSError, UnicodeDecodeError):
            written = self.layout.conf_file.read_text()
            self.upstream = conf.parse_upstream_marker(written)
            self.sync_names = conf.parse_sync_marker(written)
        self.bootstrap_hba = False  # while bootstrapping, bootstrap.pg_hba applies
        # While a custom bootstrap's restored cluster recovers: its recovery settings (with
        # recovery.signal and hot_standby off), or, with keep_existing_recovery_conf, the
        # ones its command wrote (then haagent leaves the signal files and
        # postgresql.auto.conf alone).
        self.restore_recovery: Mapping[str, str] | None = None
        self.keep_recovery_files = False
        self.reload_listeners: list[Callable[[], None]] = []
        self.session = Session(lambda: self.local_params(statement_timeout_ms=5000))
        self.watch: PostmasterWatch | None = None
        self._server_version: int | None = None
        self._libpq_warned: set[tuple[str, str]] = set()
        self._checked: tuple[object, dict[str, Any]] | None = None  # (parameters, adjusted)
        self._stopping = False
        self._starting: int | None = None  # the pid of a postmaster start() still waits on

    # -- connections and files -------------------------------------------------------------

    @property
    def superuser(self) -> Credentials:
        return self.settings.authentication.superuser

    def libpq_options(self, cred: Credentials) -> dict[str, str]:
        """`cred`'s libpq keys for this server's version (a key it is too old for is left
        out, with one warning naming it)."""
        options, left_out = libpq.options_for(cred, self.server_version)
        for key in left_out:
            if (cred.username, key) not in self._libpq_warned:
                self._libpq_warned.add((cred.username, key))
                log.warning(
                    "postgresql.authentication (%s): %s left out of its connections: the libpq "
                    "of PostgreSQL %s does not know it",
                    cred.username, key, versions.major_name(self.server_version or 0),
                )  # fmt: skip
        return options

    def params_for(self, cred: Credentials, host: str, port: int, **changes: Any) -> ConnParams:
        """How the agent connects as `cred` to `host:port`, with the user's libpq keys."""
        return ConnParams(
            host=host,
            port=port,
            user=cred.username,
            password=cred.password,
            application_name=f"haagent {self.name}",
            libpq=tuple(self.libpq_options(cred).items()),
            **changes,
        )

    def local_params(self, statement_timeout_ms: int | None = None) -> ConnParams:
        return self.params_for(
            self.superuser,
            local_host(self.settings),
            self.settings.listen.port,
            statement_timeout_ms=statement_timeout_ms,
        )

    @property
    def server_version(self) -> int | None:
        """The server's PG_VERSION_NUM, from `postgres -V` (None when it cannot be read)."""
        if self._server_version is None:
            self._server_version = versions.server_version(self.layout.bin_dir / "postgres")
        return self._server_version

    def conf_inputs(self) -> conf.ConfInputs:
        inputs = self._base_inputs()
        return replace(inputs, adjusted=self._adjusted(inputs))

    def _adjusted(self, inputs: conf.ConfInputs) -> dict[str, Any]:
        """What the server refuses among the user's parameters (asked once per change).

        Each change is logged once, as a warning naming the parameter's key path.
        """
        user = conf.user_parameters(inputs)
        key = (sorted((n, repr(v)) for n, v in user.values.items()), user.notes)
        if self._checked is not None and self._checked[0] == key:
            return self._checked[1]
        for note in user.notes:
            log.warning("%s", note)
        postgres = self.layout.bin_dir / "postgres"
        refusals = paramcheck.check_parameters(postgres, user.values, conf.format_value)
        adjusted: dict[str, Any] = {}
        for name, refusal in (refusals or {}).items():
            adjusted[name] = refusal.replacement
            value = user.values[name]
            where = f"{user.sources.get(name, conf.LOCAL_PARAMETERS)}.{name}"
            done = (
                "left out of postgresql.conf"
                if refusal.replacement is None
                else f"written as {conf.format_value(refusal.replacement)}"
            )
            server = f"PostgreSQL {versions.major_name(self.server_version or 0)}"
            log.warning(
                "%s = %s: %s, %s refuses it: %s",
                where, conf.format_value(value), done,
                server if self.server_version else "PostgreSQL", refusal.reason,
            )  # fmt: skip
        self._checked = (key, adjusted)
        return adjusted

    def _base_inputs(self) -> conf.ConfInputs:
        separate = self.layout.separate_config_dir
        return conf.ConfInputs(
            name=self.name,
            scope=self.scope,
            listen=self.settings.listen,
            local=self.settings.parameters,
            dynamic=self.dynamic.postgresql.parameters,
            use_pg_rewind=self.dynamic.postgresql.use_pg_rewind,
            use_slots=self.dynamic.postgresql.use_slots,
            synchronous_standby_names=self.sync_names,
            standby=self.standby,
            upstream=self.upstream,
            replication=self.settings.authentication.replication,
            replication_options=self.libpq_options(self.settings.authentication.replication),
            pgpass=self.settings.pgpass,
            hba_file=self.layout.hba_file if separate else None,
            ident_file=self.layout.ident_file if separate else None,
            server_version=self.server_version,
            logical_slots=slots.has_permanent_logical_slots(self.dynamic),
            recovery=replica_recovery(self.settings, self.dynamic),
            archive_recovery=self._archive_recovery(),
            bootstrap_recovery={} if self.keep_recovery_files else self.restore_recovery,
        )

    def _archive_recovery(self) -> tuple[tuple[str, str], ...]:
        """A standby cluster replaying the archive alone: its recovery settings."""
        standby = self.dynamic.standby_cluster
        if standby is None or standby.streams:
            return ()
        return standby.recovery

    def hba_lines(self) -> tuple[str, ...]:
        lines = self.settings.pg_hba or self.dynamic.postgresql.pg_hba
        if not lines and self.bootstrap_hba:
            lines = self.bootstrap_settings.pg_hba
        return lines

    def write_pgpass(
        self, source: Upstream | None = None, rewind: Credentials | None = None
    ) -> None:
        """The pgpass file, each password scoped to the server it is for: the superuser's
        to this node's PostgreSQL (post_bootstrap), the replication user's to the server
        this node streams or clones from (`source`, else the upstream), and `rewind`'s to
        `source` while pg_rewind runs."""
        auth = self.settings.authentication
        entries = [(local_host(self.settings), self.settings.listen.port, auth.superuser)]
        remote = source or self.upstream
        if remote is not None:
            entries.append((remote.host, remote.port, auth.replication))
            if rewind is not None:
                entries.append((remote.host, remote.port, rewind))
        path = self.settings.pgpass
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(path, conf.render_pgpass(entries), 0o600)

    def tool_env_extra(self) -> dict[str, str]:
        """Environment for tools that connect: passwords come from the pgpass file only."""
        return {"PGPASSFILE": str(self.settings.pgpass.absolute()), "PGCONNECT_TIMEOUT": "10"}

    def write_config(self) -> bool:
        """Write postgresql.conf, pg_hba.conf (when configured), standby.signal and pgpass.

        Returns whether postgresql.conf or pg_hba.conf changed (then a reload is due).
        """
        note = files.adopt_user_conf(self.layout)
        if note:
            log.info("config files: %s", note)
        changed = files.write_atomic(self.layout.conf_file, conf.render_conf(self.conf_inputs()))
        lines = self.hba_lines()
        if lines:
            changed |= files.write_atomic(self.layout.hba_file, conf.render_hba(lines))
        if self.keep_recovery_files:
            pass  # the restore command's own recovery.signal (or standby.signal) stays
        elif self.restore_recovery is not None:
            files.set_recovery_signal(self.layout)
        else:
            files.set_standby_signal(self.layout, self.standby)
        self.write_pgpass()
        return changed

    async def save_config(self) -> bool:
        """`write_config` in a thread: its fsyncs never stall the event loop (the lease
        keeper renews on it)."""
        return await asyncio.to_thread(self.write_config)

    def restore_command(self) -> str | None:
        """The restore_command PostgreSQL (and pg_rewind) gets: `recovery_conf`'s, else one in
        the parameters; None when there is none."""
        command = replica_recovery(self.settings, self.dynamic).get("restore_command")
        if not command:
            parameters = {**self.dynamic.postgresql.parameters, **self.settings.parameters}
            command = str(parameters.get("restore_command") or "") or None
        return command

    def strip_recovery_settings(self) -> None:
        """Before a start: recovery settings a restore tool left in postgresql.auto.conf go
        (they would override haagent's, and a recovery target would stop a later replica);
        kept while a custom bootstrap with keep_existing_recovery_conf recovers."""
        if self.keep_recovery_files:
            return
        removed = files.strip_auto_conf(self.layout, RECOVERY_KEYS)
        if removed:
            log.info(
                "removed %s from %s: recovery settings are haagent's (postgresql.recovery_conf)",
                ", ".join(removed), self.layout.data_dir / "postgresql.auto.conf",
            )  # fmt: skip

    # -- the postmaster --------------------------------------------------------------------

    def postmaster(self) -> PidFile | None:
        """The running postmaster of our data directory (adopting and watching it), or None."""
        info = running_postmaster(self.layout.pid_file, self.layout.data_dir)
        if info is not None:
            self._ensure_watch(info.pid)
        return info

    def _ensure_watch(self, pid: int) -> PostmasterWatch:
        if self.watch is None or self.watch.pid != pid:
            if self.watch is not None:
                self.watch.close()
            self._stopping = False
            self.watch = PostmasterWatch(pid, self._postmaster_exited)
        return self.watch

    def _postmaster_exited(self, watch: PostmasterWatch) -> None:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(watch.pid, os.WNOHANG)  # reap it when it was our child
        if self._stopping or watch.pid == self._starting:
            return  # an exit haagent asked for, or a failed start (reported by start())
        log.warning("postmaster (pid %d) died: noticed via %s", watch.pid, watch.method)
        self.postmaster_died.set()
        if self.on_postmaster_death is not None:
            self.on_postmaster_death()

    def log_tail(self, offset: int = 0, lines: int = 8) -> str:
        try:
            with self.layout.log_file.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(log is empty)"

    def _check_port(self) -> None:
        port = self.settings.listen.port
        for host in self.settings.listen.hosts:
            if port_in_use(host, port):
                owner = port_owner(host, port)
                by = f" by {owner}" if owner else " by another process"
                raise StartError(
                    f"cannot start PostgreSQL: {host}:{port} (postgresql.listen) is already in "
                    f"use{by}: stop it or choose another port"
                )

    async def _wait_orphans_gone(self, timeout: float) -> None:
        """After a crash, the dead postmaster's children must exit before a new start."""
        deadline = time.monotonic() + timeout
        while pids := data_dir_processes(self.layout.data_dir):
            if time.monotonic() > deadline:
                log.warning("killing leftover PostgreSQL processes %s", pids)
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                await asyncio.sleep(0.1)
                return
            await asyncio.sleep(POLL)

    async def start(self, timeout: float | None = None, wait: bool = True) -> bool:
        """Start with the recovery role on disk; False (a no-op) when already running.

        With `wait`, returns once PostgreSQL accepts connections; StartTimeout leaves
        a still-starting postmaster running.
        """
        if self.postmaster() is not None:
            return False
        timeout = float(self.settings.pg_ctl_timeout) if timeout is None else timeout
        deadline = time.monotonic() + timeout
        check_data_dir_usable(self.layout)
        postgres = self.layout.binary("postgres")
        self._check_port()
        await self._wait_orphans_gone(min(5.0, timeout))
        await asyncio.to_thread(self.strip_recovery_settings)
        await self.save_config()
        log_file = self.layout.log_file
        offset = log_file.stat().st_size if log_file.exists() else 0
        argv = [str(postgres), "-D", str(self.layout.data_dir)]
        argv.append(f"--config-file={self.layout.conf_file}")
        log_fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # posix_spawn returns as soon as the child exists: it does not block the loop.
            pid = os.posix_spawn(  # noqa: ASYNC221
                str(postgres),
                argv,
                scrubbed_environ(),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, log_fd, 2),
                ],
                setsid=True,
            )
        finally:
            os.close(log_fd)
        self.postmaster_died.clear()
        watch = self._ensure_watch(pid)
        self._starting = pid
        try:
            return await self._wait_started(watch, wait, deadline, timeout, offset)
        finally:
            self._starting = None

    async def _wait_started(
        self, watch: PostmasterWatch, wait: bool, deadline: float, timeout: float, offset: int
    ) -> bool:
        pid, log_file = watch.pid, self.layout.log_file
        while True:
            if not watch.alive():
                raise StartError(
                    f"PostgreSQL exited during startup; {log_file} says:\n{self.log_tail(offset)}"
                )
            info = read_pid_file(self.layout.pid_file)
            if not wait or (info and info.pid == pid and info.status in ("ready", "standby")):
                return True
            if time.monotonic() > deadline:
                raise StartTimeout(
                    f"PostgreSQL (pid {pid}) is not accepting connections after {timeout:g}s "
                    f"(still running; status {info.status if info else 'unknown'}); "
                    f"{log_file} ends with:\n{self.log_tail(offset)}"
                )
            await watch.wait(POLL)

    async def stop(self, mode: StopMode = "fast", timeout: float | None = None) -> bool:
        """Stop and wait until the postmaster is gone; False (a no-op) when not running.

        Escalates: smart -> fast -> immediate -> SIGKILL of the postmaster and its children,
        `timeout` for the requested mode and ESCALATION_GRACE for each harsher one.
        """
        info = self.postmaster()
        if info is None:
            return False
        timeout = float(self.settings.pg_ctl_timeout) if timeout is None else timeout
        watch = self._ensure_watch(info.pid)
        await self.session.close()
        self._stopping = True  # its exit is not a death to report
        try:
            await self._stop(info.pid, watch, mode, timeout)
        finally:
            self._stopping = False
        await self._wait_orphans_gone(ESCALATION_GRACE)
        return True

    async def _stop(self, pid: int, watch: PostmasterWatch, mode: StopMode, timeout: float) -> None:
        budget = timeout
        for stage in _ESCALATION[mode]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, _SIGNALS[stage])
            if await watch.wait(budget):
                return
            log.warning("stop %s: not stopped after %.1fs, escalating", stage, budget)
            budget = ESCALATION_GRACE
        for victim in [pid, *data_dir_processes(self.layout.data_dir)]:
            with contextlib.suppress(OSError):
                os.kill(victim, signal.SIGKILL)
        if not await watch.wait(ESCALATION_GRACE):
            raise StopError(f"PostgreSQL (pid {pid}) survived SIGKILL")

    # -- commands over SQL -------------------------------------------------------------------

    async def sql(self, sql: str, timeout: float, what: str) -> list[tuple[object, ...]]:
        """One statement on the agent's session to its own PostgreSQL."""

        async def go(c: Conn) -> list[tuple[object, ...]]:
            cur = await c.execute(sql.encode())
            return list(await cur.fetchall()) if cur.description is not None else []

        return await self.session.run(go, timeout, what)

    async def reload(self, timeout: float = 10.0) -> bool:
        """SIGHUP, then wait until the agent's backend has re-read the files. False if stopped."""
        info = self.postmaster()
        if info is None:
            return False
        before = (await self.sql("SELECT pg_conf_load_time()", timeout, "reload"))[0][0]
        os.kill(info.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = await self.sql("SELECT pg_conf_load_time()", timeout, "reload")
            if rows[0][0] != before:
                for listener in self.reload_listeners:
                    listener()
                return True
            await asyncio.sleep(POLL)
        raise StartError(f"PostgreSQL did not reload its configuration within {timeout:g}s")

    async def promote(self, timeout: float = 30.0) -> bool:
        """pg_promote() and wait until out of recovery; False (no-op) on a primary."""
        deadline = time.monotonic() + timeout
        rows = await self.sql("SELECT pg_is_in_recovery()", timeout, "promote")
        if not rows[0][0]:
            self.standby = False
            return False
        signalled = 0.0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PromoteError(f"PostgreSQL still in recovery {timeout:g}s after pg_promote()")
            if time.monotonic() - signalled >= PROMOTE_RESIGNAL:
                # Signalled again while waiting: a promote request that reaches the startup
                # process while it restarts the WAL receiver can otherwise sleep through
                # wal_retrieve_retry_interval (5 s).
                signalled = time.monotonic()
                with contextlib.suppress(QueryError):  # "recovery is not in progress": done
                    await self.sql("SELECT pg_promote(wait => false)", remaining, "promote")
            rows = await self.sql("SELECT pg_is_in_recovery()", remaining, "promote")
            if not rows[0][0]:
                break
            await asyncio.sleep(POLL)
        self.standby = False
        await self.save_config()  # no recovery settings any more; PostgreSQL removed standby.signal
        return True

    async def checkpoint(self, timeout: float = 60.0) -> None:
        params = self.local_params(statement_timeout_ms=int(timeout * 1000))
        async with connection(params, timeout, "checkpoint") as c:
            await query(c, "CHECKPOINT", timeout, "CHECKPOINT")
