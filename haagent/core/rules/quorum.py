"""Quorum commit (`synchronous_mode: quorum`): `ANY k (...)` and the `sync` key's voters.

Two settings say where acknowledged commits are.  PostgreSQL's
`synchronous_standby_names = 'ANY k (S)'`: a commit is acknowledged once k of the
standbys S flushed it.  The `sync` key `{leader, sync_standby: V, quorum: q}`: a member
may take over after a leader loss only with q + 1 "votes" from V and the old leader,
itself included when it is one of them, a vote being a running member whose WAL is not
ahead of the candidate's (`rules/race.py`).  So the winner holds every acknowledged
commit as long as, for every such commit, at most q of the voters V lack it:

    an acknowledged commit is on k members of S, so on at least k - |S - V| of V,
    and q >= |V| - (k - |S - V|)                                           (covers)

must hold for the configuration the commit was acknowledged under.  For the commits of
earlier configurations this leader tracks an epoch: the WAL position at which the current
`synchronous_standby_names` was first seen in force; a standby that flushed past it
holds every commit acknowledged before, whatever acknowledged it:

    q >= |V - caught|                                                      (caught up)

The order of changes keeps both true at every step, whichever step is the last before a
leader loss:
- the `sync` key changes only to a value that satisfies (covers) for the configuration in
  force and (caught up) for its epoch;
- `synchronous_standby_names` changes only while the key satisfies (caught up), to a
  value the key satisfies (covers) for: the commits of the old value stay covered by the
  key, those of the new one too, and the ones before both by the caught-up standbys.
When the key in force does not allow the next configuration, a key that allows both the
current and the next one is written first; `V = {}` (only the leader itself may take
over) allows any, so there is always a way forward.

The target, as Patroni's: every eligible streaming standby votes and is named,
k = min(synchronous_node_count, their number), q = their number - k.  Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from haagent.core.actions import Action, SetSyncStandbys, WriteSyncKey
from haagent.core.snapshot import Snapshot
from haagent.postgres.sync_names import STRICT_PLACEHOLDER, parse_synchronous_standby_names


@dataclass(frozen=True)
class Acks:
    """Who acknowledges a commit: `count` of `names` (lower case); `none`: nobody can (the
    strict placeholder), so no commit is acknowledged."""

    count: int
    names: frozenset[str]
    none: bool = False

    @classmethod
    def parse(cls, value: str) -> Acks:
        _, count, names = parse_synchronous_standby_names(value)
        if names == [STRICT_PLACEHOLDER]:
            return cls(1, frozenset(), none=True)
        lowered = frozenset(n.lower() for n in names)
        return cls(min(count, len(lowered)) if lowered else 0, lowered)


@dataclass(frozen=True)
class Voters:
    """The `sync` key's voters (lower case) and quorum."""

    quorum: int
    names: frozenset[str]

    @property
    def valid(self) -> bool:
        """A candidate among the voters can gather the quorum from the others."""
        if not self.names:
            return self.quorum == 0
        return 0 <= self.quorum < len(self.names)


def covers(acks: Acks, voters: Voters) -> bool:
    """Every commit acknowledged under `acks` is on all but at most `quorum` voters."""
    if acks.none:
        return True
    on_voters = max(0, acks.count - len(acks.names - voters.names)) if acks.count else 0
    return len(voters.names) - on_voters <= voters.quorum


def caught_up(voters: Voters, caught: frozenset[str]) -> bool:
    """Every commit from before the epoch is on all but at most `quorum` voters."""
    return len(voters.names - caught) <= voters.quorum


def key_allowed(voters: Voters, acks: Acks, caught: frozenset[str]) -> bool:
    """The `sync` key may say `voters` now."""
    return voters.valid and covers(acks, voters) and caught_up(voters, caught)


@dataclass(frozen=True)
class Plan:
    """The next steps, and whether the target is reached (nothing left to do later)."""

    actions: tuple[Action, ...]
    settled: bool


def _lower(names: Iterable[str]) -> frozenset[str]:
    return frozenset(n.lower() for n in names)


def _least_quorum(names: frozenset[str], needs: list[Acks], caught: frozenset[str]) -> Voters:
    """The voters `names` with the smallest quorum that satisfies (covers) for each of
    `needs` and (caught up)."""
    quorum = len(names - caught)
    for acks in needs:
        if not acks.none:
            on_voters = max(0, acks.count - len(acks.names - names)) if acks.count else 0
            quorum = max(quorum, len(names) - on_voters)
    return Voters(quorum, names)


def plan(
    s: Snapshot,
    active: tuple[str, ...],
) -> Plan:
    """What the leader does this cycle, in quorum mode, to move `synchronous_standby_names`
    and the `sync` key towards naming the `active` standbys, in an order that keeps every
    acknowledged commit on any quorum of voters (see the module's docstring)."""
    cfg = s.config
    key = s.cluster.sync
    revision: int | None = key.mod_revision if key is not None else 0
    pg_value = s.postgres.synchronous_standby_names or ""
    acks = Acks.parse(pg_value)
    caught = s.local.sync_caught if s.local.sync_epoch_value == pg_value else frozenset()
    names_of = {n.lower(): n for n in active}
    if key is not None:
        names_of.update({n.lower(): n for n in key.sync_standby if n.lower() not in names_of})
    actions: list[Action] = []

    def write(voters: Voters) -> None:
        nonlocal revision
        members = tuple(sorted(names_of.get(n, n) for n in voters.names))
        actions.append(WriteSyncKey(s.name, members, revision, quorum=voters.quorum))
        revision = None  # the key changed: the next write is unconditional on this leader

    current = Voters(key.quorum, _lower(key.sync_standby)) if key is not None else None
    if key is None or key.leader != s.name or current is None or not covers(acks, current):
        # No key, another leader's, or one that does not cover the commits of the value in
        # force (written by someone else): only this node may take over until it says more.
        current = Voters(0, frozenset())
        write(current)
    strict = cfg.synchronous_mode_strict
    wanted_count = max(1, cfg.synchronous_node_count)
    if active:
        target_names = _lower(active)
        target_count = min(wanted_count, len(target_names))
        setter = SetSyncStandbys(tuple(sorted(active)), target_count, method="ANY")
        target_key = Voters(len(target_names) - target_count, target_names)
    elif strict and current.names:
        # Nobody to name: commits wait for the voters of the key, which stays.
        count = max(1, len(current.names) - current.quorum)
        members = tuple(sorted(names_of.get(n, n) for n in current.names))
        setter = SetSyncStandbys(members, count, method="ANY")
        target_key = current
    else:
        setter = SetSyncStandbys((), wanted_count, strict=strict, method="ANY")
        target_key = Voters(0, frozenset())
    target_acks = Acks.parse(setter.value)
    if setter.value == pg_value:
        if target_key != current and key_allowed(target_key, acks, caught):
            write(target_key)
            current = target_key
        return Plan(tuple(actions), current == target_key)
    if not (covers(target_acks, current) and caught_up(current, caught)):
        bridge = _bridge(current, target_key, acks, target_acks, caught)
        write(bridge)
        current = bridge
    actions.append(setter)
    return Plan(tuple(actions), False)


def _bridge(
    current: Voters, target: Voters, acks: Acks, target_acks: Acks, caught: frozenset[str]
) -> Voters:
    """A key that allows both the configuration in force and the next one: the target's
    voters, with those of the current key, with the named standbys too, each with the least
    quorum that works; failing those, no voters at all (only the leader may take over)."""
    for names in (
        target.names,
        target.names | current.names,
        target.names | current.names | acks.names,
    ):
        voters = _least_quorum(names, [acks, target_acks], caught)
        if voters.valid:
            return voters
    return Voters(0, frozenset())


def quorum_votes(s: Snapshot) -> tuple[int, int] | None:
    """In a leader race under quorum commit: (the votes this node gathers, the votes it
    needs); None when quorum commit is not in force.  A vote is this node itself when it
    is a voter or the old leader, and each other one of those that runs PostgreSQL in
    recovery, answered, and is not ahead of this node's WAL (a voter ahead stops the race
    before this: `race.peer_ahead`)."""
    key = s.cluster.sync
    if not s.config.quorum or key is None or not key.active or s.peers is None:
        return None
    assert key.leader is not None
    voters = _lower(key.sync_standby) | {key.leader.lower()}
    mine = s.postgres.lsn or 0
    votes = 1 if s.name.lower() in voters else 0
    for peer in s.peers.values():
        if peer.name == s.name or peer.name.lower() not in voters:
            continue
        if peer.reachable and peer.running and peer.in_recovery and 0 < (peer.lsn or 0) <= mine:
            votes += 1
    return votes, key.quorum + 1


def before_promotion_quorum(s: Snapshot) -> list[Action]:
    """What a node does before it promotes under quorum commit: name itself the leader in
    the `sync` key (compare-and-swap: a failure stops the promotion), with the old leader
    among the voters in its place (it holds every commit it acknowledged) and the same
    quorum, then `ANY |voters| - quorum` of those voters, which that key covers."""
    cfg = s.config
    key = s.cluster.sync
    revision = key.mod_revision if key is not None else 0
    if key is None or not key.active:
        return [
            WriteSyncKey(s.name, (), revision),
            SetSyncStandbys((), 1, strict=cfg.synchronous_mode_strict, method="ANY"),
        ]
    assert key.leader is not None
    names = {n.lower(): n for n in (*key.sync_standby, key.leader)}
    names.pop(s.name.lower(), None)
    voters = tuple(sorted(names.values()))
    quorum = min(key.quorum, max(0, len(voters) - 1))
    count = max(1, len(voters) - quorum)
    return [
        WriteSyncKey(s.name, voters, revision, quorum=quorum),
        SetSyncStandbys(voters, count, strict=cfg.synchronous_mode_strict, method="ANY"),
    ]
