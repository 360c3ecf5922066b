"""The JSON documents of GET /, /patroni, /cluster, /history, /config."""

from __future__ import annotations

import json
from dataclasses import replace

from haagent.api import status_json
from haagent.config.model import DynamicConfig
from haagent.postgres.lsn import format_lsn
from haagent_lab.fake_api import (
    CONFIG_RAW,
    LEADER_LSN,
    SYSTEM_ID,
    demoted_status,
    primary_status,
    replica_status,
    scheduled_switchover,
)


def test_primary_status_fields() -> None:
    doc = status_json.node_status(primary_status())
    assert doc["state"] == "running"
    assert doc["role"] == "primary"
    assert doc["server_version"] == 150006
    assert doc["postmaster_start_time"] == "2024-09-24 09:22:30.123456+00:00"
    assert doc["timeline"] == 2
    assert doc["xlog"] == {"location": LEADER_LSN}
    assert doc["cluster_unlocked"] is False
    assert doc["dcs_last_seen"] == 1727169750 and isinstance(doc["dcs_last_seen"], int)
    assert doc["database_system_identifier"] == SYSTEM_ID
    assert doc["pause"] is False
    assert doc["tags"] == {"clonefrom": True}
    assert doc["replication"][0] == {
        "usename": "replicator",
        "application_name": "node2",
        "client_addr": "127.0.0.12",
        "state": "streaming",
        "sync_state": "sync",
        "sync_priority": 1,
    }
    assert doc["patroni"] == {"version": "4.1.0", "scope": "demo", "name": "node1"}
    assert doc["haagent"] == {
        "reason_code": "leader_renewed",
        "reason_text": "renewed the leader key",
        "watchdog": "off",
    }
    assert "pending_restart" not in doc and "failsafe_mode_is_active" not in doc
    json.dumps(doc)


def test_replica_status_fields() -> None:
    doc = status_json.node_status(replica_status(replay_lsn=LEADER_LSN - 10))
    assert doc["role"] == "replica"
    assert doc["xlog"] == {
        "received_location": LEADER_LSN - 10,
        "replayed_location": LEADER_LSN - 10,
        "replayed_timestamp": "2024-09-24 10:00:00+00:00",
        "paused": False,
    }
    assert doc["replication_state"] == "streaming"
    assert doc["replication"] == []


def test_stopped_node_leaves_out_what_it_does_not_know() -> None:
    status = demoted_status(pending_restart=True, failsafe_active=True, paused=True)
    status = replace(status, cluster=replace(status.cluster, leader=None))
    doc = status_json.node_status(status)
    assert doc["role"] == "demoted" and doc["state"] == "stopped"
    for key in ("xlog", "server_version", "timeline", "replication"):
        assert key not in doc
    assert doc["cluster_unlocked"] is True
    assert doc["pending_restart"] is True
    assert doc["failsafe_mode_is_active"] is True
    assert doc["pause"] is True
    assert doc["haagent"]["reason_code"] == "demoted_lost_dcs"


def test_cluster_document() -> None:
    doc = status_json.cluster(scheduled_switchover(replica_status(paused=True)))
    assert doc["scope"] == "demo"
    assert doc["pause"] is True
    assert doc["scheduled_switchover"] == {
        "at": "2030-01-01T12:00:00+00:00",
        "from": "node1",
        "to": "node2",
    }
    members = {m["name"]: m for m in doc["members"]}
    assert [m["name"] for m in doc["members"]] == ["node1", "node2", "node3"]
    assert members["node1"] == {
        "name": "node1",
        "role": "leader",
        "state": "running",
        "api_url": "http://127.0.0.11:8008/patroni",
        "host": "127.0.0.11",
        "port": 5432,
        "timeline": 2,
    }
    assert members["node2"]["role"] == "sync_standby"
    assert members["node2"]["state"] == "streaming"
    assert members["node2"]["lag"] == 0
    node3 = members["node3"]
    assert node3["role"] == "replica"
    assert node3["lag"] == 4096 and node3["replay_lag"] == 8192 and node3["receive_lag"] == 4096
    assert node3["replay_lsn"] == "0/4FFE060"
    assert node3["tags"] == {"dc": "east"}


def test_cluster_lag_unknown_and_async_mode() -> None:
    status = primary_status(config=DynamicConfig(synchronous_mode=False))
    view = status.cluster
    members = dict(view.members)
    members["node3"] = replace(members["node3"], receive_lsn=None, replay_lsn=None)
    status = replace(status, cluster=replace(view, members=members))
    doc = {m["name"]: m for m in status_json.cluster(status)["members"]}
    assert doc["node2"]["role"] == "replica"
    assert doc["node3"]["lag"] == "unknown"
    assert "pause" not in status_json.cluster(status)


def test_history_config_failsafe() -> None:
    status = primary_status()
    assert status_json.history(status) == [
        [1, 0x3000000, "no recovery target specified", "2024-09-24T09:22:33+00:00", "node1"]
    ]
    assert status_json.config(status) == CONFIG_RAW
    assert status_json.config(replace(status, cluster=replace(status.cluster, config=None))) is None
    assert status_json.failsafe(status) is None
    on = replace(status, config=DynamicConfig(failsafe_mode=True))
    assert status_json.failsafe(on) == {}


def test_format_lsn() -> None:
    assert format_lsn(0x4000060) == "0/4000060"
    assert format_lsn((3 << 32) + 0xAB) == "3/AB"


def test_sync_and_quorum_standby_flags() -> None:
    """`GET /` marks a replica the sync key names: `sync_standby` under synchronous_mode
    on, `quorum_standby` under quorum commit (as Patroni's); neither on the primary or an
    unlisted replica."""
    sync = replica_status("node2")
    assert sync.config.synchronous_mode and sync.cluster.sync is not None
    doc = status_json.node_status(sync)
    assert doc["sync_standby"] is True and "quorum_standby" not in doc
    quorum = replace(sync, config=replace(sync.config, quorum_commit=True))
    doc = status_json.node_status(quorum)
    assert doc["quorum_standby"] is True and "sync_standby" not in doc
    for other in (replica_status("node3"), primary_status()):
        doc = status_json.node_status(other)
        assert "sync_standby" not in doc and "quorum_standby" not in doc
