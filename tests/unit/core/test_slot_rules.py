"""The slot rules (haagent/core/slots.py): which slots a member keeps, where, and what
changes; pure, on snapshots."""

from __future__ import annotations

from haagent.config.dynamic import parse_dynamic_config
from haagent.core.actions import WriteStatusKey
from haagent.core.slots import (
    COPY_RETRY_SECONDS,
    leader_slot_actions,
    slot_changes,
    slot_holder,
    to_copy,
    wanted_slots,
)
from haagent.core.snapshot import Snapshot
from haagent.dcs.model import ClusterStatus, ClusterView
from haagent.postgres.model import ReplicationSlot
from haagent.postgres.slots import SlotAdvance, SlotDrop, SlotSpec
from support.snapshots import (
    LocalFacts,
    Tags,
    cluster,
    member,
    primary_pg,
    replace,
    replica_pg,
    snapshot,
)

CONFIG = parse_dynamic_config(
    {
        "slots": {
            "cdc": {"type": "logical", "database": "app", "plugin": "test_decoding"},
            "archiver": {"type": "physical"},
        },
        "ignore_slots": [{"name": "external"}],
    }
)


def physical(name: str, lsn: int = 500, wal_status: str = "reserved") -> ReplicationSlot:
    return ReplicationSlot(name, "physical", restart_lsn=lsn, wal_status=wal_status)


def logical(name: str = "cdc", lsn: int = 500, **kw: object) -> ReplicationSlot:
    fields: dict[str, object] = {"restart_lsn": lsn - 100, "confirmed_flush_lsn": lsn,
                                 "wal_status": "reserved"}  # fmt: skip
    fields.update(kw)
    return ReplicationSlot(name, "logical", "app", "test_decoding", **fields)  # type: ignore[arg-type]


def status(**slots: int) -> ClusterStatus:
    return ClusterStatus(optime=1000, slots=slots, timeline=1)


def test_the_primary_makes_member_and_permanent_slots_and_drops_strays() -> None:
    existing = (physical("node2"), physical("stray"), physical("external"), logical("old_one"))
    s = snapshot("node1", primary_pg(slots=existing), config=CONFIG)
    changes = slot_changes(s)
    assert {spec.name for spec in changes.create} == {"node3", "archiver", "cdc"}
    assert SlotSpec("cdc", "logical", "app", "test_decoding") in changes.create
    dropped = {d.name for d in changes.drop}
    assert dropped == {"stray", "old_one"}  # ignore_slots keeps `external`
    assert next(d for d in changes.drop if d.name == "old_one").database == "app"
    paused = replace(s, config=replace(CONFIG, pause=True))
    assert slot_changes(paused).drop == ()  # nothing dropped in maintenance mode


def test_the_primary_publishes_positions_retained_slots_and_lost_ones() -> None:
    existing = (physical("node2", 700), logical("cdc", 650), logical("gone", 10, wal_status="lost"))
    s = snapshot("node1", primary_pg(lsn=1000, slots=existing), config=CONFIG)
    _, write = leader_slot_actions(s)
    assert isinstance(write, WriteStatusKey)
    # Lost slots are not published as positions (their WAL is gone) but named as lost.
    assert dict(write.slots) == {"node1": 1000, "node2": 700, "cdc": 650}
    assert write.retain == ("node1", "node2", "node3")
    assert write.lost == ("gone",)


def test_a_replica_keeps_its_peers_slots_and_advances_them_never_past_the_leader() -> None:
    existing = (physical("node1", 300), physical("node3", 900), physical("archiver", 100))
    view = replace(cluster(), status=status(node1=1000, node3=800, archiver=400, cdc=600))
    s = snapshot("node2", replica_pg(slots=existing), view, config=CONFIG,
                 local=LocalFacts(following="node1"))  # fmt: skip
    changes = slot_changes(s)
    assert changes.create == ()  # cdc is copied (to_copy), not created, before PostgreSQL 17
    # node3's slot is ahead of what the leader published: never moved back, never ahead.
    assert set(changes.advance) == {
        SlotAdvance("node1", "physical", None, 1000),
        SlotAdvance("archiver", "physical", None, 400),
    }
    assert to_copy(s) == (SlotSpec("cdc", "logical", "app", "test_decoding"),)
    # Positions written on another timeline (a leader that is gone) are not trusted.
    other = replace(s, cluster=replace(view, status=replace(view.status, timeline=2)))
    assert slot_changes(other).advance == ()
    assert to_copy(other) == ()  # no published position: nothing safe to copy yet


def test_a_replicas_copy_of_a_logical_slot_is_advanced_to_the_confirmed_position() -> None:
    existing = (physical("node1", 1000), physical("node3", 1000), physical("archiver", 400),
                logical("cdc", 500))  # fmt: skip
    view = replace(cluster(), status=status(node1=1000, node3=1000, archiver=400, cdc=600))
    s = snapshot("node2", replica_pg(slots=existing), view, config=CONFIG,
                 local=LocalFacts(following="node1"))  # fmt: skip
    assert slot_changes(s).advance == (SlotAdvance("cdc", "logical", "app", 600),)
    assert to_copy(s) == ()
    # From PostgreSQL 17 the standby's slot sync worker moves it; nothing is copied.
    seventeen = replace(s, postgres=replace(s.postgres, server_version=170002))
    assert slot_changes(seventeen).advance == ()
    no_copy = replace(seventeen, postgres=replace(seventeen.postgres, slots=existing[:3]))
    assert to_copy(no_copy) == ()


def test_a_lost_permanent_logical_slot_is_reported_never_made_again_nor_advanced() -> None:
    lost = logical("cdc", 500, wal_status="lost")
    existing = (physical("node2"), physical("node3"), physical("archiver"), lost)
    s = snapshot("node1", primary_pg(slots=existing), config=CONFIG)
    changes = slot_changes(s)
    assert [slot.name for slot in changes.lost] == ["cdc"]
    assert "resynchronise the consumer" in changes.lost[0].handling
    assert changes.drop == () and changes.create == ()
    on_replica = snapshot(
        "node2", replica_pg(slots=(physical("node1"), physical("node3"), physical("archiver"),
                                   lost)),
        replace(cluster(), status=status(cdc=900)), config=CONFIG,
    )  # fmt: skip
    assert slot_changes(on_replica).advance == ()


def test_a_lost_member_slot_is_dropped_and_made_again() -> None:
    existing = (physical("node2", wal_status="lost"), physical("node3"), physical("archiver"))
    s = snapshot("node1", primary_pg(slots=existing), config=CONFIG)
    changes = slot_changes(s)
    assert changes.drop == (SlotDrop("node2", None, "lost"),)
    assert SlotSpec("node2") in changes.create
    assert [slot.name for slot in changes.lost] == ["node2"]


def test_who_holds_a_members_slot_and_nofailover_members() -> None:
    view = cluster()
    assert slot_holder(view, "node2", standby_cluster=False) == "node1"
    assert slot_holder(view, "node1", standby_cluster=False) is None
    # A member that cannot be promoted keeps only slots of members streaming from it.
    s = snapshot("node3", replica_pg(), config=CONFIG, tags=Tags(nofailover=True))
    assert wanted_slots(s) == {}


def test_a_failed_copy_is_tried_again_after_a_while_not_at_every_cycle() -> None:
    existing = (physical("node1", 1000), physical("node3", 1000), physical("archiver", 400))
    view = replace(cluster(), status=status(node1=1000, node3=1000, archiver=400, cdc=600))
    s = snapshot("node2", replica_pg(slots=existing), view, config=CONFIG,
                 local=LocalFacts(following="node1"))  # fmt: skip
    assert to_copy(s) != ()
    just_failed = replace(s, local=replace(s.local, slot_copy_failed_at=s.now - 5))
    assert to_copy(just_failed) == ()
    long_ago = replace(s, local=replace(s.local, slot_copy_failed_at=s.now - COPY_RETRY_SECONDS))
    assert to_copy(long_ago) != ()
    paused = replace(s, config=replace(CONFIG, pause=True))
    assert to_copy(paused) == ()  # a copy restarts PostgreSQL: never in maintenance mode


def test_a_new_primary_without_a_copy_says_its_new_logical_slot_starts_late() -> None:
    existing = (physical("node1"), physical("node3"), physical("archiver"))
    # The previous leader (timeline 1) published cdc; this member leads on timeline 2.
    view = replace(cluster("node2"), status=ClusterStatus(900, {"cdc": 0x3000060}, timeline=1))
    s = snapshot("node2", primary_pg(slots=existing, timeline=2), view, config=CONFIG)
    made = next(spec for spec in slot_changes(s).create if spec.name == "cdc")
    assert made.warning.startswith("logical_slot_made_after_failover: the permanent logical ")
    assert "had got to 0/3000060 on the previous primary" in made.warning
    # Its own status (same timeline): a slot dropped by hand is made anew, nothing to say.
    own = replace(view, status=ClusterStatus(900, {"cdc": 0x3000060}, timeline=2))
    again = next(spec for spec in slot_changes(replace(s, cluster=own)).create
                 if spec.name == "cdc")  # fmt: skip
    assert again.warning == ""


# Cascading: node3 is tagged `replicatefrom: node2`, node1 leads.


def cascade_view(node2_state: str = "running", **node3: object) -> ClusterView:
    fields: dict[str, object] = {"tags": {"replicatefrom": "node2"}, "replay_lsn": 800}
    fields.update(node3)
    members = (member("node1", "primary"), member("node2", state=node2_state),
               member("node3", **fields))  # fmt: skip
    return replace(cluster("node1", members), status=status(node1=1000, node2=900, node3=600))


def member_slots(s: Snapshot) -> dict[str, tuple[bool, int | None]]:
    return {n: (w.in_use_here, w.position) for n, w in wanted_slots(s).items() if w.member}


def test_the_upstream_holds_the_slot_of_the_member_cascading_from_it() -> None:
    on_node2 = snapshot("node2", replica_pg(slots=(physical("node1"), physical("node3", 600))),
                        cascade_view())  # fmt: skip
    # In use there (its member moves it), beside the leader's copy (moved to `status`).
    assert member_slots(on_node2) == {"node1": (False, 1000), "node3": (True, None)}
    assert slot_changes(on_node2).advance == (SlotAdvance("node1", "physical", None, 1000),)
    # Even where no other slot is kept (nofailover; member_slots_ttl 0).
    for s in (replace(on_node2, tags=Tags(nofailover=True)),
              replace(on_node2, config=parse_dynamic_config({"member_slots_ttl": 0}))):  # fmt: skip
        assert member_slots(s) == {"node3": (True, None)}
    # Made before node3 comes: as soon as node2's PostgreSQL accepts connections, though
    # its member key does not say it runs yet (node3 follows it once it does).
    starting = replace(on_node2, cluster=cascade_view(node2_state="starting"),
                       postgres=replica_pg(), tags=Tags(nofailover=True))  # fmt: skip
    assert SlotSpec("node3") in slot_changes(starting).create
    # While node2 is down, the slot is the leader's; node3 streams from (and moves) it.
    down = snapshot("node1", primary_pg(), cascade_view(node2_state="stopped"))
    assert member_slots(down) == {"node2": (True, None), "node3": (True, None)}


def test_the_leader_keeps_a_cascading_members_slot_moved_to_its_reported_replay() -> None:
    existing = (physical("node2", 900), physical("node3", 500))
    s = snapshot("node1", primary_pg(lsn=1000, slots=existing), cascade_view())
    assert member_slots(s) == {"node2": (True, None), "node3": (False, 800)}
    assert slot_changes(s).advance == (SlotAdvance("node3", "physical", None, 800),)
    # Kept with member_slots_ttl 0 too: node3 falls back to the leader when node2 goes.
    ttl0 = replace(s, config=parse_dynamic_config({"member_slots_ttl": 0}))
    assert slot_changes(ttl0).advance == (SlotAdvance("node3", "physical", None, 800),)
    # The leader publishes where the slot is, so the replicas' copies follow it.
    _, write = leader_slot_actions(s)
    assert isinstance(write, WriteStatusKey) and dict(write.slots)["node3"] == 500

    def advance_with(**node3: object) -> tuple[SlotAdvance, ...]:
        return slot_changes(replace(s, cluster=cascade_view(**node3))).advance

    # Never beyond the leader's own position (a member's key is not trusted so far).
    assert advance_with(replay_lsn=5000) == (SlotAdvance("node3", "physical", None, 1000),)
    # Never from a member on another timeline, nor one that says nothing, nor backwards.
    assert advance_with(timeline=2) == ()
    assert advance_with(replay_lsn=None) == ()
    assert advance_with(replay_lsn=400) == ()
    # Not while node3 still streams from it (on its way to node2): its feedback moves it.
    busy = replace(s, postgres=replace(s.postgres, slots=(
        physical("node2", 900), replace(physical("node3", 500), active=True))))  # fmt: skip
    assert slot_changes(busy).advance == ()


def test_a_slot_left_with_an_xmin_is_made_again_where_its_member_does_not_stream() -> None:
    stale = replace(physical("node3", 500), xmin=742)
    s = snapshot("node1", primary_pg(slots=(physical("node2", 900), stale)), cascade_view())
    changes = slot_changes(s)
    assert [d.name for d in changes.drop] == ["node3"] and "xmin 742" in changes.drop[0].why
    assert changes.create == (SlotSpec("node3"),)
    for unchanged in (
        replace(s, postgres=replace(s.postgres, slots=(physical("node2", 900),
                                                       replace(stale, active=True)))),
        replace(s, cluster=cascade_view(node2_state="stopped")),  # in use here
        replace(s, config=parse_dynamic_config({"pause": True})),
    ):  # fmt: skip
        assert slot_changes(unchanged).drop == ()


def test_a_failover_to_the_upstream_or_its_downstream_keeps_the_slots_where_they_stream() -> None:
    members = (member("node1", "replica", state="stopped"), member("node2", "primary"),
               member("node3", tags={"replicatefrom": "node2"}, replay_lsn=800))  # fmt: skip
    old_status = status(node1=1000, node2=900, node3=600)  # timeline 1: the leader gone
    # node2 (the upstream) promoted on timeline 2: node3 streams from it as the leader.
    view = replace(cluster("node2", members), status=old_status)
    s = snapshot("node2", primary_pg(timeline=2, slots=(physical("node1", 300),
                                                        physical("node3", 600))), view)  # fmt: skip
    assert member_slots(s) == {"node1": (True, None), "node3": (True, None)}
    assert slot_changes(s).advance == ()  # nothing from the old timeline's status
    # node3 (the downstream) promoted instead: node2 falls back to it, node1's slot is kept.
    down = (member("node1", "replica", state="stopped"), member("node2"),
            member("node3", "primary", tags={"replicatefrom": "node2"}))  # fmt: skip
    s3 = snapshot("node3", primary_pg(timeline=2, slots=(physical("node1", 300),
                                                         physical("node2", 600))),
                  replace(cluster("node3", down), status=old_status))  # fmt: skip
    assert member_slots(s3) == {"node1": (True, None), "node2": (True, None)}
    assert slot_changes(s3).advance == ()
    # The new leader's own status (timeline 2) is what its replicas follow from then on.
    v2 = replace(cluster("node3", down), status=replace(status(node1=300, node2=700), timeline=2))
    on_node2 = snapshot("node2", replica_pg(timeline=2, slots=(physical("node1", 200),)), v2)
    assert slot_changes(on_node2).advance == (SlotAdvance("node1", "physical", None, 300),)
