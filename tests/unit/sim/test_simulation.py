"""Multi-node simulation: the real HA loops on in-memory etcd and PostgreSQL with a fake clock.

Every node cycle checks that at most one node accepts writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from haagent.config.model import DynamicConfig
from haagent_lab.sim import cluster as sim_cluster
from haagent_lab.sim.cluster import Simulation


@pytest.fixture(autouse=True)
def _close_simulations(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    made: list[Simulation] = []
    original = Simulation.__init__

    def tracked(self: Simulation, *args: Any, **kw: Any) -> None:
        original(self, *args, **kw)
        made.append(self)

    monkeypatch.setattr(sim_cluster.Simulation, "__init__", tracked)
    yield
    for sim in made:
        sim.close()


def healthy_cluster(config: DynamicConfig | None = None, **kw: Any) -> Simulation:
    sim = Simulation(config=config, **kw)
    sim.start_all()
    sim.run_for(40)
    assert sim.primary() is not None, sim.log[-10:]
    assert sim.leader_key() == sim.primary()
    assert len(sim.streaming_replicas()) == 2, sim.log[-10:]
    return sim


def test_bootstrap_to_one_primary_two_streaming_replicas() -> None:
    sim = healthy_cluster()
    bootstrapped = [name for _, name, code in sim.log if code == "bootstrapping"]
    assert len(set(bootstrapped)) == 1


def test_primary_partitioned_demotes_and_a_replica_takes_over() -> None:
    sim = healthy_cluster()
    old = sim.primary()
    assert old is not None
    sim.partition(old)
    sim.run_for(45)
    new = sim.primary()
    assert new is not None and new != old
    # The old primary's member key is gone, yet the new primary keeps a slot for it
    # (the old leader listed itself in the status key's retain_slots).
    assert old in sim.nodes[new].pg.slots
    sim.heal(old)
    sim.run_for(30)
    assert sim.primary() == new
    assert old in sim.streaming_replicas()


def test_node_loss_fails_over_within_ttl_plus_a_cycle() -> None:
    sim = healthy_cluster()
    old = sim.primary()
    assert old is not None
    sim.kill(old)
    started = sim.clock()
    while sim.primary() in (None, old) and sim.clock() - started < 60:
        sim.step()
    assert sim.primary() not in (None, old)
    # The key expires ttl (30 s) after the last renewal, at most one loop_wait before the kill.
    assert sim.clock() - started <= 30 + 1
    sim.start(old)
    sim.run_for(30)
    assert old in sim.streaming_replicas()


def test_postmaster_crash_restarts_in_place() -> None:
    sim = healthy_cluster()
    old = sim.primary()
    assert old is not None
    sim.nodes[old].pg.crash()
    sim.step()
    assert sim.primary() == old


def test_frozen_agent_keeps_primary_until_key_expires_then_replica_promoted() -> None:
    # Without a watchdog a frozen agent's PostgreSQL keeps running: this is what the
    # watchdog exists for.  The simulation checks the key logic alone: the replicas
    # wait for the key to expire; the frozen node's PostgreSQL is then fenced by hand.
    sim = healthy_cluster()
    old = sim.primary()
    assert old is not None
    sim.freeze(old)
    sim.nodes[old].pg.crash()  # what the watchdog reset does
    sim.run_for(45)
    assert sim.primary() not in (None, old)


def test_replica_partition_changes_nothing_for_the_primary() -> None:
    sim = healthy_cluster()
    old = sim.primary()
    replica = next(n for n in sim.nodes if n != old)
    sim.partition(replica)
    sim.run_for(60)
    assert sim.primary() == old
    sim.heal(replica)
    sim.run_for(30)
    assert replica in sim.streaming_replicas()


def test_switchover_moves_the_primary_to_the_candidate() -> None:
    sim = healthy_cluster()
    old = sim.primary()
    assert old is not None
    candidate = next(n for n in sim.nodes if n != old)
    node = sim.nodes[candidate]
    assert node.dcs is not None
    sim.call(candidate, node.dcs.write_failover(leader=old, candidate=candidate, scheduled_at=None))
    sim.run_for(15)
    assert sim.primary() == candidate
    sim.run_for(20)
    assert old in sim.streaming_replicas()


def test_etcd_lost_by_everyone_means_no_primary_without_failsafe() -> None:
    sim = healthy_cluster()
    for name in sim.nodes:
        sim.partition(name)
    sim.run_for(40)
    assert sim.primary() is None
    for name in sim.nodes:
        sim.heal(name)
    sim.run_for(60)
    assert sim.primary() is not None


def test_synchronous_mode_only_the_sync_standby_is_promoted() -> None:
    sim = healthy_cluster(DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10,
                                              synchronous_mode=True))  # fmt: skip
    sim.run_for(30)
    old = sim.primary()
    assert old is not None
    view = sim.nodes[old].dcs.view() if sim.nodes[old].dcs else None
    assert view is not None and view.sync is not None and len(view.sync.sync_standby) == 1
    sync_standby = view.sync.sync_standby[0]
    sim.kill(old)
    sim.run_for(45)
    assert sim.primary() == sync_standby


def test_repeated_random_faults_never_split_brain() -> None:
    import random

    rng = random.Random(7)
    sim = healthy_cluster()
    names = list(sim.nodes)
    for _ in range(12):
        victim = rng.choice(names)
        fault = rng.choice(["partition", "crash_pg", "kill"])
        if fault == "partition":
            sim.partition(victim)
            sim.run_for(rng.randint(5, 50))
            sim.heal(victim)
        elif fault == "crash_pg":
            sim.nodes[victim].pg.crash()
        elif sim.nodes[victim].alive:
            sim.kill(victim)
            sim.run_for(rng.randint(5, 50))
            sim.start(victim)
        sim.run_for(rng.randint(5, 40))
    sim.run_for(90)
    assert sim.primary() is not None
    assert len(sim.streaming_replicas()) == 2


def test_failsafe_mode_keeps_the_primary_while_etcd_is_away_and_members_confirm() -> None:
    config = DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10, failsafe_mode=True)
    sim = healthy_cluster(config)
    sim.run_for(15)  # the leader publishes the failsafe key
    old = sim.primary()
    for name in sim.nodes:
        sim.etcd_unreachable(name)
    sim.run_for(60)
    assert sim.primary() == old
    codes = {code for _, name, code in sim.log[-20:] if name == old}
    assert "failsafe_active" in codes


def test_failsafe_mode_demotes_when_a_member_does_not_confirm() -> None:
    config = DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10, failsafe_mode=True)
    sim = healthy_cluster(config)
    sim.run_for(15)
    old = sim.primary()
    assert old is not None
    replica = next(n for n in sim.nodes if n != old)
    sim.etcd_unreachable(old)
    sim.partition(replica)
    sim.run_for(40)
    assert sim.primary() != old


def test_failsafe_leader_cut_off_etcd_alone_keeps_replicas_from_racing() -> None:
    config = DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10, failsafe_mode=True)
    sim = healthy_cluster(config)
    sim.run_for(15)
    old = sim.primary()
    assert old is not None
    sim.etcd_unreachable(old)  # the replicas still reach etcd and see the key expire
    sim.run_for(60)
    assert sim.primary() == old  # checked after every cycle: never two writable nodes
    sim.heal(old)
    sim.run_for(30)
    assert sim.primary() == old
