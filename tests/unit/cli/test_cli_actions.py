"""pause/resume, restart, reinit, reload and the info commands on the in-memory etcd
(the members' REST APIs are down: pause falls back to etcd, the others report failures)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from haactl_memory import CONFIG, PREFIX, SCOPE, Cli, edit_member, get, put

from haagent import __version__
from haagent.cli.commands_info import pg_version
from haagent.cli.main import main
from haagent.dcs.kv import Delete
from haagent.dcs.memory import MemoryStore


def test_pause_falls_back_to_a_cas_write_and_waits(reacting_cli: Cli, store: MemoryStore) -> None:
    result = reacting_cli("pause", "--wait")
    assert result.exit_code == 0, result.output
    assert "wrote the config key in etcd instead" in result.output
    assert "waiting until it is recognized by all nodes" in result.output
    assert "Success: cluster management is paused" in result.output
    assert get(store, "config") == {**CONFIG, "pause": True}
    assert " Maintenance mode: on" in reacting_cli("list").output
    result = reacting_cli("resume", "--wait")
    assert result.exit_code == 0, result.output
    assert get(store, "config")["pause"] is False
    assert all("pause" not in get(store, f"members/{n}") for n in ("node1", "node2", "node3"))


def test_pause_twice_is_an_error(cli: Cli, store: MemoryStore) -> None:
    put(store, "config", {**CONFIG, "pause": True})
    result = cli("pause")
    assert result.exit_code == 1
    assert "already paused" in result.output
    assert cli("resume").exit_code == 0
    assert "already not paused" in cli("resume").output


def test_resume_warns_when_no_member_holds_the_leader_key(cli: Cli, store: MemoryStore) -> None:
    put(store, "config", {**CONFIG, "pause": True})
    quiet = cli("resume")  # node1 holds the key: nothing to warn about
    assert quiet.exit_code == 0 and "leader key" not in quiet.output
    put(store, "config", {**CONFIG, "pause": True})
    store.txn([], [Delete((PREFIX + "leader").encode())], [])
    result = cli("resume")
    assert result.exit_code == 0, result.output
    assert f"Warning: no member of cluster {SCOPE} holds the leader key" in result.output


def test_pause_wait_names_the_members_that_did_not_follow(
    cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(store, "config", {**CONFIG, "loop_wait": 1, "retry_timeout": 1, "ttl": 10})
    monkeypatch.setattr("haagent.cli.commands_pause._wait_timeout", lambda config: 0.2)
    result = cli("pause", "--wait")
    assert result.exit_code == 1
    assert "node1, node2, node3 did not show it" in result.output


def test_restart_reports_each_member_and_fails_when_apis_are_down(cli: Cli) -> None:
    result = cli("restart", "node2", "node3", "--force")
    assert result.exit_code == 1
    assert "Failed: restart for member node2: its REST API did not answer" in result.output
    assert "Failed: restart for member node3" in result.output
    assert "node1" not in result.output


def test_restart_asks_when_and_confirms(cli: Cli) -> None:
    result = cli("restart", "stampede", "--role", "replica", input="now\nn\n")
    assert result.exit_code == 1
    assert "When should the restart take place" in result.output
    assert "restart members node2, node3? [y/N]" in result.output


def test_restart_unknown_member_and_role_mismatch(cli: Cli) -> None:
    result = cli("restart", "node7", "--force")
    assert result.exit_code == 2 and "'node7' is not a member" in result.output
    result = cli("restart", "node1", "--role", "replica", "--force")
    assert result.exit_code == 2 and "no member of cluster stampede matches" in result.output


def test_restart_pending_only(cli: Cli, store: MemoryStore) -> None:
    result = cli("restart", "--pending", "--force")
    assert result.exit_code == 0 and "No member has a pending restart" in result.output
    edit_member(store, "node3", pending_restart=True)
    result = cli("restart", "--pending", "--force")
    assert "member node3" in result.output and "node2" not in result.output


def test_reinit_refuses_the_leader_and_needs_a_member(cli: Cli) -> None:
    result = cli("reinit", "node1", "--force")
    assert result.exit_code == 1 and "node1 is the leader" in result.output
    result = cli("reinit")
    assert result.exit_code == 2 and "name the member(s)" in result.output


def test_reload_with_api_down(cli: Cli) -> None:
    result = cli("reload", "--force")
    assert result.exit_code == 1
    assert result.output.count("Failed: reload for member") == 3


def test_history_formats(cli: Cli) -> None:
    result = cli("history")
    assert result.exit_code == 0
    assert "| TL | LSN      | Reason" in result.output
    assert "no recovery target specified" in result.output
    rows = json.loads(cli("history", "-f", "json").output)
    assert rows == [
        {"TL": 1, "LSN": 50331648, "Reason": "no recovery target specified",
         "Timestamp": "2024-09-24T09:22:33+00:00", "New Leader": "node1"}
    ]  # fmt: skip


def test_dsn_by_role_and_member(cli: Cli, store: MemoryStore) -> None:
    assert cli("dsn").output.strip() == "host=127.0.0.11 port=5432"
    assert cli("dsn", "--role", "replica").output.strip() == "host=127.0.0.12 port=5432"
    assert cli("dsn", "-m", "node3").output.strip() == "host=127.0.0.13 port=5432"
    edit_member(store, "node2", state="stopped")
    assert cli("dsn", "--role", "replica").output.strip() == "host=127.0.0.13 port=5432"
    edit_member(store, "node3", conn_url="postgres://db3.example:5433/postgres")
    assert cli("dsn", "-r", "replica").output.strip() == "host=db3.example port=5433"
    store.txn([], [Delete(b"/service/stampede/leader")], [])
    result = cli("dsn")
    assert result.exit_code == 1 and "has no leader now" in result.output
    assert cli("dsn", "-m", "node9").exit_code == 2


def test_query_needs_sql_and_reports_connection_errors(cli: Cli, store: MemoryStore) -> None:
    assert cli("query").exit_code == 2
    edit_member(store, "node1", conn_url="postgres://127.0.0.1:1/postgres")
    result = cli("query", "-c", "select 1")
    assert result.exit_code == 1
    assert "query on 127.0.0.1:1 failed" in result.output


def test_version_without_a_cluster() -> None:
    result = CliRunner().invoke(main, ["version"])
    assert result.exit_code == 0
    assert result.output == f"haactl version {__version__}\n"
    assert pg_version(150006) == "15.6" and pg_version(90624) == "9.6.24"


def test_version_with_members_down(cli: Cli) -> None:
    result = cli("version", "node2")
    assert result.exit_code == 0
    assert result.output.splitlines()[1].startswith("node2: REST API unreachable")


def test_remove_asks_name_phrase_and_leader(cli: Cli, store: MemoryStore) -> None:
    result = cli("remove", "stampede", input="stampede\nYes I am aware\nnode1\n")
    assert result.exit_code == 0, result.output
    assert "Cluster stampede removed from etcd" in result.output
    assert store.dump(b"/service/stampede/") == {}


@pytest.mark.parametrize(
    "answers", ["other\n", "stampede\nyes\n", "stampede\nYes I am aware\nnode2\n"]
)
def test_remove_refuses_on_any_wrong_answer(cli: Cli, store: MemoryStore, answers: str) -> None:
    result = cli("remove", input=answers)
    assert result.exit_code == 1
    assert "nothing was removed" in result.output
    assert get(store, "leader") == b"node1"


def test_flush_a_scheduled_switchover_in_etcd(cli: Cli, store: MemoryStore) -> None:
    assert cli("flush", "switchover", "--force").output.strip() == "No switchover is scheduled"
    put(store, "failover", {"leader": "node1", "member": "node2",
                            "scheduled_at": "2099-01-01T00:00:00+00:00"})  # fmt: skip
    result = cli("flush", "switchover", input="y\n")
    assert result.exit_code == 0, result.output
    assert "Cancel the switchover scheduled at 2099-01-01T00:00:00+00:00 from node1?" in (
        result.output
    )
    assert "Success: scheduled switchover deleted (in etcd)" in result.output
    assert get(store, "failover") == {}
    assert "Switchover scheduled" not in cli("list").output


def test_flush_needs_a_target(cli: Cli) -> None:
    assert cli("flush").exit_code == 2
    assert cli("flush", "node2", "switchover").exit_code == 2
    result = cli("flush", "node2", "restart", "--force")
    assert result.exit_code == 1
    assert "Failed: flush scheduled restart for member node2" in result.output
