"""`haactl events` and the recent events in `haactl explain`, on an in-memory etcd."""

from __future__ import annotations

import json
import time

from haactl_memory import Cli, put

from haagent.dcs.events import ClusterEvent, encode_event, event_key
from haagent.dcs.memory import MemoryStore


def add(store: MemoryStore, member: str, seq: int, ago: float, code: str, text: str) -> None:
    event = ClusterEvent(member, seq, time.time() - ago, "decision", code, text, 2, 0x5000060)
    put(store, event_key(member, seq), encode_event(event))


def seed_events(store: MemoryStore) -> None:
    add(store, "node1", 0, 7200, "leader_race", "an old one")
    add(store, "node2", 0, 60, "following_leader", "following node1")
    add(store, "node1", 1, 30, "leader_renewed", "holds the leader key")


def test_events_are_merged_in_time_order(cli: Cli, store: MemoryStore) -> None:
    seed_events(store)
    put(store, "events/node3/0000", "not an event")
    result = cli("events", "-f", "json")
    assert result.exit_code == 0, result.output
    events = json.loads(result.output)
    assert [(e["member"], e["code"]) for e in events] == [
        ("node1", "leader_race"), ("node2", "following_leader"), ("node1", "leader_renewed"),
    ]  # fmt: skip
    table = cli("events")
    assert "0/5000060" in table.output
    assert "1 unreadable event value(s) in etcd skipped" in table.output


def test_since_and_member_filter(cli: Cli, store: MemoryStore) -> None:
    seed_events(store)
    recent = json.loads(cli("events", "--since", "10min", "-f", "json").output)
    assert [e["text"] for e in recent] == ["following node1", "holds the leader key"]
    mine = json.loads(cli("events", "--member", "node1", "--since", "1h", "-f", "json").output)
    assert [e["text"] for e in mine] == ["holds the leader key"]


def test_bad_arguments_are_refused_with_what_to_write(cli: Cli) -> None:
    result = cli("events", "--since", "yesterday")
    assert result.exit_code != 0 and "neither a duration" in result.output
    result = cli("events", "--member", "../node1")
    assert result.exit_code != 0 and "is not a member name" in result.output


def test_explain_shows_the_last_events(cli: Cli, store: MemoryStore) -> None:
    seed_events(store)
    result = cli("explain", "--no-api")
    assert result.exit_code == 0, result.output
    assert "recent events (haactl events for more):" in result.output
    assert "node1 decision leader_renewed: holds the leader key" in result.output
    document = json.loads(cli("explain", "--no-api", "-f", "json").output)
    assert [e["code"] for e in document["recent_events"]][-1] == "leader_renewed"
