"""Pure helpers: LSNs, slot names and retention, synchronous names, tool options."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haagent.postgres.bootstrap import initdb_args
from haagent.postgres.errors import ConfigurationError
from haagent.postgres.lsn import format_lsn, parse_lsn
from haagent.postgres.model import Upstream
from haagent.postgres.proc import read_pid_file
from haagent.postgres.replica import basebackup_args
from haagent.postgres.slots import check_slot_name, gone_for_longer, slot_name
from haagent.postgres.sync_names import parse_synchronous_standby_names, synchronous_standby_names


def test_parse_lsn() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert parse_lsn(" 0/3000028 ") == 0x3000028
    for bad in ("", "0", "x/1", "1/2/3", "123456789/0"):
        with pytest.raises(ValueError):
            parse_lsn(bad)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_lsn_round_trip(lsn: int) -> None:
    assert parse_lsn(format_lsn(lsn)) == lsn


@pytest.mark.parametrize(
    ("member", "slot"),
    [("node1", "node1"), ("Node-2", "node_2"), ("db.example.com", "db_example_com"), ("ü", "_")],
)
def test_slot_name(member: str, slot: str) -> None:
    assert slot_name(member) == slot
    assert check_slot_name(slot) == slot


def test_check_slot_name_refuses_member_names() -> None:
    with pytest.raises(ValueError, match="slot_name"):
        check_slot_name("Node-2")


def test_gone_for_longer_than_the_retention() -> None:
    seen = {"node1": 1000.0, "node2": 100.0, "node_3": 10.0}
    assert gone_for_longer(seen, now=1000.0, retention=1800) == set()
    assert gone_for_longer(seen, now=2000.0, retention=1800) == {"node2", "node_3"}
    assert gone_for_longer(seen, now=1900.0, retention=1800) == {"node_3"}  # 1800 s: kept


def test_synchronous_standby_names() -> None:
    assert synchronous_standby_names([]) == ""
    assert synchronous_standby_names(["node2"]) == 'FIRST 1 ("node2")'
    assert synchronous_standby_names(["a", "b", "a"], 5, "ANY") == 'ANY 2 ("a", "b")'
    assert synchronous_standby_names(['we"ird'], 0) == 'FIRST 1 ("we""ird")'
    assert synchronous_standby_names(["*"]) == "FIRST 1 (*)"
    with pytest.raises(ValueError):
        synchronous_standby_names(["a"], 1, "SOME")  # type: ignore[arg-type]


@given(
    st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1), max_size=4),
    st.integers(min_value=1, max_value=5),
    st.sampled_from(["FIRST", "ANY"]),
)
def test_synchronous_names_round_trip(names: list[str], count: int, method: str) -> None:
    names = [n for n in dict.fromkeys(names) if n != "*"]
    value = synchronous_standby_names(names, count, method)  # type: ignore[arg-type]
    parsed = parse_synchronous_standby_names(value)
    if names:
        assert parsed == (method, min(count, len(names)), names)
    else:
        assert parsed == ("FIRST", 0, [])


def test_parse_plain_synchronous_list() -> None:
    assert parse_synchronous_standby_names("a, b") == ("FIRST", 1, ["a", "b"])
    assert parse_synchronous_standby_names('2 ("x", y)') == ("FIRST", 2, ["x", "y"])


def test_initdb_args() -> None:
    args = initdb_args(["data-checksums", ("encoding", "UTF8"), ("--locale", "C")])
    safe = ["--auth-local=peer", "--auth-host=scram-sha-256"]  # not initdb's trust
    assert args == ["--data-checksums", "--encoding=UTF8", "--locale=C", *safe]
    assert initdb_args([("auth", "md5")]) == ["--auth=md5"]
    assert initdb_args([("auth-local", "trust")]) == [
        "--auth-local=trust", "--auth-host=scram-sha-256"
    ]  # fmt: skip
    for reserved in (("pgdata", "/x"), "pwprompt", ("username", "x"), ("U", "x")):
        with pytest.raises(ConfigurationError, match="set by haagent"):
            initdb_args([reserved])
    with pytest.raises(ConfigurationError, match="not an option name"):
        initdb_args(["data checksums; rm -rf /"])


def test_basebackup_args() -> None:
    assert basebackup_args([]) == ["--wal-method=stream", "--checkpoint=fast"]
    args = basebackup_args([("max-rate", "100M"), ("checkpoint", "spread")])
    assert args == ["--max-rate=100M", "--checkpoint=spread", "--wal-method=stream"]
    with pytest.raises(ConfigurationError, match="set by haagent"):
        basebackup_args([("format", "tar")])


def test_upstream_from_conn_url() -> None:
    up = Upstream.from_conn_url("n", "postgres://10.0.0.1:5433/postgres")
    assert up == Upstream("n", "10.0.0.1", 5433)
    assert Upstream.from_conn_url("n", "postgres://db/postgres").port == 5432
    with pytest.raises(ValueError, match="no host"):
        Upstream.from_conn_url("n", "nonsense")


def test_read_pid_file(tmp_path: Path) -> None:
    path = tmp_path / "postmaster.pid"
    assert read_pid_file(path) is None
    path.write_text("8191\n/data\n1795240544\n5432\n/tmp\n127.0.0.1\n  21  9\nready   \n")
    info = read_pid_file(path)
    assert info is not None
    assert (info.pid, info.data_dir, info.port, info.status) == (8191, "/data", 5432, "ready")
    path.write_text("8191\n/data\n")
    info = read_pid_file(path)
    assert info is not None and info.status is None
    path.write_text("garbage")
    assert read_pid_file(path) is None


def test_a_logical_slot_is_copied_only_when_the_replica_has_its_wal() -> None:
    from haagent.postgres.slots import SlotCopy, copyable, segment_start

    size = 16 << 20
    assert segment_start("0000000000000003", size) == 3 * size
    assert segment_start("0000000100000002", size) == (1 << 32) + 2 * size
    fresh, stale = SlotCopy("a", b"", 5 * size), SlotCopy("b", b"", 2 * size)
    good, later = copyable([fresh, stale], 3 * size)
    assert good == [fresh]
    assert later == [
        "b needs WAL from 0/2000000 and this replica's oldest is 0/3000000: copied once its "
        "consumer has moved it on"
    ]
    assert copyable([stale], None) == ([stale], [])  # unknown: copied


def test_the_replay_timeline_is_read_from_the_startup_process_title(tmp_path: Path) -> None:
    from haagent.postgres import proc

    titles = {
        "postgres: batman: startup recovering 000000020000000000000004": 2,
        "postgres: startup waiting for 0000000A0000000000000010": 10,
        "postgres: batman: walreceiver streaming 0/4000280": None,
    }
    for title, timeline in titles.items():
        match = proc._STARTUP_SEGMENT.search(title)
        assert (int(match.group(1), 16) if match else None) == timeline, title
    assert proc.startup_timeline(2**22 + 12345) is None  # no such process
