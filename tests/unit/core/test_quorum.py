"""Quorum commit (`rules/quorum.py`): however the leader's steps interleave with commits,
catching up standbys and changes of the standbys and synchronous_node_count, every
acknowledged commit stays on all but at most `quorum` voters of the `sync` key, so a leader
race that gathers quorum + 1 votes always includes a node with it; and the steps converge."""

from __future__ import annotations

import random

import pytest

from haagent.core.actions import SetSyncStandbys, WriteSyncKey
from haagent.core.rules import quorum
from haagent.core.snapshot import Snapshot
from support.snapshots import (
    DynamicConfig,
    LocalFacts,
    SyncState,
    cluster,
    member,
    peers,
    primary_pg,
    replace,
    replica_pg,
    snapshot,
    streaming,
)

STANDBYS = ("node2", "node3", "node4")


class Model:
    """The leader node1, its PostgreSQL's synchronous_standby_names, the sync key, and
    which standbys hold each acknowledged commit."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.key: SyncState | None = None
        self.revision = 1
        self.value = ""
        self.caught: set[str] = set()
        self.commits: list[set[str]] = []
        self.count = 1

    def commit(self) -> None:
        acks = quorum.Acks.parse(self.value)
        if acks.none:
            return  # strict: nothing is acknowledged
        names = sorted(acks.names)
        holders = set(self.rng.sample(names, acks.count)) if acks.count else set()
        holders |= {n for n in STANDBYS if self.rng.random() < 0.3}
        self.commits.append(holders)

    def catch_up(self, name: str) -> None:
        for holders in self.commits:
            holders.add(name)
        self.caught.add(name)

    def check(self) -> None:
        if self.key is None or not self.key.active:
            return
        voters = {n.lower() for n in self.key.sync_standby}
        assert self.key.quorum >= 0
        for holders in self.commits:
            missing = voters - holders
            assert len(missing) <= self.key.quorum, (self.key, self.value, holders)

    def cycle(self, active: tuple[str, ...]) -> quorum.Plan:
        cfg = DynamicConfig(synchronous_mode=True, quorum_commit=True,
                            synchronous_node_count=self.count)  # fmt: skip
        members = (member("node1", "primary", lsn=5000), *(member(n) for n in STANDBYS))
        view = cluster("node1", members, sync=self.key)
        rows = streaming(*active)
        pg = primary_pg(lsn=5000, replication=rows, synchronous_standby_names=self.value)
        local = LocalFacts(sync_epoch_value=self.value, sync_caught=frozenset(self.caught))
        s = snapshot("node1", pg, view, config=cfg, local=local)
        result = quorum.plan(s, active)
        for action in result.actions:
            if isinstance(action, WriteSyncKey):
                if action.expected_revision not in (None, self.revision if self.key else 0):
                    break
                self.revision += 1
                self.key = SyncState(action.leader, action.members, action.quorum,
                                     mod_revision=self.revision)  # fmt: skip
            elif isinstance(action, SetSyncStandbys) and action.value != self.value:
                self.value, self.caught = action.value, set()
            self.check()
            if self.rng.random() < 0.5:
                self.commit()
                self.check()
        return result


@pytest.mark.parametrize("seed", range(40))
def test_every_acknowledged_commit_stays_on_enough_voters(seed: int) -> None:
    rng = random.Random(seed)
    model = Model(rng)
    active = STANDBYS
    for _ in range(60):
        event = rng.random()
        if event < 0.15:
            active = tuple(n for n in STANDBYS if rng.random() < 0.7)
        elif event < 0.25:
            model.count = rng.randint(1, 3)
        elif event < 0.5:
            model.catch_up(rng.choice(STANDBYS))
        elif event < 0.6:
            model.commit()
        else:
            model.cycle(active)
        model.check()
    # Then stable: everybody catches up, and the leader settles on the target.
    for _ in range(8):
        for name in STANDBYS:
            model.catch_up(name)
        result = model.cycle(active)
        model.check()
    assert result.settled and not result.actions
    if active:
        k = min(model.count, len(active))
        assert model.key is not None and model.key.quorum == len(active) - k
        assert model.value.startswith(f"ANY {k} (")


def test_target_as_patroni() -> None:
    """Three standbys, synchronous_node_count 1: ANY 1 of the three, every one a voter,
    quorum 2 (a candidate needs the votes of two others, itself included when a voter)."""
    rng = random.Random(0)
    model = Model(rng)
    for _ in range(6):
        for name in STANDBYS:
            model.catch_up(name)
        model.cycle(STANDBYS)
    assert model.value == 'ANY 1 ("node2", "node3", "node4")'
    assert model.key == SyncState("node1", STANDBYS, 2)


def _race_snapshot(name: str, key: SyncState, positions: dict[str, int]) -> Snapshot:
    cfg = DynamicConfig(synchronous_mode=True, quorum_commit=True)
    members = tuple(member(n, lsn=positions.get(n, 0)) for n in ("node1", *STANDBYS))
    view = cluster(None, members, sync=key)
    return snapshot(name, replica_pg(lsn=positions[name]), view, config=cfg,
                    peers=peers(**positions))  # fmt: skip


def test_votes_in_the_leader_race() -> None:
    key = SyncState("node1", STANDBYS, 2)
    # node1 (the old leader) is gone; node2 and node3 are running and not ahead of node4.
    s = _race_snapshot("node4", key, {"node2": 900, "node3": 1000, "node4": 1000})
    assert quorum.quorum_votes(s) == (3, 3)
    # Only node2 answers: node4 has 2 of the 3 votes it needs.
    s = _race_snapshot("node4", key, {"node2": 900, "node4": 1000})
    assert quorum.quorum_votes(s) == (2, 3)
    # A node that is not a voter does not vote for itself.
    s = _race_snapshot("node4", replace(key, sync_standby=("node2", "node3")),
                       {"node2": 900, "node3": 1000, "node4": 1000})  # fmt: skip
    assert quorum.quorum_votes(s) == (2, 3)
