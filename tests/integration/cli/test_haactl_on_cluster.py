"""haactl against a real three-node cluster: each command's output, and the cluster after it.

The cluster (etcd + three agents + PostgreSQL) lives for the module; `ready` brings it
back to healthy and unpaused before each test.  haactl runs as a process with node1's
config file, as an operator would run it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from haactl_lab import DYNAMIC, SCOPE, Haactl

from haagent_lab.lab.cluster import LabCluster
from haagent_lab.lab.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def rows(haactl: Haactl) -> dict[str, dict[str, object]]:
    run = haactl("list", "-f", "json")
    assert run.code == 0, run.text
    return {str(r["Member"]): r for r in run.json()}


def leader_in_etcd(haactl: Haactl) -> str:
    leaders = [name for name, row in rows(haactl).items() if row["Role"] == "Leader"]
    assert len(leaders) == 1, leaders
    return leaders[0]


def other_members(lab: LabCluster, leader: str) -> list[str]:
    return sorted(n for n in lab.nodes if n != leader)


def test_list_shows_the_cluster_from_etcd(ready: LabCluster, haactl: Haactl) -> None:
    run = haactl("list")
    assert run.code == 0, run.text
    lines = run.out.splitlines()
    sysid = ready.nodes["node1"].api()[1]["database_system_identifier"]
    assert lines[0].startswith(f"+ Cluster: {SCOPE} ({sysid}) ")
    header = [c.strip() for c in lines[1].split("|")[1:-1]]
    assert header == ["Member", "Host", "Role", "State", "TL", "Lag in MB"]
    table = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[3:6]]
    assert [r[0] for r in table] == ["node1", "node2", "node3"]
    leader = ready.leader()
    for name, host, role, state, tl, lag in table:
        assert host == f"{ready.nodes[name].host}:{ready.nodes[name].pg_port}"
        assert tl.isdigit()
        if name == leader:
            assert (role, state, lag) == ("Leader", "running", "")
        else:
            assert (role, state) == ("Replica", "streaming")
            assert float(lag) < 1.0


def test_list_and_explain_work_while_a_members_agent_is_down(
    ready: LabCluster, haactl: Haactl
) -> None:
    leader = ready.leader()
    assert leader is not None
    victim = other_members(ready, leader)[-1]
    ready.kill_agent(victim)  # PostgreSQL keeps running; the member key lives until its lease ends
    try:
        run = haactl("list")
        assert run.code == 0, run.text
        assert victim in run.out
        run = haactl("explain")
        assert run.code == 0, run.text
        line = next(li for li in run.out.splitlines() if li.startswith(f"| {victim}"))
        assert "unreachable" in line and "| no " in line
        assert f" {victim}: its REST API does not answer" in run.out
        healthy = other_members(ready, leader)[0]
        assert f"If {leader} failed now: {healthy} would most likely take over" in run.out
    finally:
        ready.start_agent(victim)


def test_explain_on_a_healthy_cluster(ready: LabCluster, haactl: Haactl) -> None:
    run = haactl("explain", "-f", "json")
    assert run.code == 0, run.text
    doc = run.json()
    members = {m["name"]: m for m in doc["members"]}
    assert doc["leader"] == ready.leader()
    assert all(m["can_lead"] for m in members.values()), members
    assert members[doc["leader"]]["last_decision"]["code"] == "leader_renewed"
    replicas = [m for n, m in members.items() if n != doc["leader"]]
    assert all(m["api"] == "ok" and m["last_decision"]["code"] for m in replicas)


def test_switchover_with_force(ready: LabCluster, haactl: Haactl) -> None:
    old = leader_in_etcd(haactl)
    new = other_members(ready, old)[0]
    run = haactl("switchover", "--master", old, "--candidate", new, "--force")
    assert run.code == 0, run.text
    assert f'Successfully switched over to "{new}" in ' in run.out
    took = float(run.out.split(" in ")[1].split("s")[0])
    assert 0 < took < 60
    assert leader_in_etcd(haactl) == new
    ready.wait_for(lambda: ready.leader() == new, f"{new} to answer /primary", 30)
    history = haactl("history", "-f", "json")
    assert history.code == 0
    assert history.json()[-1]["New Leader"] == new
    ready.wait_healthy(120)  # the old leader follows the new one
    assert rows(haactl)[old]["Role"] == "Replica"


def test_switchover_answered_on_stdin(ready: LabCluster, haactl: Haactl) -> None:
    old = leader_in_etcd(haactl)
    new = other_members(ready, old)[-1]
    declined = haactl("switchover", input=f"\n{new}\nnow\nn\n")
    assert declined.code == 1
    assert f"Primary [{old}]:" in declined.out
    assert "Aborted" in declined.text
    assert leader_in_etcd(haactl) == old
    run = haactl("switchover", input=f"\n{new}\n\ny\n")
    assert run.code == 0, run.text
    assert f"demoting current leader {old}? [y/N]" in run.out
    assert f'Successfully switched over to "{new}"' in run.out
    assert leader_in_etcd(haactl) == new
    ready.wait_for(lambda: ready.leader() == new, f"{new} to answer /primary", 30)


def test_failover_to_a_chosen_candidate(ready: LabCluster, haactl: Haactl) -> None:
    old = leader_in_etcd(haactl)
    new = other_members(ready, old)[0]
    run = haactl("failover", "--candidate", new, "--force")
    assert run.code == 0, run.text
    assert f'Successfully failed over to "{new}"' in run.out
    ready.wait_for(lambda: ready.leader() == new, f"{new} to answer /primary", 30)
    assert leader_in_etcd(haactl) == new


def test_pause_and_resume(ready: LabCluster, haactl: Haactl) -> None:
    run = haactl("pause", "--wait")
    assert run.code == 0, run.text
    assert "Success: cluster management is paused" in run.out
    assert " Maintenance mode: on" in haactl("list").out
    assert all(node.api()[1].get("pause") is True for node in ready.nodes.values())
    again = haactl("pause")
    assert again.code == 1 and "already paused" in again.err
    explain = haactl("explain")
    assert "Automatic failover: OFF" in explain.out
    no_candidate = haactl("switchover", "--force")
    assert no_candidate.code == 2
    assert "a switchover needs --candidate NAME" in no_candidate.err
    run = haactl("resume", "--wait")
    assert run.code == 0, run.text
    assert "Maintenance mode" not in haactl("list").out
    assert all(not node.api()[1].get("pause") for node in ready.nodes.values())


def test_edit_config_with_set(ready: LabCluster, haactl: Haactl) -> None:
    current = haactl("show-config", "-f", "json")
    before = current.json() if current.code == 0 else {}
    run = haactl(
        "edit-config", "-s", "maximum_lag_on_failover=2097152", "-p", "work_mem=8MB", "--force"
    )
    assert run.code == 0, run.text
    if "maximum_lag_on_failover" in before:
        assert f"-maximum_lag_on_failover: {before['maximum_lag_on_failover']}" in run.out
    assert "+maximum_lag_on_failover: 2097152" in run.out
    assert "+    work_mem: 8MB" in run.out
    assert "Configuration changed" in run.out
    shown = haactl("show-config", "-f", "json").json()
    assert shown["maximum_lag_on_failover"] == 2097152
    assert shown["postgresql"]["parameters"]["work_mem"] == "8MB"
    for key, value in before.items():  # the rest is untouched
        if key not in ("maximum_lag_on_failover", "postgresql"):
            assert shown[key] == value
    ready.wait_for(
        lambda: ready.nodes["node2"].api("/config")[1].get("maximum_lag_on_failover") == 2097152,
        "node2's REST API to serve the new config",
        30,
    )
    bad = haactl("edit-config", "-s", "ttl=1", "--force")  # ttl=3 is adjusted, as Patroni
    assert bad.code == 2 and "not valid" in bad.err
    assert haactl("show-config", "-f", "json").json() == shown


def test_history_dsn_and_query(ready: LabCluster, haactl: Haactl) -> None:
    history = haactl("history")
    assert history.code == 0, history.text
    assert "| TL | LSN" in history.out
    leader = ready.leader()
    assert leader is not None
    node = ready.nodes[leader]
    dsn = haactl("dsn")
    assert dsn.code == 0 and dsn.out.strip() == f"host={node.host} port={node.pg_port}"
    replica = haactl("dsn", "--role", "replica").out.strip()
    assert replica != dsn.out.strip() and replica.startswith("host=127.0.0.1")
    query = haactl("query", "-c", "select pg_is_in_recovery() as recovery")
    assert query.code == 0, query.text
    assert query.out.splitlines() == ["recovery", "f"]
    on_replica = haactl("query", "--role", "replica", "-c", "select pg_is_in_recovery()")
    assert on_replica.out.splitlines()[-1] == "t"


def test_bad_input_is_refused_and_changes_nothing(ready: LabCluster, haactl: Haactl) -> None:
    leader = leader_in_etcd(haactl)
    unknown = haactl("switchover", "--candidate", "node9", "--force")
    assert unknown.code == 2
    assert "'node9' is not a member of cluster stampede" in unknown.err
    same = haactl("switchover", "--leader", leader, "--candidate", leader, "--force")
    assert same.code == 2 and "the same member" in same.err
    wrong = haactl("switchover", "--leader", other_members(ready, leader)[0], "--force")
    assert wrong.code == 2 and f"(the leader is {leader})" in wrong.err
    assert haactl("failover", "--force").code == 2
    assert haactl("restart", "node9", "--force").code == 2
    assert leader_in_etcd(haactl) == leader
    assert ready.leader() == leader


def test_unreachable_etcd_fails_within_retry_timeout(ready: LabCluster, haactl: Haactl) -> None:
    port = free_port()
    # One command here: tests/unit/cli/test_cli_context.py runs five against a closed port.
    for command in (["switchover", "--force"],):
        started = time.monotonic()
        run = haactl("--dcs-url", f"127.0.0.1:{port}", *command)
        elapsed = time.monotonic() - started
        assert run.code == 1, run.text
        assert f"etcd at 127.0.0.1:{port} cannot be reached" in run.err
        assert "or that etcd runs" in run.err
        assert elapsed < DYNAMIC["retry_timeout"] + 3.0, elapsed


def test_topology_and_version(ready: LabCluster, haactl: Haactl) -> None:
    leader = ready.leader()
    run = haactl("topology")
    assert run.code == 0, run.text
    names = [line.split("|")[1].strip() for line in run.out.splitlines()[3:6]]
    assert names == [leader, *(f"+ {n}" for n in other_members(ready, str(leader)))]
    version = haactl("version")
    assert version.code == 0, version.text
    lines = version.out.splitlines()
    assert lines[0].startswith("haactl version ")
    assert [line.split(":")[0] for line in lines[1:]] == ["node1", "node2", "node3"]
    assert all(" PostgreSQL 15." in line and "haagent" in line for line in lines[1:])


def test_restart_and_reload(ready: LabCluster, haactl: Haactl) -> None:
    leader = ready.leader()
    replica = other_members(ready, str(leader))[0]
    before = ready.nodes[replica].postmaster_pid()
    run = haactl("restart", replica, "--force")
    assert run.code == 0, run.text
    assert f"Success: restart on member {replica}" in run.out
    assert ready.nodes[replica].postmaster_pid() not in (None, before)
    ready.wait_healthy(120)
    reload = haactl("reload", "--force")
    assert reload.code == 0, reload.text
    assert reload.out.count("Success: reload on member") == 3


def test_reinit_a_replica(ready: LabCluster, haactl: Haactl) -> None:
    leader = ready.leader()
    replica = other_members(ready, str(leader))[-1]
    refused = haactl("reinit", str(leader), "--force")
    assert refused.code == 1 and "is the leader" in refused.err
    before = ready.nodes[replica].postmaster_pid()
    run = haactl("reinit", replica, "--force", "--wait")
    assert run.code == 0, run.text
    assert f"Success: reinitialize on member {replica}" in run.out
    assert ready.nodes[replica].postmaster_pid() not in (None, before)
    ready.wait_healthy(120)


def test_events_tell_a_switchover_a_postmaster_kill_and_a_node_loss(
    ready: LabCluster, haactl: Haactl
) -> None:
    started = time.time()
    old = leader_in_etcd(haactl)
    new = other_members(ready, old)[0]
    assert haactl("switchover", "--master", old, "--candidate", new, "--force").code == 0
    ready.wait_healthy(120)
    killed = ready.kill_postmaster(new)
    assert killed is not None
    restarted = ready.nodes[new].postmaster_pid
    ready.wait_for(lambda: restarted() not in (None, killed), f"{new}'s postmaster to restart", 60)
    ready.wait_for(lambda: ready.leader() == new, f"{new} to lead again", 60)
    ready.wait_healthy(120)
    ready.kill_agent(new)
    ready.kill_postmaster(new)
    ready.wait_for(lambda: ready.leader() not in (None, new), "a new leader", 60)
    third = str(ready.leader())
    ready.start_agent(new)
    ready.wait_healthy(120)

    # Read by a member that wrote none of the switchover's or the restart's events.
    reader = Haactl(ready.nodes[old].config_path)
    run = reader("events", "--since", "10min", "-f", "json")
    assert run.code == 0, run.text
    events = [e for e in run.json() if e["time"] >= _iso(started)]
    assert events == sorted(events, key=lambda e: e["time"])

    def first(member: str, kind: str, code: str | None = None, after: int = -1) -> int:
        for i, e in enumerate(events):
            if (
                i > after
                and (e["member"], e["kind"]) == (member, kind)
                and code in (None, e["code"])
            ):
                return i
        raise AssertionError(f"no {kind} {code or ''} event of {member} after #{after}: {events}")

    took = first(new, "switchover")
    gave = first(old, "switchover", "switchover_demoting")
    crash = first(new, "decision", "restarting_crashed_primary", max(took, gave))
    failover = first(third, "failover", after=crash)
    rejoined = first(new, "role", after=failover)
    assert "agent started" in events[rejoined]["text"]
    assert all(isinstance(e["timeline"], int) for e in (events[took], events[failover]))
    assert all(isinstance(e["lsn"], int) for e in (events[took], events[failover]))
    only = reader("events", "--member", third, "-f", "json")
    assert only.code == 0 and {e["member"] for e in only.json()} == {third}
    table = reader("events", "--since", "10min")
    assert table.code == 0 and "restarting_crashed_primary" in table.out
    explain = reader("explain")
    assert explain.code == 0 and "recent events" in explain.out


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix - 1, UTC).isoformat(timespec="milliseconds")
