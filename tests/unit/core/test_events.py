"""Which cycles the event history records (haagent.core.events)."""

from __future__ import annotations

from dataclasses import replace

from haagent.core.events import CycleFacts, EventKind, decision_events, outcome_events

STEADY = CycleFacts(
    member="node2", role="replica", leader="node1", code="following_leader",
    text="following node1", paused=False,
)  # fmt: skip


def kinds(before: CycleFacts | None, after: CycleFacts) -> list[str]:
    return [str(e.kind) for e in decision_events(before, after) + outcome_events(before, after)]


def test_a_steady_cycle_records_nothing() -> None:
    assert kinds(STEADY, STEADY) == []
    assert kinds(STEADY, replace(STEADY, text="following node1 (lag 1 kB)")) == []


def test_the_first_cycle_records_where_the_member_starts() -> None:
    (event,) = decision_events(None, STEADY)
    assert event.kind == EventKind.ROLE and "agent started as replica" in event.text
    assert outcome_events(None, STEADY) == ()  # holding or not holding a key is no news
    failed = replace(STEADY, failure="pg_ctl start: timed out")
    assert [e.kind for e in outcome_events(None, failed)] == [EventKind.FAILURE]


def test_a_new_role_or_a_new_reason_is_one_event() -> None:
    demoting = replace(STEADY, role="demoted", code="demoting_not_leader")
    assert kinds(STEADY, demoting) == ["role"]
    assert kinds(STEADY, replace(STEADY, code="lagging", text="32 MB behind")) == ["decision"]


def test_a_switchover_is_recorded_by_both_sides() -> None:
    asked = replace(STEADY, requested="switchover")
    took = replace(asked, role="primary", leader="node2", code="promoting", text="promoted")
    assert kinds(asked, took) == ["role", "switchover"]
    old = replace(asked, member="node1", role="primary", code="leader_renewed")
    gave = replace(old, role="demoted", leader=None, code="switchover_demoting")
    (event,) = outcome_events(old, gave)
    assert event.kind == EventKind.SWITCHOVER
    assert "gave up the leader key (now free)" in event.text


def test_taking_the_key_from_a_replica_without_a_request_is_a_failover() -> None:
    free = replace(STEADY, leader=None, code="leader_race", text="racing")
    took = replace(free, role="primary", leader="node2", code="promoting")
    assert outcome_events(free, took)[0].kind == EventKind.FAILOVER
    asked = replace(free, role="replica", requested="failover")
    assert outcome_events(asked, replace(took, requested="failover"))[0].kind == "failover"
    # bootstrap: the first leader was never a replica
    new = replace(STEADY, role="uninitialized", leader=None, code="race_initialize")
    first = replace(new, role="primary", leader="node2", code="bootstrapping")
    assert outcome_events(new, first)[0].kind == EventKind.LEADER


def test_the_leader_key_moving_between_others_is_not_this_members_event() -> None:
    moved = replace(STEADY, leader="node3", code="follow_new_leader", text="following node3")
    assert kinds(STEADY, moved) == ["decision"]


def test_a_failure_is_recorded_once_until_it_changes() -> None:
    failing = replace(STEADY, code="starting_replica", failure="pg_ctl start: timed out")
    assert kinds(STEADY, failing) == ["decision", "failure"]
    assert kinds(failing, failing) == []
    other = replace(failing, failure="pg_ctl start: exit 1")
    assert kinds(failing, other) == ["failure"]


def test_pause_and_resume_are_recorded_by_the_leader_only() -> None:
    leader = replace(STEADY, member="node1", role="primary", code="leader_renewed")
    paused = replace(leader, paused=True, code="paused")
    assert kinds(leader, paused) == ["decision", "pause"]
    assert kinds(paused, replace(paused, paused=False, code="leader_renewed")) == [
        "decision", "resume",
    ]  # fmt: skip
    assert kinds(STEADY, replace(STEADY, paused=True, code="paused")) == ["decision"]
