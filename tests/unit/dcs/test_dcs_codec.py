"""The exact bytes of Patroni's keys, and decoding them back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haagent.dcs import codec
from haagent.dcs.kv import KeyValue
from haagent.dcs.model import (
    HISTORY_ROWS_CEILING,
    ClusterStatus,
    Failover,
    HistoryEntry,
    Leader,
    Member,
    SyncState,
    bounded_history,
)


def kv(key: str, value: bytes, rev: int = 5, lease: int = 0) -> KeyValue:
    return KeyValue(b"/service/c/" + key.encode(), value, rev, rev, 1, lease)


def test_leader_is_the_plain_member_name() -> None:
    assert codec.encode_leader("node1") == b"node1"
    assert codec.decode_leader(kv("leader", b"node1", 7, lease=42)) == Leader("node1", 42, 7)


def test_initialize_is_a_decimal_string_or_empty() -> None:
    assert codec.encode_initialize("7331955813123612345") == b"7331955813123612345"
    assert codec.encode_initialize("") == b""
    with pytest.raises(ValueError, match="decimal"):
        codec.encode_initialize("abc")


def test_member_json_is_compact_and_keeps_the_given_order() -> None:
    data = {
        "conn_url": "postgres://127.0.0.11:5432/postgres",
        "api_url": "http://127.0.0.11:8008/patroni",
        "state": "running",
        "role": "primary",
        "version": "4.1.0",
        "xlog_location": 67108960,
        "timeline": 2,
        "tags": {"nofailover": False},
    }
    assert codec.encode_member(data) == (
        b'{"conn_url":"postgres://127.0.0.11:5432/postgres",'
        b'"api_url":"http://127.0.0.11:8008/patroni","state":"running","role":"primary",'
        b'"version":"4.1.0","xlog_location":67108960,"timeline":2,"tags":{"nofailover":false}}'
    )


def test_member_round_trip_through_the_model() -> None:
    value = (
        b'{"conn_url":"postgres://h:5432/postgres","api_url":"http://h:8008/patroni",'
        b'"state":"running","role":"replica","version":"4.1.0","replication_state":"streaming",'
        b'"receive_lsn":100,"replay_lsn":90,"tags":{"failover_priority":2},"custom":"kept"}'
    )
    member = codec.decode_member("node2", value, 11)
    assert member.name == "node2" and member.role == "replica" and member.mod_revision == 11
    assert (member.receive_lsn, member.replay_lsn, member.lsn) == (100, 90, 100)
    assert member.failover_priority == 2
    again = codec.encode_member(codec.member_to_dict(member))
    assert codec.decode_member("node2", again) == member
    assert b'"custom":"kept"' in again
    assert again.startswith(b'{"conn_url":"postgres://h:5432/postgres","api_url":')


def test_member_to_dict_drops_unset_optional_fields() -> None:
    member = Member("n", "postgres://h:1/postgres", "http://h:2/patroni", "running", "primary", "1")
    assert codec.member_to_dict(member) == {
        "conn_url": "postgres://h:1/postgres",
        "api_url": "http://h:2/patroni",
        "state": "running",
        "role": "primary",
        "version": "1",
    }


def test_sync_value_matches_patroni() -> None:
    assert codec.encode_sync("node1", ["node3", "node2"], 0) == (
        b'{"leader":"node1","sync_standby":"node2,node3","quorum":0}'
    )
    assert codec.encode_sync("node1", [], 0) == b'{"leader":"node1","sync_standby":null,"quorum":0}'
    decoded = codec.decode_sync(b'{"leader":"node1","sync_standby":"node2,node3","quorum":1}', 4)
    assert decoded == SyncState("node1", ("node2", "node3"), 1)
    assert decoded.mod_revision == 4
    assert codec.decode_sync(b'{"leader":"node1","sync_standby":null}') == SyncState("node1")


def test_failover_value_and_the_cleared_form() -> None:
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert codec.encode_failover("node1", "node2", at) == (
        b'{"leader":"node1","member":"node2","scheduled_at":"2026-03-01T12:30:00+00:00"}'
    )
    assert codec.encode_failover(None, "node2") == b'{"member":"node2"}'
    assert codec.CLEARED_FAILOVER == b"{}"
    assert codec.decode_failover(b"{}") is None
    tz = timezone(timedelta(hours=2))
    decoded = codec.decode_failover(b'{"leader":"a","scheduled_at":"2026-03-01T14:30:00+02:00"}')
    assert decoded == Failover("a", None, datetime(2026, 3, 1, 14, 30, tzinfo=tz))
    with pytest.raises(ValueError, match="timezone"):
        codec.encode_failover("a", "b", datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="timezone"):
        codec.decode_failover(b'{"leader":"a","scheduled_at":"2026-03-01T14:30:00"}')


def test_history_rows_match_patroni() -> None:
    history = [
        HistoryEntry(1, 25623960, "no recovery target specified"),
        HistoryEntry(
            2, 50331808, "no recovery target specified", "2026-01-01T10:00:00+00:00", "n2"
        ),
    ]
    value = codec.encode_history(history)
    assert value == (
        b'[[1,25623960,"no recovery target specified"],'
        b'[2,50331808,"no recovery target specified","2026-01-01T10:00:00+00:00","n2"]]'
    )
    assert codec.decode_history(value) == tuple(history)
    only_leader = [HistoryEntry(3, 7, "r", None, "n3")]
    assert codec.encode_history(only_leader) == b'[[3,7,"r",null,"n3"]]'
    assert codec.decode_history(codec.encode_history(only_leader)) == tuple(only_leader)


def test_status_has_integer_lsns() -> None:
    value = codec.encode_status(67109064, {"node2": 67108960}, ["node2"])
    assert value == b'{"optime":67109064,"slots":{"node2":67108960},"retain_slots":["node2"]}'
    assert codec.decode_status(value) == ClusterStatus(67109064, {"node2": 67108960}, ("node2",))
    assert codec.encode_status(5, {}) == b'{"optime":5,"slots":{},"retain_slots":[]}'
    # haagent's leader adds its timeline: replicas trust the positions of their own timeline.
    with_timeline = codec.encode_status(5, {}, (), 3)
    assert with_timeline == b'{"optime":5,"slots":{},"retain_slots":[],"timeline":3}'
    assert codec.decode_status(with_timeline).timeline == 3
    with pytest.raises(ValueError, match="timeline"):
        codec.decode_status(b'{"optime":5,"timeline":"x"}')
    lost = codec.encode_status(5, {}, (), 3, ["cdc"])
    assert lost.endswith(b',"timeline":3,"lost_slots":["cdc"]}')
    assert codec.decode_status(lost).lost_slots == ("cdc",)
    odd = b'{"optime":5,"lost_slots":["ok",7,{"a":1},"Not A Slot"]}'
    assert codec.decode_status(odd).lost_slots == ("ok",)  # only slot names


def test_failsafe_and_config_are_compact_json() -> None:
    assert codec.encode_failsafe({"node1": "http://h:8008/patroni"}) == (
        b'{"node1":"http://h:8008/patroni"}'
    )
    assert codec.encode_config({"ttl": 30, "postgresql": {"use_pg_rewind": True}}) == (
        b'{"ttl":30,"postgresql":{"use_pg_rewind":true}}'
    )
    config = codec.decode_config(b'{"ttl":20,"loop_wait":5,"retry_timeout":5}')
    assert (config.ttl, config.loop_wait, config.retry_timeout) == (20, 5, 5)


def test_decode_view_of_a_full_read() -> None:
    kvs = {
        "leader": kv("leader", b"node1", 9, lease=77),
        "members/node1": kv("members/node1", b'{"conn_url":"c","api_url":"a","role":"primary"}'),
        "members/node2": kv("members/node2", b'{"conn_url":"c2","api_url":"a2"}'),
        "initialize": kv("initialize", b"123"),
        "config": kv("config", b'{"ttl":20,"loop_wait":5,"retry_timeout":5}', 3),
        "sync": kv("sync", b'{"leader":"node1","sync_standby":"node2","quorum":0}', 6),
        "failover": kv("failover", b"{}", 8),
        "history": kv("history", b'[[1,100,"r"]]'),
        "status": kv("status", b'{"optime":200,"slots":{},"retain_slots":[]}'),
        "failsafe": kv("failsafe", b'{"node1":"http://x"}'),
    }
    view = codec.decode_view(kvs, revision=12)
    assert view.revision == 12
    assert view.leader == Leader("node1", 77, 9)
    assert sorted(view.members) == ["node1", "node2"]
    assert view.initialize == "123"
    assert view.config is not None and view.config.ttl == 20 and view.config_revision == 3
    assert view.sync == SyncState("node1", ("node2",), 0) and view.sync_revision == 6
    assert view.failover is None and view.failover_revision == 8
    assert view.history == (HistoryEntry(1, 100, "r"),)
    assert view.status.optime == 200
    assert view.failsafe == {"node1": "http://x"}
    assert view.last_timeline == 2


def test_empty_initialize_means_bootstrap_in_progress() -> None:
    view = codec.decode_view({"initialize": kv("initialize", b"")})
    assert view.initialize == ""
    assert codec.decode_view({}).initialize is None


def test_bad_values_are_logged_and_treated_as_absent(caplog: pytest.LogCaptureFixture) -> None:
    kvs = {
        "members/bad": kv("members/bad", b"{not json"),
        "members/list": kv("members/list", b"[1,2]"),
        "members/ok": kv("members/ok", b'{"conn_url":"c","api_url":"a"}'),
        "config": kv("config", b'{"ttl":"soon"}', 4),
        "failover": kv("failover", b"\xff\xfe", 6),
        "history": kv("history", b'{"a":1}'),
        "status": kv("status", b"nope"),
        "sync": kv("sync", b'{"sync_standby":5}', 8),
    }
    with caplog.at_level(logging.WARNING, logger="haagent.dcs"):
        view = codec.decode_view(kvs, revision=9)
    assert list(view.members) == ["ok"]
    assert view.config is None and view.config_revision == 4
    assert view.failover is None and view.failover_revision == 6
    assert view.sync is None and view.sync_revision == 8
    assert view.history == () and view.status == ClusterStatus()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ignoring etcd key members/bad" in w for w in warnings)
    assert any("ignoring etcd key config" in w for w in warnings)


def test_decode_cache_decodes_each_revision_once(caplog: pytest.LogCaptureFixture) -> None:
    cache: codec.DecodeCache = {}
    kvs = {"members/bad": kv("members/bad", b"{", 3)}
    with caplog.at_level(logging.WARNING, logger="haagent.dcs"):
        codec.decode_view(kvs, cache=cache)
        codec.decode_view(kvs, cache=cache)
    assert len([r for r in caplog.records if "members/bad" in r.getMessage()]) == 1


def test_legacy_optime_key_is_read_when_status_is_absent() -> None:
    view = codec.decode_view({"optime/leader": kv("optime/leader", b"4242")})
    assert view.status.optime == 4242


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)


@given(
    leader=st.none() | names,
    standbys=st.lists(names, max_size=4, unique=True),
    quorum=st.integers(0, 5),
)
def test_sync_round_trip(leader: str | None, standbys: list[str], quorum: int) -> None:
    decoded = codec.decode_sync(codec.encode_sync(leader, standbys, quorum))
    assert decoded == SyncState(leader, tuple(sorted(standbys)), quorum)


@given(
    rows=st.lists(
        st.builds(
            HistoryEntry,
            timeline=st.integers(1, 1000),
            lsn=st.integers(0, 2**63),
            reason=st.text(max_size=20),
            timestamp=st.none() | st.just("2026-01-01T00:00:00+00:00"),
            new_leader=st.none() | names,
        ),
        max_size=5,
    )
)
def test_history_round_trip(rows: list[HistoryEntry]) -> None:
    assert codec.decode_history(codec.encode_history(rows)) == tuple(rows)


@given(
    optime=st.integers(0, 2**63),
    slots=st.dictionaries(names, st.integers(0, 2**63), max_size=4),
    retain=st.lists(names, max_size=3),
)
def test_status_round_trip(optime: int, slots: dict[str, int], retain: list[str]) -> None:
    decoded = codec.decode_status(codec.encode_status(optime, slots, retain))
    assert decoded == ClusterStatus(optime, slots, tuple(retain))


def test_history_is_bounded_by_max_timelines_history_and_a_ceiling() -> None:
    rows = tuple(HistoryEntry(t, t, "failover") for t in range(1, HISTORY_ROWS_CEILING + 6))
    assert [r.timeline for r in bounded_history(rows[:5], 2)] == [4, 5]
    assert bounded_history(rows[:5], 0) == rows[:5]  # 0: every row, as in Patroni
    assert len(bounded_history(rows, 0)) == HISTORY_ROWS_CEILING
    assert bounded_history(rows, 0)[-1] == rows[-1]
