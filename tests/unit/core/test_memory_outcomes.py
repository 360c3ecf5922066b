"""What the engine remembers: each action's outcome and each observation, folded in by the core."""

from __future__ import annotations

from haagent.core import actions as a
from haagent.core.memory import (
    Memory,
    Observation,
    asked,
    concluded,
    decided,
    failsafe_leader_heard,
    observed,
    shutdown_asked,
)
from haagent.core.outcomes import Done, Failed, Failure, PeersAnswered, after
from haagent.core.reasons import Code, Reason
from haagent.core.roles import Role
from haagent.core.snapshot import Decision, ManualRequest
from haagent.dcs.model import ClusterStatus, ClusterView
from support.snapshots import (
    DynamicConfig,
    DynamicPostgresql,
    cluster,
    member,
    peers,
    primary_pg,
    replace,
    replica_pg,
    stopped_pg,
)

NOW = 1000.0


def test_a_won_initialize_race_for_a_new_cluster_starts_a_bootstrap() -> None:
    assert after(Memory(), a.RaceInitialize(""), Done(), NOW).bootstrapping
    assert not after(Memory(), a.RaceInitialize("7300"), Done(), NOW).bootstrapping
    assert not after(Memory(), a.RaceInitialize(""), Failed("lost"), NOW).bootstrapping
    bootstrapping = Memory(bootstrapping=True)
    assert not after(bootstrapping, a.BootstrapCluster(), Failed("initdb"), NOW).bootstrapping
    assert not after(bootstrapping, a.SetInitialize(), Done(), NOW).bootstrapping
    # etcd took the system identifier, seeding the config key after it failed: over too.
    seeded = Failed("config key took too long", Failure.ETCD_UNREACHABLE, etcd_answered=True)
    assert not after(bootstrapping, a.SetInitialize(), seeded, NOW).bootstrapping
    assert after(bootstrapping, a.SetInitialize(), Failed("no sysid"), NOW).bootstrapping


def test_a_start_as_the_primary_that_postgres_refused_is_remembered_by_its_first_line() -> None:
    refused = Failed("PostgreSQL exited during startup\nFATAL: bad setting", Failure.START_REFUSED)
    primary = a.StartPostgres("primary")
    assert after(Memory(), primary, refused, NOW).start_failure == (
        "PostgreSQL exited during startup"
    )
    assert after(Memory(), primary, Failed("timed out"), NOW).start_failure is None
    assert after(Memory(), a.StartPostgres("replica", "n2"), refused, NOW).start_failure is None
    started = after(Memory(start_failure="old"), a.StartPostgres("replica", "n2"), Done(), NOW)
    assert (started.start_failure, started.following) == (None, "n2")


def test_a_failed_rewind_is_kept_until_a_follow_succeeds() -> None:
    failed = after(Memory(), a.Follow("n2"), Failed("pg_rewind: boom", Failure.REWIND_FAILED), NOW)
    assert failed.rewind_failed == "pg_rewind: boom" and failed.following is None
    assert after(Memory(), a.Follow("n2"), Failed("other"), NOW).rewind_failed is None
    followed = after(failed, a.Follow("n2"), Done(), NOW)
    assert (followed.rewind_failed, followed.following) == (None, "n2")


def test_whom_postgres_follows() -> None:
    assert after(Memory(following="n2"), a.Promote(), Done(), NOW).following is None
    assert after(Memory(), a.Demote("fast", "n3"), Done(), NOW).following == "n3"
    assert after(Memory(following="n2"), a.Promote(), Failed("x"), NOW).following == "n2"


def test_clone_failures_count_until_one_succeeds() -> None:
    once = after(Memory(), a.CreateReplica("n1"), Failed("unreachable"), NOW)
    twice = after(once, a.CreateReplica("n1"), Failed("unreachable"), NOW)
    assert twice.replica_clone_failures == 2
    assert after(twice, a.CreateReplica("n1"), Done(), NOW).replica_clone_failures == 0


def test_a_request_is_carried_out_by_its_action_and_one_waits_at_a_time() -> None:
    restart = ManualRequest("restart")
    waiting = asked(Memory(), restart)
    assert asked(waiting, ManualRequest("reinitialize")).manual == restart
    assert after(waiting, a.RestartPostgres("replica", "n1"), Failed("x"), NOW).manual == restart
    assert after(waiting, a.RestartPostgres("replica", "n1"), Done(), NOW).manual is None
    assert after(waiting, a.RemoveDataDirectory("reinit"), Done(), NOW).manual is None
    stopping = shutdown_asked(waiting)
    assert stopping.shutdown_requested and stopping.manual is None


def test_etcd_silence_is_remembered_until_it_answers() -> None:
    timed_out = Failed("took too long", Failure.ETCD_UNREACHABLE)
    silent = after(Memory(), a.UpdateMember(), timed_out, NOW)
    assert (silent.dcs_ok, silent.dcs_error) == (False, "took too long")
    assert not after(silent, a.Checkpoint(), Done(), NOW).dcs_ok  # not etcd
    answered = after(silent, a.KeepaliveLease(), Done(etcd_answered=True), NOW)
    assert (answered.dcs_ok, answered.dcs_error) == (True, None)


def test_the_peers_answers_are_for_the_next_decision_only() -> None:
    answered = after(Memory(), a.ObservePeers(), PeersAnswered(peers(node2=900)), NOW)
    assert answered.peers is not None and answered.peers["node2"].lsn == 900
    assert decided(answered).peers is None


def test_slots_are_kept_for_members_seen_within_member_slots_ttl() -> None:
    config = DynamicConfig(member_slots_ttl=100)
    three = cluster("n1", (member("n1", "primary"), member("N-2"), member("n3")))
    two = cluster("n1", (member("n1", "primary"), member("N-2")))

    def observe(memory: Memory, view: ClusterView, now: float, name: str = "n1") -> Memory:
        return observed(memory, Observation(name, primary_pg(), view, config, False), now)

    def kept(memory: Memory) -> tuple[str, ...]:
        return memory.facts(lease_expires=None, renew_failure=None, failsafe_confirmed=False,
                            now=NOW, ttl=30).slots_retained  # fmt: skip

    seen = observe(Memory(), three, NOW)
    assert kept(seen) == ("n3", "n_2")  # slot names, not this member's own
    assert kept(observe(seen, two, NOW + 100)) == ("n3", "n_2")
    assert kept(observe(observe(seen, two, NOW + 100), two, NOW + 101)) == ("n_2",)
    # While another member leads, its `retain_slots` count as seen; the leader's own list
    # does not keep a slot alive for the leader that wrote it.
    listed = replace(two, status=ClusterStatus(optime=1, retain_slots=("gone",)))
    assert "gone" not in kept(observe(seen, listed, NOW))
    assert "gone" in kept(observe(seen, listed, NOW, name="N-2"))
    off = DynamicConfig(postgresql=DynamicPostgresql(use_slots=False))
    unslotted = observed(Memory(), Observation("n1", primary_pg(), three, off, False), NOW)
    assert kept(unslotted) == ()


def test_a_failed_copy_of_logical_slots_is_remembered_until_one_works() -> None:
    copy = a.CopyLogicalSlots("n1", ())
    failed = after(Memory(), copy, Failed("permission denied"), NOW)
    assert failed.slot_copy_failed_at == NOW
    assert after(failed, copy, Done(), NOW + 60).slot_copy_failed_at is None


def test_what_an_observation_changes() -> None:
    config = DynamicConfig(failsafe_mode=True, member_slots_ttl=100)

    def observe(memory: Memory, now: float, **kw: object) -> Memory:
        seen = Observation("node1", primary_pg(), cluster("node1"), config, first_cycle=False)
        return observed(memory, replace(seen, **kw), now)  # type: ignore[arg-type]

    # PostgreSQL down counts from the first observation that saw it down with the key.
    down = observe(Memory(), NOW, postgres=stopped_pg())
    assert down.postgres_down_since == NOW
    assert observe(down, NOW + 5, postgres=stopped_pg()).postgres_down_since == NOW
    assert observe(down, NOW + 6).postgres_down_since is None
    assert observe(Memory(), NOW, postgres=stopped_pg(), name="node2").postgres_down_since is None
    # No leader: since when; just started in failsafe mode, a leader may still run unseen.
    leaderless = observe(Memory(), NOW, cluster=cluster(None), first_cycle=True)
    assert (leaderless.leaderless_since, leaderless.failsafe_heard_at) == (NOW, NOW)
    later = observe(leaderless, NOW + 9, cluster=cluster(None))
    assert later.leaderless_since == NOW
    assert observe(Memory(), NOW, cluster=cluster(None)).failsafe_heard_at is None
    assert observe(later, NOW + 10).leaderless_since is None
    # Members seen lately are remembered for member_slots_ttl after their key is gone.
    seen = observe(Memory(), NOW)
    gone = cluster("node1", (member("node1", "primary"),))
    kept = observe(seen, NOW + 100, cluster=gone).known_members
    assert set(kept) == {"node1", "node2", "node3"}
    assert set(observe(seen, NOW + 101, cluster=gone).known_members) == {"node1"}
    # The primary's position when each standby was first named synchronous.
    one = primary_pg(1500, synchronous_standby_names='FIRST 1 ("node2")')
    named = observe(Memory(), NOW, postgres=one)
    assert named.sync_named_at == {"node2": 1500}
    two = primary_pg(2000, synchronous_standby_names='FIRST 1 ("node2", "node3")')
    again = observe(named, NOW + 1, postgres=two)
    assert again.sync_named_at == {"node2": 1500, "node3": 2000}
    assert observe(again, NOW + 2, postgres=replica_pg()).sync_named_at == again.sync_named_at


def test_the_facts_a_decision_sees() -> None:
    memory = failsafe_leader_heard(Memory(role=Role.REPLICA, following="n1"), NOW)
    lease = {"lease_expires": None, "renew_failure": None, "failsafe_confirmed": False}
    facts = memory.facts(**lease, now=NOW + 30, ttl=30)  # type: ignore[arg-type]
    assert facts.failsafe_leader_seen and facts.role == Role.REPLICA and facts.following == "n1"
    later = memory.facts(**lease, now=NOW + 31, ttl=30)  # type: ignore[arg-type]
    assert not later.failsafe_leader_seen


def test_the_role_a_decision_reaches() -> None:
    promote = Decision((a.Promote(),), Reason(Code.PROMOTING, "test"), Role.PRIMARY)
    assert concluded(Memory(role=Role.REPLICA), promote, failed=False).role == Role.PRIMARY
    assert concluded(Memory(role=Role.REPLICA), promote, failed=True).role == Role.REPLICA
    demote = replace(promote, role=Role.DEMOTED)
    assert concluded(Memory(role=Role.PRIMARY), demote, failed=True).role == Role.DEMOTED
