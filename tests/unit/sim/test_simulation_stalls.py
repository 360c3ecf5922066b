"""Stalls, slow calls and hung calls, at Patroni's default timings and at the fast ones.

The simulation checks its invariants at every tick (0.1 simulated seconds): never two
writable nodes; outside maintenance and failsafe mode a writable node holds the leader
key in etcd, so no primary outlives its lease; in synchronous mode the primary holds
every acknowledged write.  A broken invariant raises `Violation` in the middle of
`run_for`, so each test below fails if any of them breaks at any moment.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import pytest

from haagent.config.model import DynamicConfig
from haagent.dcs.errors import DCSError
from haagent_lab.sim.cluster import Simulation, Violation

DEFAULTS = DynamicConfig(ttl=30, loop_wait=10, retry_timeout=10)
FAST = DynamicConfig(ttl=10, loop_wait=2, retry_timeout=3)
PROFILES = pytest.mark.parametrize("config", [DEFAULTS, FAST], ids=["30-10-10", "10-2-3"])


@pytest.fixture
def sims() -> Iterator[list[Simulation]]:
    made: list[Simulation] = []
    yield made
    for sim in made:
        sim.close()


def healthy(sims: list[Simulation], config: DynamicConfig, **kw: object) -> Simulation:
    sim = Simulation(config=config, **kw)  # type: ignore[arg-type]
    sims.append(sim)
    sim.start_all()
    sim.run_for(4 * config.ttl)
    assert sim.primary() is not None and sim.leader_key() == sim.primary(), sim.log[-10:]
    assert len(sim.streaming_replicas()) == 2, sim.log[-10:]
    return sim


def healed(sim: Simulation, config: DynamicConfig) -> None:
    sim.run_for(6 * config.ttl)
    assert sim.primary() is not None and sim.leader_key() == sim.primary(), sim.log[-15:]
    assert len(sim.streaming_replicas()) == 2, sim.log[-15:]


def renewed_at(sim: Simulation, name: str) -> float:
    agent = sim.nodes[name].agent
    assert agent is not None and agent.keeper.expires is not None
    return agent.keeper.expires - agent.config.ttl


def writable_until(sim: Simulation, name: str, limit: float) -> float:
    """Run until `name` no longer accepts writes; when that happened."""
    start = sim.clock()
    while sim.world.nodes[name].writable:
        assert sim.clock() - start < limit, f"{name} still accepts writes after {limit}s"
        sim.run_for(0.1)
    return sim.clock()


@PROFILES
@pytest.mark.parametrize("fraction", [0.77, 1.33], ids=["short", "long"])
def test_a_frozen_leader_never_outlives_its_lease(
    sims: list[Simulation], config: DynamicConfig, fraction: float
) -> None:
    # SIGSTOP of the leader's agent, no watchdog: the guard alone fences it.
    sim = healthy(sims, config)
    old = sim.primary()
    assert old is not None
    sim.freeze(old)
    sim.run_for(fraction * config.ttl)
    sim.thaw(old)
    healed(sim, config)
    if fraction > 1:
        assert sim.world.nodes[old].fenced >= 1
        assert sim.primary() != old


@PROFILES
def test_without_the_guard_a_frozen_leader_does_outlive_its_lease(
    sims: list[Simulation], config: DynamicConfig
) -> None:
    # The control: the same stall with no lease fence breaks the invariant, so the
    # simulation's checks can fail.
    sim = healthy(sims, config, guard=False)
    old = sim.primary()
    assert old is not None
    sim.freeze(old)
    with pytest.raises(Violation, match=r"outlived its lease|all accept writes"):
        sim.run_for(2 * config.ttl)


@PROFILES
@pytest.mark.parametrize("fault", ["slow", "hung", "cut"])
def test_a_leader_that_cannot_reach_etcd_stops_writes_within_loop_wait_plus_retry_timeout(
    sims: list[Simulation], config: DynamicConfig, fault: str
) -> None:
    sim = healthy(sims, config)
    old = sim.primary()
    assert old is not None
    if fault == "slow":
        sim.slow_etcd(old, config.retry_timeout + 1)
    elif fault == "hung":
        sim.hang_etcd(old)
    else:
        sim.etcd_unreachable(old)
    last = renewed_at(sim, old)
    stopped = writable_until(sim, old, config.ttl)
    assert stopped - last <= config.loop_wait + config.retry_timeout + 0.2
    sim.heal(old)
    healed(sim, config)


@PROFILES
def test_a_switchover_while_the_checkpoint_hangs_keeps_one_primary(
    sims: list[Simulation], config: DynamicConfig
) -> None:
    sim = healthy(sims, config)
    old = sim.primary()
    assert old is not None
    candidate = next(n for n in sim.nodes if n != old)
    sim.world.nodes[old].delay("checkpoint", 2 * config.ttl)
    dcs = sim.nodes[candidate].dcs
    assert dcs is not None
    sim.call(candidate, dcs.write_failover(leader=old, candidate=candidate, scheduled_at=None))
    # The old leader keeps renewing while its CHECKPOINT runs: nobody else promotes.
    sim.run_for(1.5 * config.ttl)
    assert sim.primary() == old and sim.leader_key() == old
    sim.run_for(2 * config.ttl)
    assert sim.primary() == candidate
    healed(sim, config)


@PROFILES
def test_sigterm_while_the_checkpoint_hangs_hands_over_safely(
    sims: list[Simulation], config: DynamicConfig
) -> None:
    sim = healthy(sims, config)
    old = sim.primary()
    assert old is not None
    sim.world.nodes[old].delay("checkpoint", 3 * config.ttl)
    sim.world.nodes[old].delay("stop", 3 * config.ttl)
    sim.stop_agent(old)  # the shutdown is cut off; the guard stops PostgreSQL
    assert not sim.world.nodes[old].writable or sim.world.nodes[old].stopping
    sim.run_for(3 * config.ttl)
    assert sim.primary() not in (None, old)
    sim.world.nodes[old].unhang()
    sim.start(old)
    healed(sim, config)


@PROFILES
def test_stopping_a_paused_leader_leaves_postgres_and_the_key_alone(
    sims: list[Simulation], config: DynamicConfig
) -> None:
    sim = healthy(sims, config)
    old = sim.primary()
    assert old is not None
    dcs = sim.nodes[old].dcs
    assert dcs is not None
    raw = dict(dcs.view().config.raw) if dcs.view().config is not None else {}  # type: ignore[union-attr]
    sim.call(old, dcs.write_config({**raw, "pause": True}, expected_revision=None))
    sim.run_for(config.loop_wait + 1)
    sim.stop_agent(old)
    assert sim.world.nodes[old].writable
    assert sim.leader_key() == old  # left to expire, not released
    sim.run_for(3 * config.ttl)
    assert sim.primary() == old  # nobody promotes in maintenance mode


@PROFILES
def test_a_slow_postgres_on_the_leader_does_not_delay_renewals(
    sims: list[Simulation], config: DynamicConfig
) -> None:
    # Slot work, a reload for new sync names, a status write: each slow, none of them may
    # push a renewal past its deadline.
    sim = healthy(sims, config)
    old = sim.primary()
    assert old is not None
    for op in ("change_slots", "set_synchronous_standby_names", "status"):
        sim.world.nodes[old].delay(op, 0.8 * config.ttl)
    sim.run_for(4 * config.ttl)
    assert sim.primary() == old and sim.world.nodes[old].fenced == 0
    sim.world.nodes[old].unhang()
    healed(sim, config)


@PROFILES
@pytest.mark.parametrize("seed", range(8))
def test_random_stalls_and_faults_never_break_an_invariant(
    sims: list[Simulation], config: DynamicConfig, seed: int
) -> None:
    rng = random.Random(seed)
    sim = healthy(sims, config)
    names = list(sim.nodes)
    ttl = config.ttl
    for _ in range(14):
        victim = rng.choice(names)
        fault = rng.choice(["freeze", "slow_etcd", "partition", "crash_pg", "kill", "slow_pg"])
        hold = rng.uniform(0.2, 2.0) * ttl
        if fault == "freeze":
            sim.freeze(victim)
            sim.run_for(hold)
            sim.thaw(victim)
        elif fault == "slow_etcd":
            sim.slow_etcd(victim, rng.uniform(0.5, 1.5) * config.retry_timeout)
            sim.run_for(hold)
            sim.slow_etcd(victim, 0)
        elif fault == "partition":
            sim.partition(victim)
            sim.run_for(hold)
            sim.heal(victim)
        elif fault == "crash_pg":
            sim.world.nodes[victim].crash()
        elif fault == "slow_pg":
            sim.world.nodes[victim].delay(rng.choice(["checkpoint", "stop", "promote"]), hold)
            sim.run_for(hold)
            sim.world.nodes[victim].unhang()
        elif sim.nodes[victim].alive:
            sim.kill(victim)
            sim.run_for(hold)
            sim.start(victim)
        sim.run_for(rng.uniform(0.5, 2.0) * ttl)
    healed(sim, config)


@pytest.mark.parametrize("seed", range(4))
def test_synchronous_mode_loses_no_acknowledged_write_under_stalls(
    sims: list[Simulation], seed: int
) -> None:
    config = DynamicConfig(ttl=10, loop_wait=2, retry_timeout=3, synchronous_mode=True)
    rng = random.Random(seed)
    sim = healthy(sims, config)
    for _ in range(10):
        victim = sim.primary() or rng.choice(list(sim.nodes))
        fault = rng.choice(["freeze", "kill", "partition"])
        if fault == "freeze":
            sim.freeze(victim)
            sim.run_for(rng.uniform(5, 20))
            sim.thaw(victim)
        elif fault == "kill":
            sim.kill(victim)
            sim.run_for(rng.uniform(5, 20))
            sim.start(victim)
        else:
            sim.partition(victim)
            sim.run_for(rng.uniform(5, 20))
            sim.heal(victim)
        sim.run_for(20)
    healed(sim, config)
    assert len(sim.acked) > 1000


def switchover(sim: Simulation, rng: random.Random) -> None:
    leader = sim.leader_key()
    live = [n for n, node in sim.nodes.items() if node.alive and not node.frozen]
    if leader is None or leader not in live:
        return
    candidate = rng.choice([n for n in sim.nodes if n != leader])
    dcs = sim.nodes[leader].dcs
    assert dcs is not None
    sim.call(leader, dcs.write_failover(leader=leader, candidate=candidate, scheduled_at=None))


@PROFILES
@pytest.mark.parametrize("seed", range(12))
def test_many_faults_at_once_never_break_an_invariant(
    sims: list[Simulation], config: DynamicConfig, seed: int
) -> None:
    # Faults overlap here: a node may be frozen while another is partitioned and a
    # third one's etcd is slow, with switchovers asked for in between.
    rng = random.Random(1000 + seed)
    sim = healthy(sims, config)
    names = list(sim.nodes)
    for _ in range(25):
        victim = rng.choice(names)
        node = sim.nodes[victim]
        pg = sim.world.nodes[victim]
        fault = rng.choice(
            ["freeze", "thaw", "slow_etcd", "hang_etcd", "heal", "partition", "crash_pg",
             "kill", "start", "stop_agent", "slow_pg", "unhang", "switchover"]
        )  # fmt: skip
        if fault == "freeze" and node.alive:
            sim.freeze(victim)
        elif fault == "thaw":
            sim.thaw(victim)
        elif fault == "slow_etcd":
            sim.slow_etcd(victim, rng.uniform(0.1, 2.0) * config.retry_timeout)
        elif fault == "hang_etcd":
            sim.hang_etcd(victim)
        elif fault == "heal":
            sim.heal(victim)
        elif fault == "partition":
            sim.partition(victim)
        elif fault == "crash_pg":
            pg.crash()
        elif fault == "kill" and node.alive:
            sim.kill(victim, postgres_too=rng.random() < 0.5)
        elif fault == "start" and not node.alive:
            sim.start(victim)
        elif fault == "stop_agent" and node.alive and not node.frozen:
            sim.stop_agent(victim)
        elif fault == "slow_pg":
            pg.delay(rng.choice(["checkpoint", "stop", "promote", "status", "start"]),
                     rng.uniform(0.2, 1.5) * config.ttl)  # fmt: skip
        elif fault == "unhang":
            pg.unhang()
        elif fault == "switchover":
            with contextlib.suppress(TimeoutError, DCSError):  # the REST API would say 503
                switchover(sim, rng)
        sim.run_for(rng.uniform(0.1, 1.0) * config.ttl)
    for name in names:  # everything back to normal
        sim.thaw(name)
        sim.heal(name)
        sim.world.nodes[name].unhang()
        if not sim.nodes[name].alive:
            sim.start(name)
    healed(sim, config)


EDGE_TIMINGS = [
    DynamicConfig(ttl=3, loop_wait=1, retry_timeout=1),  # the smallest the config accepts
    DynamicConfig(ttl=20, loop_wait=1, retry_timeout=9),  # Patroni's adjustment of 20/2/10
    DynamicConfig(ttl=21, loop_wait=1, retry_timeout=10),  # loop_wait + 2 * retry_timeout = ttl
    DynamicConfig(ttl=60, loop_wait=5, retry_timeout=20),
    DynamicConfig(ttl=100, loop_wait=40, retry_timeout=30),
]


@pytest.mark.parametrize(
    "config", EDGE_TIMINGS, ids=[f"{c.ttl}-{c.loop_wait}-{c.retry_timeout}" for c in EDGE_TIMINGS]
)
@pytest.mark.parametrize("seed", range(3))
def test_every_timing_the_config_accepts_keeps_the_invariants(
    sims: list[Simulation], config: DynamicConfig, seed: int
) -> None:
    rng = random.Random(seed)
    sim = healthy(sims, config)
    for _ in range(6):
        old = sim.primary()
        victim = old if old is not None and rng.random() < 0.7 else rng.choice(list(sim.nodes))
        fault = rng.choice(["freeze", "hang_etcd", "slow_etcd", "kill"])
        hold = rng.uniform(0.5, 2.0) * config.ttl
        if fault == "freeze":
            sim.freeze(victim)
            sim.run_for(hold)
            sim.thaw(victim)
        elif fault == "hang_etcd":
            sim.hang_etcd(victim)
            sim.run_for(hold)
            sim.heal(victim)
        elif fault == "slow_etcd":
            sim.slow_etcd(victim, rng.uniform(0.5, 1.5) * config.retry_timeout)
            sim.run_for(hold)
            sim.slow_etcd(victim, 0)
        elif sim.nodes[victim].alive:
            sim.kill(victim, postgres_too=False)
            sim.run_for(hold)
            sim.start(victim)
        sim.run_for(config.ttl)
    healed(sim, config)
