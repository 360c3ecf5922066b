"""`haactl list`, `haactl explain`, `GET /cluster` and the HA core read one etcd view the
same way: the same primary position, the same lag for each member, the same verdict on
who could take over (`haagent.core.fitness`).

The view is the case where they used to differ: the `status` key's optime is older than
the leader's member key (the leader wrote its member key after its last status write).
"""

from __future__ import annotations

import json
from dataclasses import replace

from haactl_memory import LEADER_LSN, MIB, PREFIX, Cli, edit_member, put

from haagent.api import status_json
from haagent.core.fitness import member_lag, primary_position, unfit_reason
from haagent.core.rules.common import lag_behind_leader
from haagent.dcs import codec
from haagent.dcs.memory import MemoryStore
from haagent.dcs.model import ClusterView
from haagent_lab.fake_api import primary_status
from support.snapshots import replica_pg, snapshot

STALE_OPTIME = LEADER_LSN - 16 * MIB


def view_of(store: MemoryStore) -> ClusterView:
    kvs = store.range(PREFIX.encode(), (PREFIX[:-1] + "0").encode())
    return codec.decode_view({kv.key.decode()[len(PREFIX) :]: kv for kv in kvs})


def seed_drift(store: MemoryStore) -> ClusterView:
    put(store, "status", {"optime": STALE_OPTIME, "slots": {}, "retain_slots": []})
    # node2 publishes receive/replay positions (no xlog_location): 3 MiB and 5 MiB behind
    edit_member(store, "node2", xlog_location=None, receive_lsn=LEADER_LSN - 3 * MIB,
                replay_lsn=LEADER_LSN - 5 * MIB)  # fmt: skip
    return view_of(store)


def test_the_primary_position_is_the_newest_known(store: MemoryStore) -> None:
    view = seed_drift(store)
    assert view.status.optime == STALE_OPTIME
    assert primary_position(view) == LEADER_LSN  # the leader's member key is newer


def test_list_cluster_and_core_show_the_same_lag(cli: Cli, store: MemoryStore) -> None:
    view = seed_drift(store)
    expected = {"node2": 3 * MIB, "node3": 32 * MIB}
    assert {n: member_lag(view, view.members[n]) for n in expected} == expected

    listed = cli("list", "-f", "json")
    assert listed.exit_code == 0, listed.output
    rows = {r["Member"]: r.get("Lag in MB") for r in json.loads(listed.output)}
    assert rows == {"node1": None, "node2": 3.0, "node3": 32.0}

    status = replace(primary_status(), cluster=view, config=view.config or primary_status().config)
    members = {m["name"]: m for m in status_json.cluster(status)["members"]}
    assert {n: members[n]["lag"] for n in expected} == expected
    assert members["node2"]["receive_lag"] == 3 * MIB
    assert members["node2"]["replay_lag"] == 5 * MIB

    for name, lag in expected.items():
        member = view.members[name]
        pg = replica_pg(lsn=0, receive_lsn=member.receive_lsn, replay_lsn=member.replay_lsn)
        if member.xlog_location is not None:
            pg = replace(pg, receive_lsn=member.xlog_location, replay_lsn=member.xlog_location)
        assert lag_behind_leader(snapshot(name, pg, view)) == lag, name


def test_explain_and_core_give_the_same_verdict_and_code(cli: Cli, store: MemoryStore) -> None:
    view = seed_drift(store)
    config = view.config
    assert config is not None and config.maximum_lag_on_failover == MIB
    verdicts = {n: unfit_reason(view, config, m) for n, m in view.members.items()}
    assert verdicts["node1"] is not None and verdicts["node1"].code == "not_a_replica"
    assert verdicts["node2"] is not None and verdicts["node2"].code == "lagging"
    assert verdicts["node3"] is not None and verdicts["node3"].code == "lagging"
    assert "lags 3145728 bytes" in str(verdicts["node2"])

    explained = cli("explain", "--no-api", "-f", "json")
    assert explained.exit_code == 0, explained.output
    members = {m["name"]: m for m in json.loads(explained.output)["members"]}
    for name in ("node2", "node3"):
        verdict = verdicts[name]
        assert verdict is not None
        assert members[name]["reason_code"] == verdict.code
        assert members[name]["reasons"][0] == {"code": verdict.code, "text": verdict.text}
        assert members[name]["lag_bytes"] == member_lag(view, view.members[name])


def test_list_and_cluster_show_the_same_role_state_and_host(cli: Cli, store: MemoryStore) -> None:
    """A stopped replica whose key still says `streaming` is `stopped` in both."""
    put(store, "config", {"ttl": 30, "loop_wait": 10, "retry_timeout": 10,
                          "synchronous_mode": True})  # fmt: skip
    put(store, "sync", codec.encode_sync("node1", ["node2"]))
    edit_member(store, "node3", state="stopped", conn_url="postgres://127.0.0.13:5433/postgres")
    view = view_of(store)
    assert view.members["node3"].replication_state == "streaming"

    listed = {r["Member"]: r for r in json.loads(cli("list", "-f", "json").output)}
    config = view.config or primary_status().config
    status = replace(primary_status(), cluster=view, config=config)
    members = {m["name"]: m for m in status_json.cluster(status)["members"]}
    roles = {"leader": "Leader", "sync_standby": "Sync Standby", "replica": "Replica"}
    for name, member in members.items():
        assert listed[name]["Role"] == roles[member["role"]], name
        assert listed[name]["State"] == member["state"], name
        port = member.get("port", 5432)
        assert listed[name]["Host"] == member["host"] + (f":{port}" if port != 5432 else "")
    assert members["node3"]["state"] == "stopped" and members["node2"]["role"] == "sync_standby"
