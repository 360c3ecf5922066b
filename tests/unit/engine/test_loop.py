"""The HA loop on the in-memory etcd, the fake PostgreSQL and virtual time.

Outcomes asserted: what a cycle leaves in etcd and PostgreSQL, what it publishes and
remembers, which config it applies, which clock it reads, and a role change outside
the transition table logged and counted.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import replace

import pytest

from haagent.api.metrics import Metrics
from haagent.config.model import Tags
from haagent.core import actions as a
from haagent.core.reasons import Code, Reason
from haagent.core.roles import Role
from haagent.core.snapshot import Decision, Snapshot
from haagent.engine import loop as loop_module
from haagent_lab.sim.cluster import Simulation
from support.lone_node import LoneNode, lone_node
from support.snapshots import DynamicConfig
from support.virtual_time import VirtualTime

Node = LoneNode


@pytest.fixture
def node() -> Iterator[Node]:
    vt = VirtualTime()
    yield lone_node(vt, keeper=True)
    vt.close()


def test_a_lone_node_bootstraps_and_leads_fenced(node: Node) -> None:
    codes = node.cycles_until_primary()
    assert codes == ["race_initialize", "bootstrapping", "bootstrap_finishing"]
    assert node.dcs.view().leader_name == "node1"
    assert node.pg.writable and node.guard.armed
    status = node.loop.status()
    assert status.holds_leader_key and status.role == "primary"
    assert node.loop.state.role == Role.PRIMARY and not node.loop.state.bootstrapping
    assert str(node.cycle().reason.code) == "leader_renewed"
    assert node.refused == []


def test_a_role_the_way_to_the_primary_failed_to_reach_is_not_taken(node: Node) -> None:
    node.cycle()  # races for the initialize key
    node.cycle()  # bootstraps
    other = node.member("node2")
    assert node.vt.run(other.take_leader())  # someone else takes the key first
    decision = node.cycle()
    assert decision.reason.code == Code.BOOTSTRAP_FINISHING and decision.role == Role.PRIMARY
    assert node.loop.state.role == Role.BOOTSTRAPPING  # TakeLeaderKey failed: not a primary
    assert not node.loop.status().is_primary and not node.guard.armed


def test_a_role_change_outside_the_table_is_logged_and_counted(
    node: Node, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    node.cycles_until_primary()
    metrics = Metrics(scope="sim", name="node1")
    node.loop.on_refused_role_change = metrics.record_refused_role_change
    odd = Decision(
        (a.UpdateMember(),), Reason(Code.PAUSED, "a rule gone wrong"), Role.BOOTSTRAPPING
    )

    def decide(s: Snapshot) -> Decision:
        return odd

    monkeypatch.setattr(loop_module, "decide", decide)
    with caplog.at_level(logging.WARNING, logger="haagent.engine"):
        node.cycle()
    assert [r.getMessage() for r in caplog.records] == [
        "role change primary -> bootstrapping is not in the transition table "
        "(paused: a rule gone wrong)"
    ]
    text = metrics.render(None).decode()
    assert (
        'haagent_role_change_refused_total{from_role="primary",to_role="bootstrapping"} 1.0' in text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="haagent.engine"):
        node.cycle()  # bootstrapping -> bootstrapping: staying is allowed
    assert caplog.records == []


def test_the_dynamic_config_in_etcd_is_adopted_once_and_applied(node: Node) -> None:
    node.cycles_until_primary()
    assert node.loop.config.ttl == 30 and node.guard.margin == 5.0
    raw = dict(node.dcs.view().config.raw)  # type: ignore[union-attr]
    assert node.vt.run(node.dcs.write_config({**raw, "ttl": 20}, expected_revision=None))
    node.cycle()
    assert node.loop.config.ttl == 20 and node.config.dynamic.ttl == 20
    assert node.loop.status().config.ttl == 20
    node.vt.advance(11)  # the keeper renews: the key moves to a lease of the new ttl
    assert node.dcs.lease_ttl == 20
    assert node.guard.expires - node.guard.margin <= node.vt.clock() + 20 - 5


def test_a_reload_is_read_by_the_next_cycle(node: Node) -> None:
    node.cycles_until_primary()
    settings = node.config.settings
    node.config.reload(replace(settings, tags=Tags(raw={"zone": "b"})))  # as daemon.reload
    node.cycle()
    assert node.loop.status().tags == {"zone": "b"}
    assert node.dcs.view().members["node1"].tags == {"zone": "b"}


def test_the_time_comes_from_the_injected_clocks(node: Node) -> None:
    node.cycles_until_primary()
    node.vt.advance(100)
    node.cycle()
    status = node.loop.status()
    assert status.loop_finished_at == node.vt.clock()
    assert status.dcs_last_seen == node.vt.wall().timestamp()  # the last UpdateMember
    assert status.leader_expires_at is not None
    assert node.vt.clock() < status.leader_expires_at <= node.vt.clock() + 30


def test_a_crashed_primary_is_restarted_in_place_and_down_since_is_remembered(
    node: Node,
) -> None:
    node.cycles_until_primary()
    node.pg.crash()
    node.pg.delay("start", 3.0)
    started = node.vt.clock()
    decision = node.cycle()
    assert decision.reason.code == Code.RESTARTING_CRASHED_PRIMARY
    assert node.loop.state.postgres_down_since == pytest.approx(started)
    assert node.pg.writable
    node.cycle()
    assert node.loop.state.postgres_down_since is None


def test_no_refused_role_change_through_random_faults() -> None:
    """Every role change the real loops make, through partitions, kills, freezes and an etcd
    outage, is in the transition table (the loop would have counted it otherwise)."""
    rng = random.Random(1515)
    sim = Simulation(config=DynamicConfig(ttl=10, loop_wait=2, retry_timeout=3))
    try:
        sim.start_all()
        sim.run_for(30)
        for _ in range(40):
            victim = rng.choice(list(sim.nodes))
            fault = rng.choice(["partition", "kill", "freeze", "etcd"])
            if fault == "partition":
                sim.partition(victim)
            elif fault == "kill":
                sim.kill(victim, postgres_too=rng.random() < 0.5)
            elif fault == "freeze":
                sim.freeze(victim)
            else:
                for name in sim.nodes:
                    sim.etcd_unreachable(name)
            sim.run_for(rng.randint(3, 25))
            sim.heal(victim)
            sim.start(victim)
            sim.thaw(victim)
            for name in sim.nodes:
                sim.heal(name)
            sim.run_for(rng.randint(3, 20))
        sim.run_for(60)
        assert sim.primary() is not None and len(sim.streaming_replicas()) == 2
        assert sim.refused_role_changes == []
        assert {code for _, _, code in sim.log} >= {"leader_race", "following_leader"}
    finally:
        sim.close()


def test_the_cycles_leave_their_events_in_etcd_without_waiting_for_them(node: Node) -> None:
    node.cycles_until_primary()
    node.cycle()
    assert node.vt.run(node.loop.history.drained(5.0))
    read = node.vt.run(node.dcs.read_events())
    assert [(e.seq, e.kind, e.code) for e in read.events] == [
        (0, "role", "race_initialize"),  # the agent started
        (1, "decision", "bootstrapping"),
        (2, "role", "bootstrap_finishing"),  # uninitialized -> primary, when decided
        (3, "leader", "bootstrap_finishing"),  # took the key, not a failover: a bootstrap
        (4, "decision", "leader_renewed"),
    ]
    assert read.events[-1].timeline == 1 and read.events[-1].lsn is not None
    assert read.events[-1].time <= node.vt.wall().timestamp()  # the injected wall clock
