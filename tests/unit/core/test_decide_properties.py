"""Invariants of `decide()` over generated snapshots (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from haagent.core import Snapshot, decide
from haagent.core import actions as a
from haagent.core.roles import allowed
from haagent.core.rules.common import current
from support.snapshots import (
    DynamicConfig,
    Failover,
    LocalFacts,
    SyncState,
    Tags,
    cluster,
    member,
    peers,
    primary_pg,
    replica_pg,
    snapshot,
    stopped_pg,
)

NAMES = ("node1", "node2", "node3")


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    name = draw(st.sampled_from(NAMES))
    leader = draw(st.sampled_from((*NAMES, None)))
    pg = draw(
        st.sampled_from(
            (
                primary_pg(),
                replica_pg(),
                replica_pg(lsn=10),
                stopped_pg(),
                stopped_pg(False),
                primary_pg(accepting=False),
                replica_pg(accepting=False),
            )
        )
    )
    failover = draw(
        st.sampled_from(
            (None, Failover("node1", "node2"), Failover(None, "node3"), Failover("node2", None))
        )
    )
    sync = draw(st.sampled_from((None, SyncState("node1", ("node2",)), SyncState("node1", ()))))
    init = draw(st.sampled_from(("7300000000000000001", "", None)))
    view = replace(
        cluster(leader, tuple(member(n, "primary" if n == leader else "replica") for n in NAMES)),
        failover=failover,
        sync=sync,
        initialize=init,
    )
    config = DynamicConfig(
        synchronous_mode=draw(st.booleans()),
        synchronous_mode_strict=draw(st.booleans()),
        pause=draw(st.booleans()),
        failsafe_mode=draw(st.booleans()),
    )
    local = LocalFacts(
        bootstrapping=draw(st.booleans()),
        shutdown_requested=draw(st.booleans()),
        failsafe_confirmed=draw(st.booleans()),
        postgres_down_since=draw(st.sampled_from((None, 995.0, 0.0))),
        following=draw(st.sampled_from((*NAMES, None))),
    )
    snap = snapshot(
        name,
        pg,
        view,
        config=config,
        local=local,
        tags=Tags(nofailover=draw(st.booleans())),
        watchdog_ok=draw(st.booleans()),
        peers=draw(st.sampled_from((None, peers(node1=500, node2=1000, node3=2000)))),
    )
    return replace(snap, dcs_ok=draw(st.booleans()))


def kinds(actions: tuple[a.Action, ...]) -> list[type]:
    return [type(x) for x in actions]


@settings(max_examples=1500, deadline=None)
@given(snapshots())
def test_decide_invariants(s: Snapshot) -> None:
    d = decide(s)
    k = kinds(d.actions)
    paused = s.config.pause and not s.local.shutdown_requested
    # PostgreSQL never becomes a primary unfenced: the key taken or renewed, then the
    # fencing armed, then the promotion or the start as a primary (maintenance mode has
    # no fencing, as Patroni's has no watchdog).
    for step in (a.Promote, a.StartPostgres, a.RestartPostgres):
        if step not in k:
            continue
        i = k.index(step)
        action = d.actions[i]
        if isinstance(action, (a.StartPostgres, a.RestartPostgres)) and action.role != "primary":
            continue
        assert a.TakeLeaderKey in k[:i] or a.RenewLeaderKey in k[:i]
        assert paused or a.ArmFencing in k[:i], d
    if a.Promote in k:
        assert (s.dcs_ok and s.tags.can_be_leader) or s.holds_key
    # Fencing is disarmed only once PostgreSQL is not a primary (or in maintenance mode).
    if a.DisarmFencing in k and s.is_running_primary and not s.config.pause:
        i = k.index(a.DisarmFencing)
        assert a.StopPostgres in k[:i] or a.Demote in k[:i], d
    # A running primary stops writes before it gives the key away.
    if a.ReleaseLeaderKey in k and s.is_running_primary and s.postgres.accepting:
        i = k.index(a.ReleaseLeaderKey)
        assert a.StopPostgres in k[:i] or a.Demote in k[:i]
    # Never race or promote with etcd away; never act when paused except keep the key.
    if not s.dcs_ok:
        assert not {a.TakeLeaderKey, a.Promote, a.StartPostgres} & set(k)
    if paused and s.cluster.failover is None:
        assert not {a.Promote, a.Demote, a.StopPostgres, a.StartPostgres} & set(k)
    if paused:
        assert not {a.StopPostgres, a.StartPostgres, a.ArmFencing} & set(k)
    # Shutting down in maintenance mode leaves PostgreSQL and the leader key alone.
    if s.config.pause and s.local.shutdown_requested:
        assert not {a.StopPostgres, a.Demote, a.ReleaseLeaderKey} & set(k)
    # A node that neither holds nor takes the key never promotes.
    if not s.holds_key and a.TakeLeaderKey not in k:
        assert a.Promote not in k
    # The data directory is removed only for an explicit request.
    if a.RemoveDataDirectory in k:
        assert s.local.manual is not None
    # Every role change is in the transition table.
    assert allowed(current(s), d.role), (current(s), d.role, d.reason)
