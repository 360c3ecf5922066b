"""Which standbys the leader names synchronous: sync_priority, nosync, maximum_lag_on_syncnode."""

from __future__ import annotations

from dataclasses import replace

from haagent.core.rules.sync_choice import wanted_sync_standbys
from support.snapshots import (
    DynamicConfig,
    cluster,
    member,
    primary_pg,
    snapshot,
    streaming,
)


def choose(
    tags: dict[str, dict[str, object]], flush: dict[str, int], **config: object
) -> tuple[str, ...]:
    rows = tuple(replace(r, flush_lsn=flush.get(r.application_name, 1000))
                 for r in streaming("node2", "node3", "node4"))  # fmt: skip
    members = (
        member("node1", "primary", lsn=5000),
        *(member(n, tags=tags.get(n, {})) for n in ("node2", "node3", "node4")),
    )
    cfg = DynamicConfig(synchronous_mode=True, **config)  # type: ignore[arg-type]
    s = snapshot("node1", primary_pg(lsn=5000, replication=rows), cluster("node1", members),
                 config=cfg)  # fmt: skip
    return wanted_sync_standbys(s)


def test_the_most_advanced_standby_first() -> None:
    assert choose({}, {"node2": 1000, "node3": 3000, "node4": 2000}) == ("node3",)


def test_sync_priority_goes_before_position() -> None:
    tags = {"node2": {"sync_priority": 5}, "node3": {"sync_priority": 1}}
    assert choose(tags, {"node2": 1000, "node3": 3000}) == ("node2",)
    two = choose(tags, {"node2": 1000, "node3": 3000, "node4": 2000},
                 synchronous_node_count=2)  # fmt: skip
    assert two == ("node2", "node3")


def test_nosync_and_sync_priority_zero_are_never_chosen() -> None:
    tags = {"node3": {"nosync": True}, "node4": {"sync_priority": 0}}
    assert choose(tags, {"node2": 1000, "node3": 3000, "node4": 4000}) == ("node2",)
    # nosync: false decides over sync_priority 0, as Patroni's rule goes: node3 may be
    # synchronous, last in the order of priority.
    tags = {"node3": {"nosync": False, "sync_priority": 0}}
    flush = {"node2": 1000, "node3": 3000, "node4": 2000}
    assert choose(tags, flush, synchronous_node_count=3) == ("node4", "node2", "node3")


def test_maximum_lag_on_syncnode_drops_a_lagging_standby() -> None:
    flush = {"node2": 1000, "node3": 900_000, "node4": 1_000_000}
    # node4 is the most advanced; node2 lags 999_000 bytes behind it.
    assert choose({"node2": {"sync_priority": 9}}, flush) == ("node2",)
    chosen = choose({"node2": {"sync_priority": 9}}, flush, maximum_lag_on_syncnode=500_000)
    assert chosen == ("node4",)
    # -1 (the default) keeps the old behaviour: no standby is dropped for its lag.
    assert choose({"node2": {"sync_priority": 9}}, flush, maximum_lag_on_syncnode=-1) == ("node2",)
