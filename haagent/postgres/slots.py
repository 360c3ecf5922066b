"""Replication slots on the local PostgreSQL: names, the changes the HA loop asks for, and
the SQL that makes them.

Which slots a member keeps and where each should be is decided by the core
(`haagent.core.slots`).  This module carries the decision out:

- `SlotChanges` (drop, create, advance, and the lost slots to report) is applied by
  `SlotKeeper.apply`: dropping and creating physical slots is quick and done at once,
  each statement bounded; creating a logical slot (it waits for the transactions in
  progress) and advancing slots (a logical slot is advanced by decoding WAL) run in
  the background, in bounded steps, so that neither the HA loop nor anything else ever
  waits for them;
- `copy_logical_slots`: PostgreSQL before 17 cannot create a logical slot on a standby,
  so a replica gets a copy of the primary's slot (its state file, read over SQL) and
  loads it with a restart, as Patroni does; from then on it is advanced;
- each slot that PostgreSQL reports lost (`wal_status = 'lost'`) is logged once, with
  what haagent does about it.

Slot names in SQL are always parameters, or checked against `SLOT_NAME` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from haagent.config.model import DynamicConfig
from haagent.postgres.errors import PostgresError, QueryError
from haagent.postgres.lsn import format_lsn, parse_lsn_or_none
from haagent.postgres.model import SlotKind, Upstream
from haagent.postgres.session import ConnParams, connection, error_text, query

if TYPE_CHECKING:
    from haagent.postgres.instance import Instance

log = logging.getLogger("haagent.postgres")

SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
# The reason code of a lost slot, in its log line and haactl's footnote.
SLOT_LOST_CODE = "replication_slot_lost"
# A permanent logical slot a new primary had no copy of, made anew at its position.
SLOT_MADE_AFTER_FAILOVER_CODE = "logical_slot_made_after_failover"
# How long one statement on a slot may take; an advance is cut into steps that fit.
STATEMENT_TIMEOUT = 30.0
# The most WAL one pg_replication_slot_advance of a logical slot decodes.
ADVANCE_STEP = 64 << 20
# How long one round of background work may go on before the newest request is taken.
ROUND_BUDGET = 60.0
# The first PostgreSQL whose standbys synchronise failover slots themselves.
SLOT_SYNC_SINCE = 170000
# PostgreSQL's answers to an advance whose WAL is gone here (file not found) or whose slot
# is invalidated: a replica's copy of a logical slot is then dropped and copied again.
WAL_GONE_SQLSTATES = frozenset({"58P01", "55000"})


def slot_name(member_name: str) -> str:
    """A member's slot: its name lowercased, anything not [a-z0-9_] turned into `_`."""
    return re.sub(r"[^a-z0-9_]", "_", member_name.lower())[:63]


def check_slot_name(name: str) -> str:
    if not SLOT_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a slot name ([a-z0-9_], at most 63): use slot_name(member_name)"
        )
    return name


def gone_for_longer(last_seen: Mapping[str, float], now: float, retention: float) -> set[str]:
    """The names in `last_seen` not seen for longer than `retention` seconds: a member's
    slot is kept that long after it was last seen (`member_slots_ttl`), then dropped."""
    return {name for name, seen in last_seen.items() if now - seen > retention}


# -- the permanent slots of the dynamic config ------------------------------------------------


@dataclass(frozen=True)
class PermanentSlot:
    """A slot of the dynamic `slots`: physical, or logical in `database` with `plugin`.
    `cluster_type`: kept only in a primary (or only in a standby) cluster."""

    name: str
    kind: SlotKind
    database: str | None = None
    plugin: str | None = None
    cluster_type: str | None = None


def permanent_slots(
    config: DynamicConfig, standby_cluster: bool = False
) -> dict[str, PermanentSlot]:
    """The dynamic `slots` as values (validated by haagent.config.dynamic), those of the
    other kind of cluster left out."""
    result = {}
    kind_of_cluster = "standby" if standby_cluster else "primary"
    for name, spec in config.slots.items():
        value: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {}
        kind: SlotKind = "logical" if value.get("type") == "logical" else "physical"
        if value.get("cluster_type", kind_of_cluster) != kind_of_cluster:
            continue
        if standby_cluster and kind == "logical":
            continue
        result[name] = PermanentSlot(
            name, kind, value.get("database"), value.get("plugin"), value.get("cluster_type")
        )
    return result


def has_permanent_logical_slots(config: DynamicConfig) -> bool:
    """Replicas then need hot_standby_feedback, so that the primary keeps the catalog rows
    their copies of the logical slots still need."""
    return config.postgresql.use_slots and any(
        slot.kind == "logical" for slot in permanent_slots(config).values()
    )


# -- the changes the HA loop asks for ---------------------------------------------------------


@dataclass(frozen=True)
class SlotSpec:
    """A slot to create or copy: physical, or logical in `database` with `plugin`.

    `failover`: created for PostgreSQL 17's slot synchronisation (the standbys' slot sync
    worker keeps a copy).  `warning`: logged once the slot is made (what its consumer
    may have missed)."""

    name: str
    kind: SlotKind = "physical"
    database: str | None = None
    plugin: str | None = None
    failover: bool = False
    warning: str = ""


@dataclass(frozen=True)
class SlotDrop:
    name: str
    database: str | None  # a logical slot is dropped while connected to its database
    why: str


@dataclass(frozen=True)
class SlotAdvance:
    """Move a slot nobody streams from here forward to `to`, never beyond it (PostgreSQL
    itself stops a standby's slot at its replay position)."""

    name: str
    kind: SlotKind
    database: str | None
    to: int


@dataclass(frozen=True)
class LostSlot:
    """A slot whose WAL is gone, and what haagent does about it (for its log line)."""

    name: str
    kind: SlotKind
    handling: str


@dataclass(frozen=True)
class SlotChanges:
    """What to change in this node's slots, in this order: drop, create, advance."""

    drop: tuple[SlotDrop, ...] = ()
    create: tuple[SlotSpec, ...] = ()
    advance: tuple[SlotAdvance, ...] = ()
    lost: tuple[LostSlot, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.drop or self.create or self.advance or self.lost)


# -- carrying them out ------------------------------------------------------------------------


def _hint(error: str) -> str:
    """What to do about a slot statement's error, when it is one people make."""
    if "wal_level" in error:
        return (
            ": logical slots need wal_level logical; set postgresql.parameters.wal_level: "
            "logical in the DCS config (haactl edit-config) and restart the members"
        )
    if "could not access file" in error or "could not load library" in error:
        return ": the output plugin is not installed on this node"
    if "does not exist" in error and "database" in error:
        return ": create the database, or change the slot's database in the DCS config"
    if "max_replication_slots" in error or "all replication slots are in use" in error:
        return ": raise postgresql.parameters.max_replication_slots in the DCS config"
    return ""


class SlotKeeper:
    """Applies `SlotChanges` to the local PostgreSQL; slow work runs in one background task.

    Errors are logged once per slot and message, not raised: a permanent slot that
    cannot be made (a missing plugin, wal_level too low) must not keep the HA loop
    from publishing its status or renewing anything."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self._pending: tuple[tuple[SlotSpec, ...], tuple[SlotAdvance, ...]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._logged: set[tuple[str, str]] = set()
        self._lost: set[str] = set()

    # -- the HA loop's side

    async def apply(self, changes: SlotChanges, timeout: float = 5.0) -> list[str]:
        """Report lost slots, drop and create physical slots now; hand logical creations
        and advances to the background.  What was done, for the log."""
        self.report_lost(changes.lost)
        done: list[str] = []
        for drop in changes.drop:
            if await self._run_logged(drop.name, self._drop(drop, timeout)):
                done.append(f"dropped {drop.name} ({drop.why})")
        later: list[SlotSpec] = []
        for spec in changes.create:
            if spec.kind == "logical":
                later.append(spec)
            elif await self._run_logged(spec.name, self._create_physical(spec, timeout)):
                done.append(f"created {spec.name}")
        if later or changes.advance:
            self._pending = (tuple(later), changes.advance)
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._background())
        return done

    def report_lost(self, lost: Iterable[LostSlot]) -> None:
        """One log line for each slot when it is first seen lost."""
        now = {slot.name: slot for slot in lost}
        for name in sorted(set(now) - self._lost):
            slot = now[name]
            log.warning(
                "%s: the %s replication slot %s on member %s is lost: PostgreSQL removed "
                "WAL it needed (wal_status lost, max_slot_wal_keep_size); %s",
                SLOT_LOST_CODE, slot.kind, name, self.instance.name, slot.handling,
            )  # fmt: skip
        self._lost = set(now)

    async def close(self) -> None:
        """Stop the background work (PostgreSQL is about to stop, or the agent)."""
        self._pending = None
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- statements

    def _params(self, database: str | None, timeout: float) -> ConnParams:
        params = self.instance.local_params(statement_timeout_ms=int(timeout * 1000))
        return dataclasses.replace(params, dbname=database) if database else params

    async def _drop(self, drop: SlotDrop, timeout: float) -> bool:
        sql = (
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s AND NOT active"
        )
        async with connection(self._params(drop.database, timeout), timeout, "dropping") as c:
            return bool(await query(c, sql, timeout, f"dropping slot {drop.name}", (drop.name,)))

    async def _create_physical(self, spec: SlotSpec, timeout: float) -> bool:
        sql = (
            "SELECT pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS "
            "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)"
        )
        async with connection(self._params(None, timeout), timeout, "creating") as c:
            rows = await query(c, sql, timeout, f"creating slot {spec.name}", (spec.name,) * 2)
        return bool(rows)

    async def _create_logical(self, spec: SlotSpec) -> bool:
        assert spec.database is not None and spec.plugin is not None
        failover = ", false, false, true" if spec.failover else ""
        sql = (
            f"SELECT pg_create_logical_replication_slot(%s, %s{failover}) WHERE NOT EXISTS "
            "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)"
        )
        timeout = STATEMENT_TIMEOUT
        async with connection(self._params(spec.database, timeout), timeout, "creating") as c:
            what = f"creating logical slot {spec.name} ({spec.plugin} in {spec.database})"
            rows = await query(c, sql, timeout, what, (spec.name, spec.plugin, spec.name))
        if rows:
            log.info("created the logical replication slot %s (%s in database %s)",
                     spec.name, spec.plugin, spec.database)  # fmt: skip
            if spec.warning:
                log.warning("%s", spec.warning)
        return bool(rows)

    async def _advance(self, advance: SlotAdvance, deadline: float) -> None:
        """Forward to `advance.to` in steps of at most ADVANCE_STEP of WAL, each bounded;
        stops where PostgreSQL stops (a standby's replay position)."""
        timeout = STATEMENT_TIMEOUT
        position_sql = (
            "SELECT CASE WHEN slot_type = 'logical' THEN confirmed_flush_lsn ELSE restart_lsn "
            "END::text FROM pg_replication_slots WHERE slot_name = %s AND NOT active "
            "AND wal_status IS DISTINCT FROM 'lost'"
        )
        params = self._params(advance.database, timeout)
        async with connection(params, timeout, f"advancing slot {advance.name}") as c:
            while time.monotonic() < deadline:
                rows = await query(c, position_sql, timeout, "slot position", (advance.name,))
                current = parse_lsn_or_none(str(rows[0][0])) if rows and rows[0][0] else None
                if current is None or current >= advance.to:
                    return
                step = advance.to
                if advance.kind == "logical":
                    step = min(advance.to, current + ADVANCE_STEP)
                rows = await query(
                    c,
                    "SELECT end_lsn::text FROM pg_replication_slot_advance(%s, %s::pg_lsn)",
                    timeout,
                    f"advancing slot {advance.name} to {format_lsn(step)}",
                    (advance.name, format_lsn(step)),
                )
                reached = parse_lsn_or_none(str(rows[0][0])) if rows and rows[0][0] else None
                if reached is None or reached <= current:
                    return  # as far as this node's WAL goes

    async def _advance_or_recopy(self, advance: SlotAdvance, deadline: float) -> None:
        """Advance; a replica's copy of a logical slot that cannot be advanced because the
        WAL from its restart_lsn is not here (copied before this replica had that WAL) is
        useless after a promotion: dropped, so that a fresh copy is taken from the primary,
        whose slot has moved on since (the primary's own slot is never touched here)."""
        try:
            await self._advance(advance, deadline)
        except QueryError as exc:
            if advance.kind != "logical" or exc.sqlstate not in WAL_GONE_SQLSTATES:
                raise
            sql = (
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active AND pg_is_in_recovery()"
            )
            timeout = STATEMENT_TIMEOUT
            params = self._params(advance.database, timeout)
            async with connection(params, timeout, f"dropping slot {advance.name}") as c:
                dropped = await query(c, sql, timeout, f"dropping slot {advance.name}",
                                      (advance.name,))  # fmt: skip
            if dropped:
                log.warning(
                    "the copy of the logical slot %s on %s cannot be advanced (%s): dropped, "
                    "to be copied again from the primary", advance.name, self.instance.name, exc,
                )  # fmt: skip

    async def _run_logged(self, name: str, step: Any) -> bool:
        """Await `step`; a failure is logged once per slot and message, never raised."""
        try:
            return bool(await step)
        except (QueryError, psycopg.Error, OSError, TimeoutError) as exc:
            text = error_text(exc)
            if (name, text) not in self._logged:
                self._logged.add((name, text))
                log.error("replication slot %s: %s%s", name, text, _hint(text))
            return False

    async def _background(self) -> None:
        while self._pending is not None:
            creates, advances = self._pending
            self._pending = None
            deadline = time.monotonic() + ROUND_BUDGET
            for spec in creates:
                await self._run_logged(spec.name, self._create_logical(spec))
            for advance in advances:
                if time.monotonic() >= deadline:
                    break
                await self._run_logged(advance.name, self._advance_or_recopy(advance, deadline))


# -- copying logical slots to a replica (PostgreSQL before 17) -------------------------------

COPY_SQL = (
    "SELECT slot_name, database, plugin, restart_lsn::text, "
    "pg_read_binary_file('pg_replslot/' || slot_name || '/state') "
    "FROM pg_replication_slots WHERE slot_type = 'logical' AND NOT temporary "
    "AND NOT pg_is_in_recovery() AND wal_status IS DISTINCT FROM 'lost' "
    "AND slot_name = ANY(%s)"
)


@dataclass(frozen=True)
class SlotCopy:
    """A logical slot's state file as read from the primary, and its restart_lsn there."""

    name: str
    state: bytes
    restart_lsn: int | None = None


# This standby's oldest WAL: a copy of a slot that needs older WAL could never be advanced.
OLDEST_WAL_SQL = (
    "SELECT min(substr(name, 9, 16)), "
    "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') "
    "FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'"
)


def segment_start(log_and_seg: str, segment_size: int) -> int:
    """The first LSN of a WAL segment from the 16 hex digits after a segment file's
    timeline (`00000000` `00000005`): log * 2^32 + seg * segment_size."""
    return (int(log_and_seg[:8], 16) << 32) + int(log_and_seg[8:], 16) * segment_size


def copyable(
    copies: Iterable[SlotCopy], oldest_wal: int | None
) -> tuple[list[SlotCopy], list[str]]:
    """The copies whose WAL this standby still has (from their restart_lsn on), and why
    the others are not copied yet."""
    good, later = [], []
    for copy in copies:
        if oldest_wal is None or (copy.restart_lsn is not None and copy.restart_lsn >= oldest_wal):
            good.append(copy)
        else:
            later.append(
                f"{copy.name} needs WAL from {format_lsn(copy.restart_lsn or 0)} and this "
                f"replica's oldest is {format_lsn(oldest_wal)}: copied once its consumer has "
                "moved it on"
            )
    return good, later


async def read_slot_states(
    params: ConnParams, wanted: Sequence[SlotSpec], timeout: float
) -> list[SlotCopy]:
    """The primary's state files of the `wanted` logical slots that match (same database
    and plugin) and are not lost; a mismatch is logged, not copied."""
    by_name = {spec.name: spec for spec in wanted}
    async with connection(params, timeout, "reading logical slots from the primary") as c:
        rows = await query(c, COPY_SQL, timeout, "reading slot state", (list(by_name),))
    found = []
    for name, database, plugin, restart, state in rows:
        spec = by_name.get(str(name))
        if spec is None or not isinstance(state, bytes | bytearray | memoryview):
            continue
        if (database, plugin) != (spec.database, spec.plugin):
            log.warning(
                "not copying the logical slot %s: on the primary it is %s in %s, the DCS "
                "config says %s in %s", name, plugin, database, spec.plugin, spec.database,
            )  # fmt: skip
            continue
        found.append(SlotCopy(str(name), bytes(state), parse_lsn_or_none(restart)))
    return found


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install_slot_states(data_dir: Path, copies: Iterable[SlotCopy]) -> list[str]:
    """Write each slot's state file into pg_replslot/<name>/ (PostgreSQL is stopped): into a
    temporary directory first, renamed into place, fsynced.  The names installed."""
    replslot = data_dir / "pg_replslot"
    installed = []
    for copy in copies:
        check_slot_name(copy.name)
        final = replslot / copy.name
        tmp = replslot / f"{copy.name}.tmp"
        if tmp.exists():
            for child in tmp.iterdir():
                child.unlink()
            tmp.rmdir()
        tmp.mkdir(mode=0o700)
        state = tmp / "state"
        fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, copy.state)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(tmp)
        if final.exists():
            for child in final.iterdir():
                child.unlink()
            final.rmdir()
        tmp.rename(final)
        _fsync_dir(final)
        installed.append(copy.name)
    _fsync_dir(replslot)
    return installed


async def copy_logical_slots(
    instance: Instance, upstream: Upstream, wanted: Sequence[SlotSpec], timeout: float
) -> str:
    """Copy the `wanted` logical slots from `upstream` (the primary) into this stopped-then-
    restarted standby: read, stop, install, start.  What was done."""
    rows = await instance.sql("SELECT current_setting('wal_level')", timeout, "wal_level")
    if rows[0][0] != "logical":
        raise PostgresError(
            f"cannot copy the logical slots {', '.join(s.name for s in wanted)}: wal_level is "
            f"{rows[0][0]} on {instance.name}, and PostgreSQL does not start with a logical slot "
            "below wal_level logical; set postgresql.parameters.wal_level: logical in the DCS "
            "config and restart this member"
        )
    auth = instance.settings.authentication
    cred = auth.rewind or auth.superuser
    params = instance.params_for(cred, upstream.host, upstream.port)
    copies = await read_slot_states(params, wanted, timeout)
    rows = await instance.sql(OLDEST_WAL_SQL, timeout, "the oldest WAL segment")
    oldest = None
    if rows and isinstance(rows[0][0], str) and isinstance(rows[0][1], int):
        oldest = segment_start(rows[0][0], rows[0][1])
    copies, later = copyable(copies, oldest)
    if not copies:
        asked = ", ".join(s.name for s in wanted)
        raise PostgresError(
            f"none of the logical slots {asked} can be copied from {upstream} yet"
            + "".join(f"; {why}" for why in later)
            + ("" if later else ": the primary has none of them (yet)")
        )
    await instance.stop("fast", timeout)
    names = await asyncio.to_thread(install_slot_states, instance.layout.data_dir, copies)
    await instance.start(timeout)
    done = f"copied {', '.join(names)} from {upstream}; restarted to load them"
    return done + "".join(f"; {why}" for why in later)


def is_copyable(version: int | None) -> bool:
    """Whether a replica of this PostgreSQL gets logical slots by copy (before 17) rather
    than from its own slot sync worker."""
    return version is None or version < SLOT_SYNC_SINCE


__all__ = [
    "SLOT_LOST_CODE",
    "LostSlot",
    "PermanentSlot",
    "SlotAdvance",
    "SlotChanges",
    "SlotCopy",
    "SlotDrop",
    "SlotKeeper",
    "SlotSpec",
    "check_slot_name",
    "copy_logical_slots",
    "gone_for_longer",
    "has_permanent_logical_slots",
    "install_slot_states",
    "is_copyable",
    "permanent_slots",
    "read_slot_states",
    "slot_name",
]
