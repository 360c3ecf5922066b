"""`haactl switchover` / `failover` on the in-memory etcd: prompts, checks, the etcd fallback.

The members' REST APIs are down here, so every request falls back to the `failover` key;
`reacting_cli` plays the agents that act on it.
"""

from __future__ import annotations

from haactl_memory import Cli, edit_member, get, put

from haagent.dcs.memory import MemoryStore


def test_switchover_with_force_writes_the_failover_key_and_reports_the_new_leader(
    reacting_cli: Cli, store: MemoryStore
) -> None:
    result = reacting_cli("switchover", "--leader", "node1", "--candidate", "node2", "--force")
    assert result.exit_code == 0, result.output
    assert "REST API did not answer" in result.output
    assert 'Successfully switched over to "node2" in ' in result.output
    assert get(store, "leader") == b"node2"
    assert get(store, "failover") == {}


def test_master_is_an_alias_of_leader(reacting_cli: Cli, store: MemoryStore) -> None:
    result = reacting_cli("switchover", "--master", "node1", "--candidate", "node2", "--force")
    assert result.exit_code == 0, result.output
    assert get(store, "leader") == b"node2"


def test_interactive_switchover_takes_the_defaults_and_asks(
    reacting_cli: Cli, store: MemoryStore
) -> None:
    result = reacting_cli("switchover", input="\nnode2\n\ny\n")
    assert result.exit_code == 0, result.output
    assert "Primary [node1]:" in result.output
    assert "Candidate ['node2', 'node3']" in result.output
    assert "When should the switchover take place" in result.output
    assert "demoting current leader node1? [y/N]" in result.output
    assert get(store, "leader") == b"node2"


def test_declining_changes_nothing(reacting_cli: Cli, store: MemoryStore) -> None:
    result = reacting_cli("switchover", "--candidate", "node2", input="\nnow\nn\n")
    assert result.exit_code == 1
    assert "Aborted" in result.output
    assert get(store, "leader") == b"node1"
    assert get(store, "failover") is None


def test_unknown_member_is_bad_input(cli: Cli, store: MemoryStore) -> None:
    result = cli("switchover", "--candidate", "node9", "--force")
    assert result.exit_code == 2
    assert "'node9' is not a member of cluster stampede (members: node1, node2, node3)" in (
        result.output
    )
    assert get(store, "failover") is None


def test_leader_equal_to_candidate_is_refused_before_etcd_is_asked(closed_port: int) -> None:
    from click.testing import CliRunner

    from haagent.cli.main import main

    args = ["--dcs-url", f"127.0.0.1:{closed_port}", "--scope", "x", "--timeout", "0.5"]
    for command in ("switchover", "failover"):
        result = CliRunner().invoke(
            main, [*args, command, "--leader", "node1", "--candidate", "node1", "--force"]
        )
        assert result.exit_code == 2, result.output
        assert "leader and candidate are the same member (node1)" in result.output


def test_leader_equal_to_candidate_from_the_prompt(cli: Cli) -> None:
    result = cli("switchover", "--leader", "node1", input="node1\n")
    assert result.exit_code == 2
    assert "leader and candidate are the same member (node1)" in result.output


def test_wrong_leader_names_the_real_one(cli: Cli) -> None:
    result = cli("switchover", "--leader", "node2", "--candidate", "node3", "--force")
    assert result.exit_code == 2
    assert "node2 is not the leader of cluster stampede (the leader is node1)" in result.output
    assert "--leader node1" in result.output


def test_switchover_while_paused_needs_a_candidate(cli: Cli, store: MemoryStore) -> None:
    put(store, "config", {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "pause": True})
    result = cli("switchover", "--force")
    assert result.exit_code == 2
    assert "paused (maintenance mode): a switchover needs --candidate NAME" in result.output
    assert get(store, "failover") is None


def test_unfit_candidate_is_refused_with_the_reason(cli: Cli, store: MemoryStore) -> None:
    result = cli("switchover", "--candidate", "node3", "--force")
    assert result.exit_code == 1
    assert "node3 cannot take over now: node3 lags 33554432 bytes" in result.output
    assert "haactl explain" in result.output


def test_no_fit_member_at_all(cli: Cli, store: MemoryStore) -> None:
    edit_member(store, "node2", tags={"nofailover": True})
    result = cli("switchover", "--force")
    assert result.exit_code == 1
    assert "no member could take over now" in result.output


def test_scheduled_switchover_is_written_and_not_waited_for(cli: Cli, store: MemoryStore) -> None:
    result = cli(
        "switchover", "--candidate", "node2", "--scheduled", "2099-01-01T10:00+00:00", "--force"
    )
    assert result.exit_code == 0, result.output
    assert "scheduled at 2099-01-01T10:00:00+00:00" in result.output
    assert get(store, "failover") == {
        "leader": "node1",
        "member": "node2",
        "scheduled_at": "2099-01-01T10:00:00+00:00",
    }


def test_schedule_in_the_past_or_unreadable(cli: Cli) -> None:
    past = cli("switchover", "--candidate", "node2", "--scheduled", "2001-01-01T00:00Z", "--force")
    assert past.exit_code == 2 and "in the past" in past.output
    bad = cli("switchover", "--candidate", "node2", "--scheduled", "tomorrow", "--force")
    assert bad.exit_code == 2 and "ISO-8601" in bad.output


def test_switchover_that_does_not_happen_times_out(cli: Cli, store: MemoryStore) -> None:
    put(store, "config", {"ttl": 2, "loop_wait": 1, "retry_timeout": 0.5})
    put(store, "config", {"ttl": 4, "loop_wait": 1, "retry_timeout": 1})
    # nobody acts on the failover key: haactl gives up after max(30, 2*ttl) + 15 s,
    # which is too long for a unit test; the leader clearing the key ends it at once.
    from haactl_memory import ReactingKV

    class Refusing(ReactingKV):
        def _hand_over(self, request: dict[str, object]) -> None:
            put(self.store, "failover", "{}")

    cli.backend = lambda conn: Refusing(store, True)  # type: ignore[method-assign]
    result = cli("switchover", "--candidate", "node2", "--force")
    assert result.exit_code == 1
    assert "switchover did not happen within" in result.output
    assert "the leader is node1" in result.output


def test_failover_needs_a_candidate_with_force(cli: Cli) -> None:
    result = cli("failover", "--force")
    assert result.exit_code == 2
    assert "failover needs --candidate NAME (node2, node3)" in result.output


def test_failover_to_the_leader_is_refused(cli: Cli) -> None:
    result = cli("failover", "--candidate", "node1", "--force")
    assert result.exit_code == 2
    assert "node1 is already the leader" in result.output


def test_failover_without_a_leader(reacting_cli: Cli, store: MemoryStore) -> None:
    from haagent.dcs.kv import Delete

    store.txn([], [Delete(b"/service/stampede/leader")], [])
    result = reacting_cli("failover", "--candidate", "node2", input="y\n")
    assert result.exit_code == 0, result.output
    assert "Are you sure you want to failover cluster stampede? [y/N]" in result.output
    assert 'Successfully failed over to "node2"' in result.output
    assert get(store, "leader") == b"node2"


def test_switchover_without_a_leader_points_to_failover(cli: Cli, store: MemoryStore) -> None:
    from haagent.dcs.kv import Delete

    store.txn([], [Delete(b"/service/stampede/leader")], [])
    result = cli("switchover", "--force")
    assert result.exit_code == 1
    assert "haactl failover --candidate NAME" in result.output
