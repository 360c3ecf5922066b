"""The leader race: who may take a free leader key, and who must wait, and why."""

from __future__ import annotations

from haagent.core.actions import (
    Action,
    AppendHistory,
    ArmFencing,
    ClearFailoverKey,
    Demote,
    DisarmFencing,
    KeepaliveLease,
    ObservePeers,
    Promote,
    StartPostgres,
    TakeLeaderKey,
    UpdateMember,
)
from haagent.core.reasons import Code, required_watchdog_unavailable
from haagent.core.roles import Role
from haagent.core.rules.common import decision, idle, lag_behind_leader
from haagent.core.rules.promotion import before_promotion, promotion_refused
from haagent.core.rules.quorum import quorum_votes
from haagent.core.rules.standby import demote_to_remote, remote_description, standby_race_won
from haagent.core.snapshot import Decision, Snapshot


def candidate_passed_over(s: Snapshot, candidate: str) -> str | None:
    """Why the chosen switchover candidate is passed over (another member may race), or None
    while the others still wait for it."""
    peer = s.peers.get(candidate) if s.peers is not None else None
    if peer is not None:
        if not peer.reachable:
            return f"the chosen candidate {candidate} does not answer over its REST API"
        if not peer.running:
            return f"the chosen candidate {candidate} does not run PostgreSQL"
        if peer.nofailover:
            return (
                f"the chosen candidate {candidate} cannot take the leader key (nofailover, or "
                "its required watchdog is unusable)"
            )
    since = s.local.leaderless_since
    bound = s.config.ttl
    if since is not None and s.now - since >= bound:
        return f"the chosen candidate {candidate} did not take the leader key within ttl ({bound}s)"
    return None


def waiting_candidate(s: Snapshot) -> str | None:
    """The switchover candidate other members wait for, if any."""
    fo = s.cluster.failover
    if fo is None or fo.candidate in (None, s.name) or fo.candidate not in s.cluster.members:
        return None
    return fo.candidate


def ineligible(s: Snapshot) -> tuple[Code, str] | None:
    """Why this node may not race for the key now, or None if it may."""
    cfg = s.config
    pg = s.postgres
    if not s.tags.can_be_leader:
        return Code.NOFAILOVER, "tagged nofailover (or failover_priority 0): never races"
    if not s.watchdog_ok:
        return Code.WATCHDOG_UNAVAILABLE, s.watchdog_reason or required_watchdog_unavailable()
    refused = promotion_refused(s)
    if refused is not None:
        return refused
    if cfg.failsafe_mode and s.local.failsafe_leader_seen:
        return Code.FAILSAFE_ACTIVE, (
            "a leader running in failsafe mode asked this node to confirm it within ttl"
        )
    if cfg.failsafe_mode and s.cluster.failsafe and s.name not in s.cluster.failsafe:
        # The leader may still run on the confirmations of the members it listed; one it
        # did not list was never asked, so it must not race (as Patroni).
        return Code.FAILSAFE_NOT_LISTED, (
            "failsafe mode: this member is not listed in the failsafe key, so the leader may "
            "still run without asking it"
        )
    candidate = waiting_candidate(s)
    if candidate is not None and candidate_passed_over(s, candidate) is None:
        return Code.WAITING_FOR_CANDIDATE, f"waiting for the chosen candidate {candidate}"
    if not pg.in_recovery and (pg.timeline or 0) < s.cluster.last_timeline:
        return Code.TIMELINE_BEHIND, (
            f"this old primary is on timeline {pg.timeline} but the history reaches timeline "
            f"{s.cluster.last_timeline}: another node was promoted since"
        )
    sync = s.cluster.sync
    in_sync_key = sync is None or sync.matches(s.name, check_leader=True)
    quorum = cfg.quorum  # under quorum commit anyone may race; the votes decide
    if cfg.synchronous and not quorum and sync is not None and sync.active and not in_sync_key:
        listed = ", ".join(sync.sync_standby) or "none"
        return Code.NOT_SYNCHRONOUS, (
            f"synchronous mode: only the synchronous standbys named in the sync key "
            f"({listed}) or the previous leader {sync.leader} may take over"
        )
    fo = s.cluster.failover
    if fo is not None and fo.candidate == s.name:
        return None
    lag = lag_behind_leader(s)
    if lag is not None and lag > cfg.maximum_lag_on_failover:
        return Code.LAGGING, (
            f"lagging {lag} bytes behind the last known primary position "
            f"(maximum_lag_on_failover is {cfg.maximum_lag_on_failover})"
        )
    return None


def peer_ahead(s: Snapshot, passed_over: str | None = None) -> str | None:
    """The name of a reachable peer better placed than us, if any."""
    assert s.peers is not None
    mine = s.postgres.lsn or 0
    my_priority = s.tags.failover_priority
    sync = s.cluster.sync if s.config.synchronous else None
    for peer in sorted(s.peers.values(), key=lambda p: p.name):
        if peer.name in (s.name, passed_over) or not peer.reachable or not peer.running:
            continue
        if not peer.in_recovery and s.postgres.in_recovery:
            # Still a running primary (failsafe, maintenance mode, or not yet demoted): it
            # takes the key back or demotes itself first; promoting now would make two
            # primaries.  Asked even when its member key is gone.
            return peer.name
        if peer.name not in s.cluster.members:
            continue  # no member key: it cannot take the key, so it does not hold us back
        if peer.nofailover or peer.failover_priority <= 0:
            continue
        if sync is not None and sync.active and not sync.matches(peer.name, check_leader=True):
            continue
        theirs = peer.lsn or 0
        if theirs > mine or (theirs == mine and peer.failover_priority > my_priority):
            return peer.name
    return None


def _former_leader(s: Snapshot) -> bool:
    """This node is the leader the sync key names: it holds every commit it acknowledged
    (no voter is ahead of it: `peer_ahead` said so)."""
    key = s.cluster.sync
    return key is not None and key.leader is not None and key.leader.lower() == s.name.lower()


def decide_race(s: Snapshot) -> Decision:
    pg = s.postgres
    if not pg.running:
        if pg.data_dir_initialized and s.local.rewind_failed is None:
            return decision(
                [StartPostgres("replica", None), KeepaliveLease(), UpdateMember()],
                Code.STARTING_REPLICA,
                "no leader and PostgreSQL is stopped: starting it read-only before racing",
                Role.REPLICA,
                again=True,
            )
        return idle(s, Code.POSTGRES_NOT_RUNNING, "no leader, and PostgreSQL is not running")
    if not pg.accepting:
        return idle(s, Code.POSTGRES_NOT_RUNNING, "no leader; PostgreSQL is not accepting yet")
    if s.config.standby_cluster is not None and not pg.in_recovery:
        return demote_to_remote(s, "no leader, and this node runs a primary in a standby cluster")
    candidate = waiting_candidate(s)
    if candidate is not None and s.peers is None:
        return decision(
            [ObservePeers()],
            Code.PEERS_NEEDED,
            f"the leader key is free and {candidate} is the chosen candidate: asking it how it is",
            Role.REPLICA if pg.in_recovery else Role.DEMOTED,
            again=True,
        )
    why = ineligible(s)
    if why is not None:
        code, text = why
        if not pg.in_recovery:
            return decision(
                [Demote("fast", None), DisarmFencing(), KeepaliveLease(), UpdateMember()],
                code,
                text + "; stopping writes on this primary",
                Role.DEMOTED,
            )
        return idle(s, code, text, Role.REPLICA)
    passed = candidate_passed_over(s, candidate) if candidate is not None else None
    note = f" ({passed}: passed over)" if passed is not None else ""
    fo = s.cluster.failover
    chosen = fo is not None and fo.candidate == s.name
    if not chosen:
        if s.peers is None:
            return decision(
                [ObservePeers()],
                Code.PEERS_NEEDED,
                "the leader key is free: asking the other members for their WAL positions",
                Role.REPLICA if pg.in_recovery else Role.DEMOTED,
                again=True,
            )
        ahead = peer_ahead(s, candidate if passed is not None else None)
        if ahead is not None:
            text = f"{ahead} is further ahead, preferred or still a primary: not racing{note}"
            return idle(s, Code.PEER_AHEAD, text)
        votes = quorum_votes(s)
        if votes is not None and votes[0] < votes[1] and not _former_leader(s):
            got, needed = votes
            return idle(
                s,
                Code.QUORUM_NOT_REACHED,
                f"quorum commit: {got} of the {needed} votes needed from the voters of the sync "
                "key (a running voter not ahead of this node is one): a node holding every "
                "acknowledged commit may be missing",
            )
    if s.config.standby_cluster is not None:
        return standby_race_won(
            s,
            ("chosen as the switchover candidate" if chosen else "the healthiest member")
            + f": taking the leader key to follow {remote_description(s)}{note}",
        )
    actions: list[Action] = [TakeLeaderKey(), ArmFencing()]
    if pg.in_recovery:
        actions += before_promotion(s)
        actions += [Promote(), AppendHistory("switchover" if chosen else "failover")]
    if fo is not None:
        actions.append(ClearFailoverKey())
    actions.append(UpdateMember())
    return decision(
        actions,
        Code.RACE_WON,
        ("chosen as the switchover candidate" if chosen else "the healthiest member")
        + f": taking the leader key and promoting{note}",
        Role.PRIMARY,
        again=True,
    )
