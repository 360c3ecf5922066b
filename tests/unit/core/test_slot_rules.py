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
from haagent.dcs.model import ClusterStatus
from haagent.postgres.model import ReplicationSlot
from haagent.postgres.slots import SlotAdvance, SlotDrop, SlotSpec
from support.snapshots import (
    LocalFacts,
    Tags,
    cluster,
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
