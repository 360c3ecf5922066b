"""Divergence decisions, pg_controldata and status parsing (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from haagent.postgres.controldata import ControlData, parse_controldata
from haagent.postgres.errors import PostgresError
from haagent.postgres.rewind import (
    decide_divergence,
    parse_history,
    rewind_blocker,
    wal_end_from_error,
)
from haagent.postgres.status import status_from_row

CONTROLDATA = """\
pg_control version number:            1300
Database system identifier:           7710499619154658024
Database cluster state:               shut down
Latest checkpoint location:           0/1511B00
Latest checkpoint's REDO location:    0/1511B00
Latest checkpoint's TimeLineID:       1
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
wal_log_hints setting:                off
Data page checksum version:           0
"""

HISTORY = "1\t0/30000D8\tno recovery target specified\n\n2\t0/5000000\tbecause\n"


def control(**changes: object) -> ControlData:
    fields = parse_controldata(CONTROLDATA)
    fields.update({k: str(v) for k, v in changes.items()})
    return ControlData.from_fields(fields)


def test_controldata() -> None:
    data = control()
    assert data.system_identifier == "7710499619154658024"
    assert data.clean and data.was_primary and not data.rewindable
    assert data.checkpoint_lsn == 0x1511B00 and data.checkpoint_timeline == 1
    crashed = control(**{"Database cluster state": "in production"})
    assert not crashed.clean and crashed.was_primary
    replica = control(**{"Database cluster state": "shut down in recovery"})
    assert replica.clean and not replica.was_primary
    assert control(**{"wal_log_hints setting": "on"}).rewindable
    assert control(**{"Data page checksum version": "1"}).rewindable
    with pytest.raises(PostgresError, match="unexpected pg_controldata"):
        ControlData.from_fields({})


def test_parse_history() -> None:
    assert parse_history(HISTORY) == [(1, 0x30000D8), (2, 0x5000000)]
    assert parse_history("") == []


def test_same_timeline_is_not_diverged() -> None:
    assert not decide_divergence(2, 0x6000000, 0x6000000, 2, []).diverged


def test_former_primary_that_wrote_past_the_switchpoint_diverged() -> None:
    div = decide_divergence(1, 0x300C138, 0x300C000, 3, parse_history(HISTORY))
    assert div.diverged and "past the leader's switch" in div.reason
    assert div.switchpoint == 0x30000D8


def test_clean_switchover_is_not_diverged() -> None:
    # The old primary's shutdown checkpoint ends exactly where the new timeline starts.
    div = decide_divergence(1, 0x30000D8, 0x3000060, 2, parse_history(HISTORY))
    assert not div.diverged


def test_unknown_end_or_foreign_timeline_counts_as_diverged() -> None:
    assert decide_divergence(1, None, 0x100, 2, parse_history(HISTORY)).diverged
    div = decide_divergence(4, 0x100, 0x100, 3, parse_history(HISTORY))
    assert div.diverged and "ahead" in div.reason
    div = decide_divergence(2, 0x100, 0x100, 3, [(1, 0x50)])
    assert div.diverged and "not in the leader's history" in div.reason


@pytest.mark.parametrize(
    ("stderr", "end"),
    [
        (
            "pg_waldump: error: error in WAL record at 0/1511B00: invalid record length at "
            "0/1511B78: wanted 24, got 0",
            0x1511B78,
        ),
        (
            "pg_waldump: error: error in WAL record at 0/10: record with incorrect prev-link "
            "0/5 at 0/2A8",
            0x2A8,
        ),
        (
            "pg_waldump: error: error in WAL record at 0/3FFFF00: invalid magic number 0000 in "
            "WAL segment 000000010000000000000004, LSN 0/4000000, offset 0",
            0x4000000,
        ),
        ('pg_waldump: error: could not find file "000000010000000000000009"', None),
        ("", None),
    ],
)
def test_wal_end_from_pg_waldump_errors(stderr: str, end: int | None) -> None:
    assert wal_end_from_error(stderr) == end


def test_rewind_blockers() -> None:
    assert "use_pg_rewind is off" in (rewind_blocker(False, control()) or "")
    assert "wal_log_hints" in (rewind_blocker(True, control()) or "")
    assert rewind_blocker(True, control(**{"wal_log_hints setting": "on"})) is None


def test_status_from_a_replica_row() -> None:
    started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    row = (
        True, None, None, "0/3000100", "0/3000080", started, False, None, 1,
        "streaming", 2, "127.0.0.11", "771", 150020, started, True, "", [], [],
    )  # fmt: skip
    status = status_from_row(row, {"data_dir_exists": True, "data_dir_initialized": True,
                                   "running": True})  # fmt: skip
    assert status.in_recovery and status.accepting and status.receiver_streaming
    assert status.timeline == 2  # the WAL receiver's, newer than the checkpoint's
    assert status.receive_lsn == 0x3000100 and status.replay_lsn == 0x3000080
    assert status.lsn == 0x3000100
    assert status.postmaster_start_time == "2026-01-02 03:04:05+00:00"
    assert status.pending_restart and status.server_version == 150020


def test_status_from_a_primary_row() -> None:
    replication = [
        {"usename": "replicator", "application_name": "node2", "client_addr": "127.0.0.12",
         "state": "streaming", "sync_state": "sync", "sync_priority": 1,
         "write_lsn": "0/10", "flush_lsn": "0/10", "replay_lsn": None},
    ]  # fmt: skip
    slots = [
        {"slot_name": "cdc", "slot_type": "logical", "database": "app", "plugin": "pgoutput",
         "active": True, "temporary": False, "restart_lsn": "0/4000000",
         "confirmed_flush_lsn": "0/4800000", "wal_status": "reserved", "catalog_xmin": "742"},
        {"slot_name": "node3", "slot_type": "physical", "database": None, "plugin": None,
         "active": False, "temporary": False, "restart_lsn": None,
         "confirmed_flush_lsn": None, "wal_status": "lost", "catalog_xmin": None,
         "xmin": "731"},
    ]  # fmt: skip
    row = (
        False, "0/5000000", "0/4FFFFF0", None, None, None, False, 3, 2,
        None, None, None, "771", 150020, None, False, 'FIRST 1 ("node2")', replication, slots,
    )  # fmt: skip
    status = status_from_row(row, {"data_dir_exists": True, "data_dir_initialized": True,
                                   "running": True})  # fmt: skip
    assert not status.in_recovery and status.timeline == 3 and status.lsn == 0x5000000
    assert status.flush_lsn == 0x4FFFFF0
    (conn,) = status.replication
    assert conn.application_name == "node2" and conn.sync_state == "sync"
    assert conn.write_lsn == 0x10 and conn.replay_lsn is None
    assert status.synchronous_standby_names == 'FIRST 1 ("node2")'
    cdc, node3 = status.slots
    assert (cdc.kind, cdc.database, cdc.plugin, cdc.active) == ("logical", "app", "pgoutput", True)
    assert cdc.position == 0x4800000 and cdc.restart_lsn == 0x4000000 and cdc.catalog_xmin == 742
    assert not cdc.lost and not cdc.failover and not cdc.synced
    assert node3.kind == "physical" and node3.lost and node3.position is None
    assert node3.xmin == 731 and cdc.xmin is None
