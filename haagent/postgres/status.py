"""The status of the local PostgreSQL in one bounded round: one query when running,
pg_controldata (cached until pg_control changes) when not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from haagent.postgres.controldata import ControlData, read_controldata
from haagent.postgres.errors import PostgresError
from haagent.postgres.instance import Instance
from haagent.postgres.lsn import parse_lsn_or_none
from haagent.postgres.model import PostgresStatus, ReplicationConnection, ReplicationSlot
from haagent.postgres.session import Conn

STATUS_SQL = """
SELECT
  r.in_recovery,
  CASE WHEN r.in_recovery THEN NULL ELSE pg_current_wal_lsn()::text END,
  CASE WHEN r.in_recovery THEN NULL ELSE pg_current_wal_flush_lsn()::text END,
  pg_last_wal_receive_lsn()::text,
  pg_last_wal_replay_lsn()::text,
  pg_last_xact_replay_timestamp(),
  CASE WHEN r.in_recovery THEN pg_is_wal_replay_paused() ELSE false END,
  CASE WHEN r.in_recovery THEN NULL
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  (SELECT timeline_id FROM pg_control_checkpoint()),
  w.status,
  w.received_tli,
  w.sender_host,
  (SELECT system_identifier FROM pg_control_system())::text,
  current_setting('server_version_num')::int,
  pg_postmaster_start_time(),
  EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart),
  current_setting('synchronous_standby_names'),
  (SELECT coalesce(json_agg(json_build_object(
      'usename', usename, 'application_name', application_name,
      'client_addr', host(client_addr), 'state', state, 'sync_state', sync_state,
      'sync_priority', sync_priority, 'write_lsn', write_lsn::text,
      'flush_lsn', flush_lsn::text, 'replay_lsn', replay_lsn::text)
    ORDER BY application_name), '[]'::json) FROM pg_stat_replication),
  (SELECT coalesce(json_agg(to_json(s) ORDER BY s.slot_name), '[]'::json)
     FROM pg_replication_slots AS s)
FROM (SELECT pg_is_in_recovery() AS in_recovery) AS r
LEFT JOIN pg_stat_wal_receiver AS w ON true
"""


def _time(value: Any) -> str | None:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else None


def replication_rows(value: Any) -> tuple[ReplicationConnection, ...]:
    rows = json.loads(value) if isinstance(value, str) else value
    return tuple(
        ReplicationConnection(
            usename=row["usename"] or "",
            application_name=row["application_name"] or "",
            client_addr=row["client_addr"],
            state=row["state"] or "",
            sync_state=row["sync_state"] or "",
            sync_priority=int(row["sync_priority"] or 0),
            write_lsn=parse_lsn_or_none(row["write_lsn"]),
            flush_lsn=parse_lsn_or_none(row["flush_lsn"]),
            replay_lsn=parse_lsn_or_none(row["replay_lsn"]),
        )
        for row in rows or []
    )


def _xid(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def slot_rows(value: Any) -> tuple[ReplicationSlot, ...]:
    """pg_replication_slots as `to_json` gives its rows (every column of this version)."""
    rows = json.loads(value) if isinstance(value, str) else value
    return tuple(
        ReplicationSlot(
            name=str(row["slot_name"]),
            kind="logical" if row.get("slot_type") == "logical" else "physical",
            database=row.get("database"),
            plugin=row.get("plugin"),
            active=bool(row.get("active")),
            temporary=bool(row.get("temporary")),
            restart_lsn=parse_lsn_or_none(row.get("restart_lsn")),
            confirmed_flush_lsn=parse_lsn_or_none(row.get("confirmed_flush_lsn")),
            wal_status=row.get("wal_status"),
            catalog_xmin=_xid(row.get("catalog_xmin")),
            xmin=_xid(row.get("xmin")),
            failover=bool(row.get("failover")),
            synced=bool(row.get("synced")),
        )
        for row in rows or []
    )


def status_from_row(row: tuple[Any, ...], base: dict[str, Any]) -> PostgresStatus:
    """Build the status from STATUS_SQL's one row (pure, for tests)."""
    (in_recovery, write, flush, receive, replay, replay_ts, paused, primary_tli, checkpoint_tli,
     receiver_status, received_tli, sender_host, sysid, version, started, pending, sync_names,
     replication, slots) = row  # fmt: skip
    timeline = (received_tli or checkpoint_tli) if in_recovery else primary_tli
    return PostgresStatus(
        **base,
        accepting=True,
        in_recovery=bool(in_recovery),
        timeline=timeline,
        system_identifier=sysid,
        server_version=version,
        postmaster_start_time=_time(started),
        write_lsn=parse_lsn_or_none(write),
        flush_lsn=parse_lsn_or_none(flush),
        receive_lsn=parse_lsn_or_none(receive),
        replay_lsn=parse_lsn_or_none(replay),
        replay_timestamp=_time(replay_ts),
        replay_paused=bool(paused),
        receiver_streaming=receiver_status == "streaming",
        primary_conninfo_host=sender_host,
        pending_restart=bool(pending),
        replication=replication_rows(replication),
        synchronous_standby_names=sync_names or "",
        slots=slot_rows(slots),
    )


@dataclass
class StatusReader:
    instance: Instance
    _control: tuple[tuple[int, int], ControlData] | None = None

    async def _controldata(self, timeout: float) -> ControlData | None:
        pg_control = self.instance.layout.data_dir / "global" / "pg_control"
        try:
            info = pg_control.stat()
        except OSError:
            return None
        key = (info.st_mtime_ns, info.st_size)
        if self._control is None or self._control[0] != key:
            self._control = (key, await read_controldata(self.instance.layout, timeout))
        return self._control[1]

    async def read(self, timeout: float = 2.0) -> PostgresStatus:
        layout = self.instance.layout
        base: dict[str, Any] = {
            "data_dir_exists": layout.data_dir.is_dir(),
            "data_dir_initialized": layout.initialized(),
        }
        pid = self.instance.postmaster()
        if pid is None:
            if not base["data_dir_initialized"]:
                return PostgresStatus(**base, running=False)
            try:
                control = await self._controldata(timeout)
            except (PostgresError, TimeoutError) as exc:
                return PostgresStatus(**base, running=False, error=f"pg_controldata: {exc}")
            if control is None:
                return PostgresStatus(**base, running=False)
            return PostgresStatus(
                **base,
                running=False,
                timeline=control.checkpoint_timeline,
                system_identifier=control.system_identifier,
                cluster_state=control.state,
            )
        base.update(running=True, postmaster_pid=pid.pid)

        async def fetch(conn: Conn) -> tuple[Any, ...]:
            cur = await conn.execute(STATUS_SQL.encode())
            row = await cur.fetchone()
            assert row is not None
            return tuple(row)

        try:
            row = await self.instance.session.run(fetch, timeout, "status query")
        except PostgresError as exc:
            return PostgresStatus(**base, error=str(exc))
        return status_from_row(row, base)
