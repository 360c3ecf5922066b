"""Sequences a review of the lease fence found to break it, kept as regression tests.

Each ran into a `Violation` (two writable nodes, a primary past its lease, or a lost
acknowledged write in synchronous mode) or into a needless demotion before its fix.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from haagent.config.model import DynamicConfig
from haagent_lab.sim.cluster import Simulation

DEFAULTS = DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10)


@pytest.fixture
def sims() -> Iterator[list[Simulation]]:
    made: list[Simulation] = []
    yield made
    for sim in made:
        sim.close()


def healthy(sims: list[Simulation], config: DynamicConfig) -> Simulation:
    sim = Simulation(config=config)
    sims.append(sim)
    sim.start_all()
    sim.run_for(135)
    assert sim.primary() is not None and len(sim.streaming_replicas()) == 2, sim.log[-10:]
    return sim


def set_pause(sim: Simulation, via: str, paused: bool) -> None:
    dcs = sim.nodes[via].dcs
    assert dcs is not None and dcs.view().config is not None
    raw = dict(dcs.view().config.raw)  # type: ignore[union-attr]
    raw["pause"] = paused
    revision = dcs.view().config_revision
    assert sim.call(via, dcs.write_config(raw, expected_revision=revision))


def test_failsafe_a_restarted_replica_agent_does_not_race_a_leader_still_primary(
    sims: list[Simulation],
) -> None:
    # Only the leader loses etcd and stays primary on the members' confirmations; its keys
    # expire.  A replica's agent restarts and has forgotten the confirmations.
    sim = healthy(sims, DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10, failsafe_mode=True))
    old = sim.primary()
    assert old is not None
    sim.etcd_unreachable(old)
    sim.run_for(45)
    assert sim.primary() == old and sim.leader_key() is None
    other = next(n for n in sim.nodes if n != old)
    sim.kill(other, postgres_too=False)
    sim.start(other)
    sim.run_for(60)  # the invariants are checked every 0.1 s
    assert sim.primary() == old


def test_a_paused_leader_cut_off_from_etcd_is_not_raced_on_resume(
    sims: list[Simulation],
) -> None:
    sim = healthy(sims, DEFAULTS)
    old = sim.primary()
    assert old is not None
    other = next(n for n in sim.nodes if n != old)
    set_pause(sim, other, True)
    sim.run_for(20)
    sim.etcd_unreachable(old)  # its key expires while paused; nobody acts
    sim.run_for(40)
    set_pause(sim, other, False)  # the operator resumes: the replicas must not race it
    sim.run_for(60)
    assert sim.primary() == old
    sim.heal(old)
    sim.run_for(60)
    assert sim.primary() == old and sim.leader_key() == old


def test_synchronous_mode_a_new_primary_names_itself_before_it_acknowledges(
    sims: list[Simulation],
) -> None:
    # The primary is lost, etcd is slow, the new primary acknowledges writes and is lost in
    # turn: the old one must not come back as the primary without those writes.
    config = DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10, synchronous_mode=True)
    sim = healthy(sims, config)
    sim.run_for(15)
    old = sim.primary()
    assert old is not None
    sim.kill(old)
    for name in sim.nodes:
        if name != old:
            sim.slow_etcd(name, 2.0)
    while sim.primary() in (None, old):
        sim.run_for(0.1)
    new = sim.primary()
    assert new is not None
    sim.run_for(3)
    sim.kill(new)
    for name in sim.nodes:
        sim.heal(name)
    sim.start(old)
    sim.run_for(150)  # a Violation if the old primary came back without the new one's writes
    assert sim.primary() != old


def test_failsafe_confirmed_leader_is_not_demoted_when_etcd_comes_back(
    sims: list[Simulation],
) -> None:
    config = DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10, failsafe_mode=True)
    for extra in (0.0, 4.4, 8.8):
        sim = healthy(sims, config)
        sim.run_for(extra)
        old = sim.primary()
        assert old is not None
        for name in sim.nodes:
            sim.hang_etcd(name)
        sim.run_for(60)
        assert sim.primary() == old
        healed_at = sim.clock()
        for name in sim.nodes:
            sim.heal(name)
        for _ in range(400):
            sim.run_for(0.1)
            assert sim.world.nodes[old].writable, f"{old} stopped writes after etcd came back"
        codes = sim.codes(old, since=healed_at)
        assert "leader_renew_failed" not in codes and "promoting" not in codes


def test_without_its_guard_the_leader_is_still_fenced_when_a_renewal_fails(
    sims: list[Simulation],
) -> None:
    # The guard process died; the agent falls back to the fence inside it, which stops
    # PostgreSQL when a renewal fails (it cannot when the agent itself stalls).
    sim = healthy(sims, DEFAULTS)
    old = sim.primary()
    assert old is not None
    sim.kill_guard(old)
    sim.run_for(15)
    # Its HA loop is busy with a long action, so only a fence can stop PostgreSQL in time.
    sim.world.nodes[old].delay("change_slots", 3 * DEFAULTS.ttl)
    sim.run_for(DEFAULTS.loop_wait + 1)
    sim.hang_etcd(old)
    sim.run_for(2 * DEFAULTS.ttl)
    assert sim.primary() not in (None, old)
    assert sim.world.nodes[old].fenced >= 1
    sim.world.nodes[old].unhang()
    sim.heal(old)
    sim.run_for(90)
    assert old in sim.streaming_replicas()
