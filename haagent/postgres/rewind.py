"""Following a leader on another timeline: divergence check, crash recovery, pg_rewind.

The divergence check (the same test Patroni and pg_rewind make):
- the leader's timeline and history come from a replication connection
  (IDENTIFY_SYSTEM, TIMELINE_HISTORY), as the replication user;
- this node's end of WAL comes from pg_control after a clean shutdown: for a
  former primary, the end of its shutdown checkpoint record (read with
  pg_waldump); for a former replica, the minimum recovery point;
- it diverged when its timeline is not in the leader's history, or when its WAL
  goes past the point where the leader's history left that timeline.

A former primary that did not shut down cleanly first goes through crash
recovery in single-user mode (it must not accept connections as a primary); a
crashed replica is started and stopped as a standby.  pg_rewind needs the
source's pg_control to show its new timeline, i.e. the checkpoint after the
promotion: the source is checkpointed (or waited for) first.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from haagent.postgres import conf, libpq
from haagent.postgres.controldata import ControlData, read_controldata
from haagent.postgres.errors import (
    DataDirectoryError,
    QueryError,
    RewindError,
    RewindImpossible,
    StartTimeout,
    UpstreamNotReady,
)
from haagent.postgres.instance import Instance, log
from haagent.postgres.lsn import format_lsn, parse_lsn
from haagent.postgres.model import Upstream
from haagent.postgres.proc import run, startup_timeline, tool_env
from haagent.postgres.session import ConnParams, connection, query

# Files pg_rewind copies from the source that are this node's own.
KEEP_FILES = ("postgresql.conf", "postgresql.base.conf", "pg_hba.conf", "pg_ident.conf")


@dataclass(frozen=True)
class Divergence:
    diverged: bool
    reason: str
    local_timeline: int
    local_lsn: int
    leader_timeline: int
    switchpoint: int | None = None


def parse_history_entries(text: str) -> list[tuple[int, int, str]]:
    """A timeline history file: `(parent timeline, switchpoint, reason)` per line."""
    entries = []
    for line in text.splitlines():
        fields = line.split("\t") if "\t" in line else line.split(None, 2)
        if len(fields) >= 2 and fields[0].strip().isdigit():
            reason = fields[2].strip() if len(fields) > 2 else ""
            entries.append((int(fields[0]), parse_lsn(fields[1]), reason))
    return entries


def parse_history(text: str) -> list[tuple[int, int]]:
    """A timeline history file: `(parent timeline, switchpoint)` per line."""
    return [(tli, lsn) for tli, lsn, _ in parse_history_entries(text)]


def decide_divergence(
    local_timeline: int,
    local_end: int | None,
    local_lsn: int,
    leader_timeline: int,
    history: list[tuple[int, int]],
) -> Divergence:
    """Pure: has this node's WAL (ending at `local_end`; None: unknown) left the leader's?"""

    def result(diverged: bool, reason: str, switch: int | None = None) -> Divergence:
        return Divergence(diverged, reason, local_timeline, local_lsn, leader_timeline, switch)

    if local_timeline == leader_timeline:
        return result(False, f"same timeline {leader_timeline} as the leader")
    if local_timeline > leader_timeline:
        return result(True, f"local timeline {local_timeline} is ahead of the leader's")
    switch = next((lsn for tli, lsn in history if tli == local_timeline), None)
    if switch is None:
        return result(True, f"timeline {local_timeline} is not in the leader's history")
    if local_end is None:
        return result(True, "the end of the local WAL could not be read", switch)
    if local_end > switch:
        reason = (
            f"local WAL on timeline {local_timeline} ends at {format_lsn(local_end)}, past the "
            f"leader's switch to a new timeline at {format_lsn(switch)}"
        )
        return result(True, reason, switch)
    return result(
        False, f"local WAL ends at or before the switchpoint {format_lsn(switch)}", switch
    )


def rewind_blocker(use_pg_rewind: bool, control: ControlData) -> str | None:
    """Why pg_rewind cannot be used here, or None."""
    if not use_pg_rewind:
        return "postgresql.use_pg_rewind is off in the cluster's dynamic config"
    if not control.rewindable:
        return (
            "the data directory has no data checksums and last ran with wal_log_hints off "
            "(turn use_pg_rewind on so haagent sets wal_log_hints, or initdb with data-checksums)"
        )
    return None


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode()
    return str(value)


async def leader_timeline(
    instance: Instance, upstream: Upstream, timeout: float
) -> tuple[str, int, str]:
    """(system identifier, timeline, history file text) of the leader."""
    cred = instance.settings.authentication.replication
    params = instance.params_for(cred, upstream.host, upstream.port, replication=True)
    async with connection(params, timeout, f"reading {upstream}'s timeline") as conn:
        row = (await query(conn, "IDENTIFY_SYSTEM", timeout, "IDENTIFY_SYSTEM"))[0]
        sysid, tli = _text(row[0]), int(_text(row[1]))
        # A new leader takes the key a moment before its promotion ends: until then its
        # timeline is the old one, and a replica already past its switch point would look
        # fine, follow it, and be stuck once it promotes.  Ask again next cycle.
        standby = await query(conn, "SHOW in_hot_standby", timeout, "SHOW in_hot_standby")
        if _text(standby[0][0]) == "on":
            raise UpstreamNotReady(
                f"{upstream} is still in recovery (its promotion is not finished): "
                "following it is postponed to the next cycle"
            )
        history = ""
        if tli > 1:
            rows = await query(conn, f"TIMELINE_HISTORY {tli}", timeout, "TIMELINE_HISTORY")
            history = _text(rows[0][1])
    return sysid, tli, history


async def checkpoint_end(instance: Instance, control: ControlData, timeout: float) -> int | None:
    """Where the record after the shutdown checkpoint would start, via pg_waldump."""
    layout = instance.layout
    argv: list[str | Path] = [layout.binary("pg_waldump"), "-p", layout.data_dir / "pg_wal",
            "-s", format_lsn(control.checkpoint_lsn), "-n", "2",
            "-t", str(control.checkpoint_timeline)]  # fmt: skip
    result = await run(argv, timeout=timeout, env=tool_env(english=True))
    lsns = re.findall(r"lsn: ([0-9A-F]+/[0-9A-F]+)", result.stdout)
    if len(lsns) >= 2:
        return parse_lsn(lsns[1])
    return wal_end_from_error(result.stderr)


def wal_end_from_error(stderr: str) -> int | None:
    """Where pg_waldump found no next record: the last LSN of its final error message.

    `invalid record length at B: wanted 24, got 0`, `record with incorrect
    prev-link A at B`, `invalid magic number 0000 in WAL segment S, LSN B, offset 0`...
    """
    match = re.search(r"error in WAL record at [0-9A-F]+/[0-9A-F]+: (.*)", stderr)
    if match is None:
        return None
    lsns = re.findall(r"\b([0-9A-F]{1,8}/[0-9A-F]{1,8})\b", match.group(1))
    return parse_lsn(lsns[-1]) if lsns else None


async def ensure_clean_shutdown(instance: Instance, timeout: float) -> ControlData:
    """PostgreSQL is stopped; make pg_control say it shut down cleanly (crash recovery)."""
    deadline = time.monotonic() + timeout
    control = await read_controldata(instance.layout, timeout)
    if control.clean:
        return control
    # A base backup (or a rewound directory) carries the source's "in production" state and
    # must only ever be recovered as a standby: ending recovery would fork its WAL.
    if control.was_primary and not (instance.layout.data_dir / "backup_label").exists():
        # Single-user mode: it recovers without ever accepting connections as a primary.
        # It refuses to run with standby.signal, so the role on disk is put back after.
        standby = instance.standby
        instance.standby = False
        await instance.save_config()
        layout = instance.layout
        argv: list[str | Path] = [layout.binary("postgres"), "--single", "-F",
                                  "-D", layout.data_dir,
                                  f"--config-file={layout.conf_file}", "postgres"]  # fmt: skip
        try:
            result = await run(argv, timeout=timeout)
        finally:
            instance.standby = standby
            instance.write_config()  # the role on disk is back before anything goes on
        how = f"single-user crash recovery: {result.tail(3)}"
        if not result.ok:
            raise RewindError(f"{how}; the data directory is kept as it is")
    else:
        instance.standby, instance.upstream = True, None
        await instance.save_config()
        with contextlib.suppress(StartTimeout):  # consistent or not, a clean stop follows
            await instance.start(timeout=min(15.0, max(1.0, deadline - time.monotonic())))
        await instance.stop("fast", timeout=max(1.0, deadline - time.monotonic()))
        how = "crash recovery as a standby"
    control = await read_controldata(instance.layout, timeout)
    if not control.clean:
        raise RewindError(f"still not shut down cleanly ({control.state}) after {how}")
    log.debug("%s: done, cluster state now %r", how.split(":")[0], control.state)
    return control


async def check_divergence(
    instance: Instance, upstream: Upstream, timeout: float, control: ControlData | None = None
) -> Divergence:
    """Compare this stopped node with the leader's timeline history (see the module doc)."""
    deadline = time.monotonic() + timeout
    if control is None:
        control = await ensure_clean_shutdown(instance, timeout)
    sysid, tli, history_text = await leader_timeline(
        instance, upstream, deadline - time.monotonic()
    )
    if sysid != control.system_identifier:
        raise DataDirectoryError(
            f"{upstream} belongs to another cluster (system identifier {sysid}, this data "
            f"directory has {control.system_identifier}): it cannot follow it; reinit to clone"
        )
    if control.state == "shut down in recovery" and control.min_recovery_lsn:
        local_tli, local_lsn = control.min_recovery_timeline, control.min_recovery_lsn
        end: int | None = local_lsn
    else:
        local_tli, local_lsn = control.checkpoint_timeline, control.checkpoint_lsn
        if control.was_primary and local_tli != tli:
            end = await checkpoint_end(instance, control, deadline - time.monotonic())
        else:
            end = local_lsn
    return decide_divergence(local_tli, end, local_lsn, tli, parse_history(history_text))


async def _wait_source_checkpoint(instance: Instance, params: ConnParams, timeout: float) -> None:
    """pg_rewind reads the source's timeline from its pg_control: wait for the checkpoint."""
    sql = (
        "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int,"
        " (SELECT timeline_id FROM pg_control_checkpoint())"
    )
    deadline = time.monotonic() + timeout
    async with connection(params, timeout, "checking the rewind source") as conn:
        asked = False
        while True:
            current, checkpointed = (await query(conn, sql, timeout, "source timeline"))[0]
            if checkpointed == current:
                return
            if not asked:
                asked = True
                try:
                    await query(conn, "CHECKPOINT", deadline - time.monotonic(), "CHECKPOINT")
                    continue
                except QueryError as exc:
                    log.info("rewind: waiting for the source's own checkpoint (%s)", exc)
            if time.monotonic() > deadline:
                raise RewindError(f"the source has not checkpointed its timeline {current} yet")
            await asyncio.sleep(0.2)


async def run_rewind(instance: Instance, upstream: Upstream, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    auth = instance.settings.authentication
    cred = auth.rewind or auth.superuser
    params = instance.params_for(cred, upstream.host, upstream.port)
    await _wait_source_checkpoint(instance, params, timeout)
    keep = [instance.layout.config_dir / n for n in KEEP_FILES] + [instance.layout.log_file]
    with (
        libpq.tool_connection(instance.libpq_options(cred)) as connect,
        tempfile.TemporaryDirectory(prefix="haagent-rewind-") as tmp,
    ):
        source = conf.conninfo({"host": upstream.host, "port": upstream.port,
                                "user": cred.username, "dbname": "postgres",
                                **connect.options})  # fmt: skip
        layout = instance.layout
        argv: list[str | Path] = [layout.binary("pg_rewind"), "-D", layout.data_dir,
                f"--source-server={source}", "--no-ensure-shutdown"]  # fmt: skip
        argv += restore_target_wal(instance)
        saved = [(p, Path(tmp) / f"{i}") for i, p in enumerate(keep) if p.exists()]
        for original, copy in saved:
            shutil.copy2(original, copy)
        instance.write_pgpass(upstream, rewind=cred)
        try:
            result = await run(argv, timeout=deadline - time.monotonic(),
                               env=tool_env({**instance.tool_env_extra(),
                                             **connect.env}))  # fmt: skip
        except TimeoutError:
            raise RewindError(f"pg_rewind from {upstream} timed out; data directory kept") from None
        finally:
            for original, copy in saved:
                shutil.copy2(copy, original)
            instance.write_pgpass()  # the rewind user's password only while pg_rewind runs
    if not result.ok:
        raise RewindError(
            f"pg_rewind from {upstream} failed: {result.tail(6)}. The data directory is kept as "
            "it is; re-clone it (reinit, or postgresql.remove_data_directory_on_rewind_failure) "
            "once you do not need it"
        )
    log.debug("pg_rewind from %s took %.2fs: %s", upstream, result.duration, result.tail(1))


def restore_target_wal(instance: Instance) -> list[str]:
    """With a restore_command, pg_rewind fetches the old primary's WAL that was already
    recycled from the archive (`--restore-target-wal`), reading the command from haagent's
    postgresql.conf (`--config-file` when it is outside the data directory)."""
    if instance.restore_command() is None:
        return []
    layout = instance.layout
    args = ["--restore-target-wal"]
    if layout.separate_config_dir:
        args.append(f"--config-file={layout.conf_file}")
    return args


async def become_replica(instance: Instance, upstream: Upstream | None, timeout: float) -> str:
    """A stopped node starts as a standby of `upstream`, rewinding first when it diverged.

    Raises RewindImpossible (nothing changed, PostgreSQL left stopped) when it
    diverged and pg_rewind cannot be used.
    """
    deadline = time.monotonic() + timeout
    outcome = "started as a standby" + (f" of {upstream}" if upstream else " with no upstream")
    fresh_clone = (
        (instance.layout.data_dir / "backup_label").exists()
        and instance.standby
        and instance.upstream == upstream
    )  # just cloned from this very upstream: it cannot have diverged from it
    checked = upstream is not None and upstream.checks_timeline
    if checked and upstream is not None and instance.layout.initialized() and not fresh_clone:
        control = await ensure_clean_shutdown(instance, timeout)
        source = upstream.primary  # the leader, when streaming from a standby
        div = await check_divergence(instance, source, deadline - time.monotonic(), control)
        if div.diverged:
            blocker = rewind_blocker(instance.dynamic.postgresql.use_pg_rewind, control)
            if blocker is not None:
                # Keep it from ever starting as a primary again: a standby of no one.
                instance.standby, instance.upstream = True, None
                await instance.save_config()
                raise RewindImpossible(
                    f"cannot follow {upstream}: {div.reason}, and pg_rewind cannot be used: "
                    f"{blocker}. The data is untouched and PostgreSQL left stopped, configured "
                    "as a standby with no upstream (a start keeps it read-only); re-cloning "
                    "(reinit) is the way out"
                )
            await run_rewind(instance, source, deadline - time.monotonic())
            outcome = f"rewound ({div.reason}), then {outcome}"
    instance.standby, instance.upstream = True, upstream
    await instance.save_config()
    await instance.start(timeout=max(1.0, deadline - time.monotonic()))
    return outcome


async def running_replica_divergence(
    instance: Instance, upstream: Upstream, timeout: float, *, stuck: bool = False
) -> Divergence:
    """The divergence check for a running standby: its replay position and timeline.

    The replay timeline is not exposed by PostgreSQL 15; the highest of the last
    restartpoint's, the WAL receiver's and the local history files' is used.  `stuck`:
    the standby does not stream from an upstream on a later timeline.  A history file
    fetched from it then says nothing about what was replayed (the standby may have
    failed to switch to that timeline), so the timeline of the segment the startup
    process replays (its process title) is used instead, when it can be read.
    """
    deadline = time.monotonic() + timeout
    rows = await instance.sql(
        "SELECT pg_last_wal_replay_lsn()::text,"
        " (SELECT timeline_id FROM pg_control_checkpoint()),"
        " (SELECT received_tli FROM pg_stat_wal_receiver),"
        " (SELECT system_identifier FROM pg_control_system())::text",
        timeout,
        "replay position",
    )
    replay, checkpoint_tli, received_tli, local_sysid = rows[0]
    history_tlis = [
        int(p.stem, 16)
        for p in (instance.layout.data_dir / "pg_wal").glob("*.history")
        if re.fullmatch(r"[0-9A-F]{8}", p.stem)
    ]
    local_tli = max([int(str(checkpoint_tli)), int(str(received_tli or 0)), *history_tlis])
    if stuck:
        postmaster = instance.postmaster()
        replaying = startup_timeline(postmaster.pid) if postmaster is not None else None
        local_tli = replaying if replaying is not None else local_tli
    sysid, tli, history_text = await leader_timeline(
        instance, upstream, deadline - time.monotonic()
    )
    if sysid != local_sysid:
        raise DataDirectoryError(
            f"{upstream} belongs to another cluster (system identifier {sysid}, this node has "
            f"{local_sysid}): it cannot follow it; reinit to clone"
        )
    lsn = parse_lsn(str(replay)) if replay is not None else 0
    return decide_divergence(local_tli, lsn, lsn, tli, parse_history(history_text))
