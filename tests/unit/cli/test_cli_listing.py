"""`haactl list` / `topology`: the table, its title and footer, the other formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import yaml
from haactl_memory import MIB, SYSID, Cli, edit_member, put

from haagent.cli.commands_list import lag_mb, tree_order
from haagent.cli.table import Table, pretty
from haagent.dcs import codec
from haagent.dcs.memory import MemoryStore


def test_pretty_table_has_the_cluster_in_the_title_and_sorted_rows(cli: Cli) -> None:
    result = cli("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"+ Cluster: stampede ({SYSID}) -")
    assert lines[0].endswith("+")
    assert len({len(line) for line in lines[:7]}) == 1  # a rectangle
    assert lines[1].split("|")[1:-1] == [
        " Member ", " Host       ", " Role    ", " State     ", " TL ", " Lag in MB ",
    ]  # fmt: skip
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[3:6]]
    assert rows == [
        ["node1", "127.0.0.11", "Leader", "running", "2", ""],
        ["node2", "127.0.0.12", "Replica", "streaming", "2", "0.0"],
        ["node3", "127.0.0.13", "Replica", "streaming", "2", "32.0"],
    ]


def test_footer_shows_maintenance_mode_and_a_scheduled_switchover(
    cli: Cli, store: MemoryStore
) -> None:
    put(store, "config", {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "pause": True})
    when = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)
    put(store, "failover", codec.encode_failover("node1", "node2", when))
    result = cli("list")
    assert result.exit_code == 0, result.output
    tail = result.output.splitlines()[-4:]
    assert tail == [
        " Maintenance mode: on",
        " Switchover scheduled at: 2030-01-31T12:00:00+00:00",
        "                    from: node1",
        "                      to: node2",
    ]


def test_footer_notes_the_leaders_lost_slots(cli: Cli, store: MemoryStore) -> None:
    put(store, "status", codec.encode_status(100, {}, (), 2, ["cdc"]))
    result = cli("list")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        " Replication slot cdc on node1 is lost (replication_slot_lost): PostgreSQL removed "
        "WAL it needed; see that member's log"
    )


def test_sync_standby_unknown_lag_and_pending_restart(cli: Cli, store: MemoryStore) -> None:
    put(store, "config", {"ttl": 30, "loop_wait": 10, "retry_timeout": 10,
                          "synchronous_mode": True})  # fmt: skip
    put(store, "sync", codec.encode_sync("node1", ["node2"]))
    edit_member(store, "node3", xlog_location=None, pending_restart=True, state="starting")
    result = cli("list")
    assert result.exit_code == 0, result.output
    assert "Pending restart" in result.output.splitlines()[1]
    node2 = next(line for line in result.output.splitlines() if "node2" in line)
    node3 = next(line for line in result.output.splitlines() if "node3" in line)
    assert "Sync Standby" in node2
    assert "unknown" in node3 and "starting" in node3 and "*" in node3


def test_no_leader_is_said_below_the_table(cli: Cli, store: MemoryStore) -> None:
    store.txn([], [], [])
    from haagent.dcs.kv import Delete

    store.txn([], [Delete(b"/service/stampede/leader")], [])
    result = cli("list")
    assert result.exit_code == 0
    assert "No member holds the leader key" in result.output
    assert "Leader" not in result.output.replace("leader key", "")


def test_json_yaml_and_tsv_carry_the_same_fields(cli: Cli) -> None:
    records = json.loads(cli("list", "-f", "json").output)
    assert records[0] == {
        "Cluster": "stampede", "Member": "node1", "Host": "127.0.0.11", "Role": "Leader",
        "State": "running", "TL": 2,
    }  # fmt: skip
    assert records[2]["Lag in MB"] == 32.0
    assert yaml.safe_load(cli("list", "-f", "yaml").output) == records
    tsv = cli("list", "-f", "tsv").output.splitlines()
    assert tsv[0].split("\t") == ["Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"]
    assert tsv[3].split("\t") == ["stampede", "node3", "127.0.0.13", "Replica", "streaming",
                                  "2", "32.0"]  # fmt: skip


def test_lag_is_rounded_to_one_decimal_mib(cli: Cli, store: MemoryStore) -> None:
    from haagent.dcs.codec import decode_view
    from haagent.dcs.kv import prefix_range_end

    edit_member(store, "node3", xlog_location=0x5000060 - int(1.26 * MIB))
    prefix = b"/service/stampede/"
    kvs = {
        kv.key[len(prefix) :].decode(): kv for kv in store.range(prefix, prefix_range_end(prefix))
    }
    view = decode_view(kvs)
    assert lag_mb(view, view.members["node3"]) == 1.3
    assert lag_mb(view, view.members["node1"]) is None


def test_topology_nests_cascading_replicas(cli: Cli, store: MemoryStore) -> None:
    """The real tree: node3 under node2 while node2 runs (with or without slots), under the
    leader otherwise."""
    edit_member(store, "node3", tags={"replicatefrom": "node2"})

    def names() -> list[str]:
        result = cli("topology")
        assert result.exit_code == 0, result.output
        return [line.split("|")[1].rstrip() for line in result.output.splitlines()[3:6]]

    assert names() == [" node1", " + node2", "   + node3"]
    put(store, "config", {"ttl": 30, "loop_wait": 10, "retry_timeout": 10,
                          "postgresql": {"use_slots": False}})  # fmt: skip
    assert names() == [" node1", " + node2", "   + node3"]
    edit_member(store, "node2", state="stopped")
    assert names() == [" node1", " + node2", " + node3"]


def test_tree_order_survives_a_replicatefrom_cycle(store: MemoryStore) -> None:
    from haagent.dcs.model import ClusterView, Member

    members = {
        "a": Member("a", "", "", tags={"replicatefrom": "b"}),
        "b": Member("b", "", "", tags={"replicatefrom": "a"}),
    }
    order = tree_order(ClusterView(members=members))
    assert sorted(m.name for _, m in order) == ["a", "b"]


def test_a_long_title_widens_the_table() -> None:
    table = Table(columns=["A"], rows=[["x"]], title="Cluster: a-very-long-cluster-name (1)")
    lines = pretty(table).splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[0].startswith("+ Cluster: a-very-long-cluster-name (1) ")


def test_unknown_cluster_is_an_error_that_names_the_prefix(cli: Cli) -> None:
    result = cli("list", "nosuchcluster")
    assert result.exit_code == 1
    assert "/service/nosuchcluster/" in result.output and "check the cluster name" in result.output


def test_timestamp_option_prints_the_time_first(cli: Cli) -> None:
    result = cli("list", "-t")
    assert result.exit_code == 0
    first = result.output.splitlines()[0]
    assert first[:2] == "20" and first.count(":") == 2


def test_watch_refreshes_and_keeps_going_when_etcd_is_away(
    cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 1:
            put(store, "leader", "node2")
        elif len(pauses) == 2:
            store.partition("haactl")
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr("haagent.cli.commands_list.pause", fake_sleep)
    result = cli("list", "-w", "5")
    assert result.exit_code == 0, result.output
    assert pauses == [5.0, 5.0, 5.0]
    tables = result.output.split("+ Cluster: ")
    assert len(tables) == 3
    assert "node1  | 127.0.0.11 | Leader" in tables[1]
    assert "node2  | 127.0.0.12 | Leader" in tables[2]
    assert "Error: etcd at 127.0.0.1:2379 cannot be reached" in tables[2]
