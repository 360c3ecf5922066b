"""Who streams from whom (`core/topology.py`) and who keeps a member's slot."""

from __future__ import annotations

from typing import Any

from haagent.core import topology
from haagent.core.slots import wanted_slots
from support.snapshots import DynamicConfig, DynamicPostgresql, cluster, member, snapshot


def view(tags: dict[str, dict[str, Any]], down: tuple[str, ...] = ()) -> Any:
    members = tuple(
        member(n, "primary" if n == "node1" else "replica", tags=tags.get(n, {}),
               state="stopped" if n in down else "running")
        for n in ("node1", "node2", "node3", "node4")
    )  # fmt: skip
    return cluster("node1", members)


def up(v: Any, name: str, tags: dict[str, Any], **kw: Any) -> str | None:
    return topology.upstream(v, name, tags, standby_cluster=False, **kw)


def test_replicatefrom_names_a_running_member_else_the_leader() -> None:
    tags = {"node3": {"replicatefrom": "node2"}}
    assert up(view(tags), "node3", tags["node3"]) == "node2"
    assert up(view(tags, down=("node2",)), "node3", tags["node3"]) == "node1"  # falls back
    assert up(view(tags), "node3", {"replicatefrom": "nobody"}) == "node1"
    assert up(view(tags), "node1", {}) is None  # the leader streams from nobody


def test_a_chain_is_followed_and_a_cycle_is_broken() -> None:
    chain = {"node3": {"replicatefrom": "node2"}, "node4": {"replicatefrom": "node3"}}
    assert up(view(chain), "node4", chain["node4"]) == "node3"
    cycle = {"node2": {"replicatefrom": "node3"}, "node3": {"replicatefrom": "node2"}}
    v = view(cycle)
    assert up(v, "node2", cycle["node2"]) == "node1"
    assert up(v, "node3", cycle["node3"]) == "node1"


def test_nostream_streams_from_nobody_and_gets_no_slot_on_the_leader() -> None:
    tags = {"node4": {"nostream": True}, "node3": {"replicatefrom": "node2"}}
    v = view(tags)
    assert up(v, "node4", tags["node4"]) is None
    assert topology.slot_holder(v, "node4", standby_cluster=False) is None
    assert topology.slot_holder(v, "node3", standby_cluster=False) == "node2"
    # The leader keeps the slots of those streaming from it in use, node3's (which
    # cascades from node2 and falls back to the leader) too, not in use; none for node4.
    s = snapshot("node1", view=v)
    wanted = wanted_slots(s)
    assert {name for name, slot in wanted.items() if slot.in_use_here} == {"node2"}
    assert set(wanted) == {"node2", "node3"}
    no_slots = DynamicConfig(postgresql=DynamicPostgresql(use_slots=False))
    assert wanted_slots(snapshot("node1", view=v, config=no_slots)) == {}


def test_the_slot_holder_follows_the_topology_with_slots_on() -> None:
    """One rule: a member's slot is held where it streams from, `replicatefrom` honoured
    whatever `use_slots` says (the chain, the fallback, the return)."""
    chain = {"node3": {"replicatefrom": "node2"}, "node4": {"replicatefrom": "node3"}}
    v = view(chain)
    holders = {n: topology.slot_holder(v, n, standby_cluster=False) for n in chain}
    assert holders == {"node3": "node2", "node4": "node3"}
    for name, tags in chain.items():  # where it streams from is where its slot is
        assert up(v, name, tags) == holders[name]
    down = view(chain, down=("node2",))
    assert topology.slot_holder(down, "node3", standby_cluster=False) == "node1"
    # The rule asks for a running chain up to the leader: node4 falls back to it too.
    assert topology.slot_holder(down, "node4", standby_cluster=False) == "node1"
    # A member without a member key may come back: the leader keeps its slot.
    gone = cluster("node1", tuple(m for m in v.members.values() if m.name != "node3"))
    assert topology.slot_holder(gone, "node3", standby_cluster=False) == "node1"
