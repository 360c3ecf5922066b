"""`haactl explain`: each member's verdict from the etcd view and its REST status."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from haactl_memory import Cli, edit_member, put

from haagent.cli.commands_explain import assess, likely_successor, summary
from haagent.config.model import DynamicConfig
from haagent.dcs.memory import MemoryStore
from haagent.dcs.model import ClusterView, SyncState
from haagent.rest_client import parse_status
from haagent_lab.fake_api import LEADER_LSN, cluster_view

OK = parse_status({"haagent": {"reason_code": "following_leader", "reason_text": "following"}})


def view(**config: Any) -> ClusterView:
    """node1 leader, node2 sync standby, node3 4-8 KiB behind (haagent_lab.fake_api's cluster)."""
    base = cluster_view()
    return replace(base, config=DynamicConfig(**config))


def test_the_leader_holds_the_key_and_a_healthy_replica_could_lead() -> None:
    v = view()
    leader = assess(v, v.members["node1"], OK)
    assert leader.can_lead and leader.code == "leader"
    replica = assess(v, v.members["node2"], OK)
    assert replica.can_lead and replica.reasons == ()
    assert replica.last_code == "following_leader"


def test_lagging_beyond_maximum_lag_on_failover() -> None:
    v = view(maximum_lag_on_failover=1024)
    verdict = assess(v, v.members["node3"], OK)
    assert not verdict.can_lead
    assert verdict.code == "lagging"
    assert "lags 4096 bytes" in verdict.reasons[0][1]


def test_nofailover_tag() -> None:
    v = view()
    member = replace(v.members["node2"], tags={"nofailover": True})
    verdict = assess(v, member, OK)
    assert (verdict.can_lead, verdict.code) == (False, "nofailover")


def test_not_in_sync_under_synchronous_mode() -> None:
    v = replace(view(synchronous_mode=True), sync=SyncState("node1", ("node2",)))
    assert assess(v, v.members["node3"], OK).code == "not_synchronous"
    assert assess(v, v.members["node2"], OK).can_lead


def test_unreachable_api_and_stopped_postgres() -> None:
    v = view()
    unreachable = assess(v, v.members["node2"], "cannot connect to 127.0.0.12:8008")
    assert unreachable.code == "unreachable" and unreachable.api == "unreachable"
    assert "does not answer" in unreachable.reasons[0][1]
    stopped = assess(v, replace(v.members["node2"], state="stopped"), OK)
    assert stopped.code == "postgres_not_running"


def test_watchdog_required_unavailable_shows_the_watchdog_state() -> None:
    v = view()
    block = {"reason_code": "watchdog_required_unavailable", "watchdog": "unavailable"}
    status = parse_status({"haagent": {**block, "reason_text": "watchdog unusable"}})
    verdict = assess(v, v.members["node2"], status)
    assert verdict.code == "watchdog_required_unavailable"
    assert "(watchdog: unavailable)" in verdict.reasons[0][1]


def test_a_member_on_an_old_timeline_is_behind() -> None:
    v = view()
    verdict = assess(v, replace(v.members["node2"], timeline=1), OK)
    assert [code for code, _ in verdict.reasons] == ["timeline_behind_history"]


def test_several_reasons_are_all_kept() -> None:
    v = view(maximum_lag_on_failover=1024)
    member = replace(v.members["node3"], tags={"nofailover": True})
    verdict = assess(v, member, "refused")
    assert [c for c, _ in verdict.reasons] == ["nofailover", "unreachable"]


def test_likely_successor_is_the_fit_member_furthest_ahead() -> None:
    v = view()
    verdicts = [assess(v, m, OK) for m in v.members.values()]
    assert likely_successor(v, verdicts) == "node2"
    text = "\n".join(summary(v, verdicts))
    assert "If node1 failed now: node2 would most likely take over" in text


def test_summary_when_paused_and_when_leaderless() -> None:
    v = view(pause=True)
    verdicts = [assess(v, m, OK) for m in v.members.values()]
    assert "Automatic failover: OFF" in summary(v, verdicts)[0]
    leaderless = replace(view(), leader=None)
    verdicts = [assess(leaderless, m, OK) for m in leaderless.members.values()]
    assert any("a leader race should be running" in line for line in summary(leaderless, verdicts))


def test_explain_command_from_etcd_only(cli: Cli, store: MemoryStore) -> None:
    edit_member(store, "node2", tags={"nofailover": True})
    result = cli("explain", "--no-api")
    assert result.exit_code == 0, result.output
    rows = {
        line.split("|")[1].strip(): line for line in result.output.splitlines() if "| node" in line
    }
    assert "leader" in rows["node1"]
    assert "nofailover" in rows["node2"] and "| no " in rows["node2"]
    assert "lagging" in rows["node3"]
    assert "node2: node2 is tagged nofailover" in result.output
    assert "no member could take over" in result.output


def test_explain_json_and_unreachable_apis(cli: Cli, store: MemoryStore) -> None:
    put(store, "config", {"ttl": 30, "loop_wait": 10, "retry_timeout": 10,
                          "maximum_lag_on_failover": 64 * 1024 * 1024})  # fmt: skip
    result = cli("explain", "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    members = {m["name"]: m for m in doc["members"]}
    assert doc["leader"] == "node1" and doc["cluster"] == "stampede"
    assert members["node2"]["reason_code"] == "unreachable"
    assert members["node3"]["lag_bytes"] == LEADER_LSN - (LEADER_LSN - 32 * 1024 * 1024)
    assert members["node1"]["can_lead"] is True
