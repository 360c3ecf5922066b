"""The health semantics of every check, table-driven over published statuses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from haagent.api.health import FOREVER, PATHS, Kind, check, lag_bytes, parse_lag, tags_match
from haagent.engine.status import PublishedStatus
from haagent_lab.fake_api import (
    LEADER_LSN,
    demoted_status,
    lagging_replica_status,
    primary_status,
    replica_status,
)

NOW = 1000.0
K = Kind


def _code(kind: Kind, status: PublishedStatus, query: dict[str, str] | None = None) -> int:
    return check(kind, status, query or {}, NOW, started_at=NOW - 1)[0]


PRIMARY = primary_status(loop_finished_at=NOW - 1)
SYNC_REPLICA = replica_status("node2", loop_finished_at=NOW - 1)
ASYNC_REPLICA = replica_status("node3", loop_finished_at=NOW - 1)
LAGGING = lagging_replica_status(loop_finished_at=NOW - 1)  # node3, 32 MiB behind
DEMOTED = demoted_status(loop_finished_at=NOW - 1)
DEMOTING = replace(PRIMARY, role="demoted")  # still running read-write, still holds the key
STOPPED_REPLICA = replace(
    SYNC_REPLICA, state="stopped", postgres=replace(SYNC_REPLICA.postgres, running=False)
)
NOLOADBALANCE = replace(ASYNC_REPLICA, tags={"noloadbalance": True, "dc": "east"})
STANDBY_LEADER = replace(SYNC_REPLICA, role="standby_leader", holds_leader_key=True, name="node2")
ARCHIVE_REPLICA = replace(
    ASYNC_REPLICA, postgres=replace(ASYNC_REPLICA.postgres, receiver_streaming=False)
)
EXPIRED_LEADER = replace(PRIMARY, leader_expires_at=NOW - 0.001)
UNLOCKED_PRIMARY = replace(PRIMARY, holds_leader_key=False)

# status, then the expected code of each check, in the order of COLUMNS.
COLUMNS = [
    K.PRIMARY, K.LEADER, K.STANDBY_LEADER, K.REPLICA, K.READ_ONLY, K.READ_ONLY_SYNC,
    K.HEALTH, K.SYNC, K.ASYNC, K.LIVENESS, K.READINESS,
]  # fmt: skip
TABLE = {
    "primary": (PRIMARY, [200, 200, 503, 503, 200, 200, 200, 503, 503, 200, 200]),
    "sync replica": (SYNC_REPLICA, [503, 503, 503, 200, 200, 200, 200, 200, 503, 200, 200]),
    "async replica": (ASYNC_REPLICA, [503, 503, 503, 200, 200, 503, 200, 503, 200, 200, 200]),
    "lagging replica": (LAGGING, [503, 503, 503, 200, 200, 503, 200, 503, 200, 200, 503]),
    "demoted": (DEMOTED, [503, 503, 503, 503, 503, 503, 503, 503, 503, 200, 503]),
    "demoting": (DEMOTING, [503, 503, 503, 503, 503, 503, 200, 503, 503, 200, 503]),
    "stopped replica": (STOPPED_REPLICA, [503, 503, 503, 503, 503, 503, 503, 503, 503, 200, 503]),
    "noloadbalance": (NOLOADBALANCE, [503, 503, 503, 503, 503, 503, 200, 503, 503, 200, 200]),
    "standby leader": (STANDBY_LEADER, [503, 200, 200, 503, 503, 503, 200, 503, 503, 200, 200]),
    "archive replica": (ARCHIVE_REPLICA, [503, 503, 503, 200, 200, 503, 200, 503, 200, 200, 503]),
    "expired lease": (EXPIRED_LEADER, [503, 503, 503, 503, 503, 503, 200, 503, 503, 200, 503]),
    "no key": (UNLOCKED_PRIMARY, [503, 503, 503, 503, 503, 503, 200, 503, 503, 200, 503]),
}


@pytest.mark.parametrize("name", list(TABLE))
def test_every_check_for_each_kind_of_node(name: str) -> None:
    status, expected = TABLE[name]
    got = [_code(kind, status) for kind in COLUMNS]
    assert dict(zip(COLUMNS, got, strict=True)) == dict(zip(COLUMNS, expected, strict=True))


def test_every_patroni_path_is_routed() -> None:
    for path in ["/", "/primary", "/master", "/read-write", "/leader", "/standby-leader",
                 "/replica", "/read-only", "/health", "/sync", "/async", "/liveness",
                 "/readiness", "/synchronous", "/asynchronous", "/standby_leader"]:  # fmt: skip
        assert path in PATHS


def _quorum(status: PublishedStatus) -> PublishedStatus:
    return replace(status, config=replace(status.config, quorum_commit=True))


def test_quorum_checks() -> None:
    """Under `synchronous_mode: quorum` a standby the sync key lists is a quorum standby:
    /quorum and /read-only-quorum pass, /sync and /async do not (as Patroni's API); under
    `synchronous_mode: on` it is a sync standby and never a quorum one."""
    kinds = [K.QUORUM, K.READ_ONLY_QUORUM, K.SYNC, K.READ_ONLY_SYNC, K.ASYNC]
    assert SYNC_REPLICA.config.synchronous_mode and SYNC_REPLICA.cluster.sync is not None
    expected = {
        "quorum standby": (_quorum(SYNC_REPLICA), [200, 200, 503, 503, 503]),
        "quorum primary": (_quorum(PRIMARY), [503, 200, 503, 200, 503]),
        "quorum, not listed": (_quorum(ASYNC_REPLICA), [503, 503, 503, 503, 200]),
        "sync standby": (SYNC_REPLICA, [503, 503, 200, 200, 503]),
    }
    for name, (status, codes) in expected.items():
        assert [_code(kind, status) for kind in kinds] == codes, name
    for path in ("/quorum", "/read-only-quorum", "/read-only-synchronous"):
        assert path in PATHS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1048576", 1048576),
        ("16kB", 16 * 1024),
        ("10MB", 10 * 1024**2),
        ("1GB", 1024**3),
        ("2TB", 2 * 1024**4),
        ("100B", 100),
        ("1.5MB", int(1.5 * 1024**2)),
        (" 64 MB ", 64 * 1024**2),
        ("16kb", None),  # units are case-sensitive, as in PostgreSQL
        ("16KB", None),
        ("-1", None),
        ("abc", None),
        ("", None),
        ("1e6", None),
        ("10 MiB", None),
    ],
)
def test_parse_lag(text: str, expected: int | None) -> None:
    assert parse_lag(text) == expected


@pytest.mark.parametrize(
    ("lag", "code"),
    [("33554431", 503), ("33554432", 200), ("32MB", 200), ("31MB", 503), ("1GB", 200),
     ("garbage", 200)],
)  # fmt: skip
def test_replica_lag_filter(lag: str, code: int) -> None:
    assert lag_bytes(LAGGING) == 32 * 1024 * 1024
    assert _code(K.REPLICA, LAGGING, {"lag": lag}) == code
    assert _code(K.ASYNC, LAGGING, {"lag": lag}) == code
    assert _code(K.READ_ONLY, LAGGING, {"lag": lag}) == code


def test_lag_is_ignored_by_leader_checks_and_unknown_positions_never_lag() -> None:
    assert _code(K.PRIMARY, PRIMARY, {"lag": "0"}) == 200
    unknown = replace(ASYNC_REPLICA, cluster=replace(ASYNC_REPLICA.cluster, status=replace(
        ASYNC_REPLICA.cluster.status, optime=None), members={}))  # fmt: skip
    assert lag_bytes(unknown) is None
    assert _code(K.REPLICA, unknown, {"lag": "0"}) == 200


def test_lag_falls_back_to_the_leader_member_position() -> None:
    view = replace(LAGGING.cluster, status=replace(LAGGING.cluster.status, optime=None))
    status = replace(LAGGING, cluster=view)
    assert lag_bytes(status) == 32 * 1024 * 1024  # node1's xlog_location is LEADER_LSN
    assert _code(K.REPLICA, status, {"lag": "1MB"}) == 503


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"tag_dc": "east"}, 200),
        ({"tag_dc": "EAST"}, 200),
        ({"tag_dc": "west"}, 503),
        ({"tag_rack": "r1"}, 503),
        ({"tag_dc": "east", "tag_rack": "r1"}, 503),
        ({"lag": "1kB", "tag_dc": "east"}, 200),
    ],
)
def test_tag_filters_on_replica_checks(query: dict[str, str], code: int) -> None:
    assert _code(K.REPLICA, ASYNC_REPLICA, query) == code
    assert _code(K.ASYNC, ASYNC_REPLICA, query) == code
    assert _code(K.READ_ONLY, ASYNC_REPLICA, query) == code


def test_tag_filters_are_ignored_by_leader_checks() -> None:
    for kind in (K.PRIMARY, K.LEADER, K.READ_ONLY):
        assert _code(kind, PRIMARY, {"tag_dc": "nowhere"}) == 200
    assert _code(K.STANDBY_LEADER, STANDBY_LEADER, {"tag_dc": "nowhere"}) == 200


def test_boolean_tags_match_their_text() -> None:
    status = replace(ASYNC_REPLICA, tags={"nofailover": True, "priority": 3})
    assert tags_match(status, {"tag_nofailover": "true", "tag_priority": "3"})
    assert not tags_match(status, {"tag_nofailover": "false"})


def test_replication_state_filter() -> None:
    assert _code(K.REPLICA, ASYNC_REPLICA, {"replication_state": "streaming"}) == 200
    assert _code(K.REPLICA, ARCHIVE_REPLICA, {"replication_state": "streaming"}) == 503
    assert _code(K.REPLICA, ARCHIVE_REPLICA, {"replication_state": "in archive recovery"}) == 200


def test_sync_needs_synchronous_mode() -> None:
    off = replace(SYNC_REPLICA, config=replace(SYNC_REPLICA.config, synchronous_mode=False))
    assert _code(K.SYNC, off) == 503
    assert _code(K.ASYNC, off) == 200


def test_a_primary_200_holds_until_the_lease_lapses() -> None:
    status = replace(PRIMARY, leader_expires_at=NOW + 5)
    assert check(K.PRIMARY, status, {}, NOW) == (200, NOW + 5)
    assert check(K.PRIMARY, status, {}, NOW + 5)[0] == 503
    assert check(K.LEADER, status, {}, NOW + 4.9) == (200, NOW + 5)
    assert check(K.PRIMARY, PRIMARY, {}, NOW) == (200, FOREVER)


@pytest.mark.parametrize(
    ("status", "age", "code"),
    [
        (PRIMARY, 29.9, 200),
        (PRIMARY, 30.0, 503),
        (SYNC_REPLICA, 59.9, 200),
        (SYNC_REPLICA, 60.0, 503),
        (replace(PRIMARY, paused=True), 1000.0, 200),
    ],
)
def test_liveness_thresholds(status: PublishedStatus, age: float, code: int) -> None:
    status = replace(status, loop_finished_at=NOW - age)
    assert check(K.LIVENESS, status, {}, NOW)[0] == code


def test_liveness_counts_the_server_start_before_the_first_cycle() -> None:
    fresh = replace(PRIMARY, loop_finished_at=0.0, loop_count=0)
    assert check(K.LIVENESS, fresh, {}, NOW, started_at=NOW - 10) == (200, NOW + 20)
    assert check(K.LIVENESS, fresh, {}, NOW, started_at=NOW - 31)[0] == 503


def test_readiness_lag_and_mode() -> None:
    # node3's default: 32 MiB behind, over maximum_lag_on_failover (1 MiB)
    assert _code(K.READINESS, LAGGING) == 503
    assert _code(K.READINESS, LAGGING, {"lag": "64MB"}) == 200
    behind_replay = replica_status("node3", replay_lsn=LEADER_LSN - 2 * 1024**2)
    received = replace(
        behind_replay, postgres=replace(behind_replay.postgres, receive_lsn=LEADER_LSN)
    )
    assert _code(K.READINESS, received) == 503
    assert _code(K.READINESS, received, {"mode": "write"}) == 200
