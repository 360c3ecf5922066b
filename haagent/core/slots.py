"""The slot rules: which replication slots a member keeps, where each should be, and what
to change to get there.  Pure: a function of the snapshot.

Patroni's semantics:

- a member's physical slot (named after it, `slot_name`) is kept on every other member
  that may become the primary, while it is in the cluster and for `member_slots_ttl`
  seconds after it was last seen (`retained`): on the member it streams from (its
  upstream, `slot_holder`: the leader, or the member its `replicatefrom` names, a
  replica), on the others so that whichever it falls back to or is promoted already
  holds it, and the WAL it needs.  With `member_slots_ttl: 0` only its upstream holds
  it, and the leader while it cascades (it falls back to the leader when its upstream
  goes); a `nofailover` member keeps only the slots of members that stream from it;
- the leader moves the slot of a member that cascades (nobody streams through it there)
  to the replay position the member publishes in its key (`reported_position`), never
  beyond the leader's own position, never from a member on another timeline: the slot
  keeps what the member needs to fall back, and no more;
- the permanent slots of the dynamic `slots` are kept on every member that may become
  the primary: physical ones, and logical ones (`database`, `plugin`), but not on a
  member that does not stream (`nostream`: its primary would not hear how far it is);
- where a slot's consumer streams (`in_use_here`), the consumer moves it; everywhere
  else haagent moves it to the position the leader publishes in the `status` key, never
  ahead of it, so a promoted member exposes each slot at or before where its consumer
  got: a logical consumer resumes with at-least-once delivery and loses no change;
- a logical slot cannot be created on a standby before PostgreSQL 17: a replica gets a
  copy of the primary's (`CopyLogicalSlots`); from 17 on, the standby's slot sync
  worker keeps the slots created with `failover` (`sync_replication_slots`);
- slots nobody wants are dropped, unless `ignore_slots` matches them, they are in use,
  or the cluster is paused; a member's slot its member does not stream from here, with
  an `xmin` (hot_standby_feedback from when it did) is dropped and made again, as Patroni
  does: nobody would move that xmin, and it holds back vacuum here (and on a replica, its
  upstream's, through its own feedback);
- a slot PostgreSQL reports lost (`wal_status = 'lost'`) is reported; a member's slot
  and a permanent physical slot are dropped and made again (their consumer sees the
  gap: it cannot stream from WAL that is gone), a permanent logical slot never is: a new
  one would start after changes its consumer has not read, so it is left as it is,
  not advanced, until someone resynchronises the consumer and drops it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from haagent.config.model import DynamicConfig
from haagent.core import topology
from haagent.core.actions import Action, EnsureSlots, WriteStatusKey
from haagent.core.snapshot import Snapshot
from haagent.dcs.model import ClusterView
from haagent.postgres.lsn import format_lsn
from haagent.postgres.model import ReplicationSlot, SlotKind
from haagent.postgres.slots import (
    SLOT_MADE_AFTER_FAILOVER_CODE,
    SLOT_NAME,
    SLOT_SYNC_SINCE,
    LostSlot,
    SlotAdvance,
    SlotChanges,
    SlotDrop,
    SlotSpec,
    permanent_slots,
    slot_name,
)

# After a copy of logical slots failed, or found nothing it could copy yet, wait this long
# before trying again (one line in the log each time).
COPY_RETRY_SECONDS = 15.0


@dataclass(frozen=True)
class WantedSlot:
    """A slot this member should have, and where it should be."""

    name: str
    kind: SlotKind
    database: str | None = None
    plugin: str | None = None
    member: bool = False  # a member's slot (else a permanent one)
    # Its consumer streams from this member, and moves it (haagent does not).
    in_use_here: bool = False
    # The position the leader published for it (None: unknown, or in use here).
    position: int | None = None

    def spec(self, failover: bool = False) -> SlotSpec:
        return SlotSpec(self.name, self.kind, self.database, self.plugin, failover)

    def matches(self, slot: ReplicationSlot) -> bool:
        """The slot on PostgreSQL is this one (same type; same database and plugin)."""
        if slot.kind != self.kind:
            return False
        return self.kind == "physical" or (slot.database, slot.plugin) == (
            self.database,
            self.plugin,
        )


def slot_holder(view: ClusterView, member: str, *, standby_cluster: bool) -> str | None:
    """The member whose PostgreSQL `member` streams from, and so holds `member`'s slot in
    use: `core.topology`'s rule (the leader, a standby cluster's standby leader, or the
    member `replicatefrom` names while it runs; None for the leader itself, a `nostream`
    member, or when there is none)."""
    return topology.slot_holder(view, member, standby_cluster=standby_cluster)


def _view_from_here(s: Snapshot) -> ClusterView:
    """The cluster as the holder rule should see it here: this member running while its
    PostgreSQL accepts connections, though its member key may not say so yet, so that it
    makes the slots of those cascading from it before they come (they follow it as soon as
    its key says it runs)."""
    me = s.cluster.members.get(s.name)
    if me is None or me.state == "running" or not (s.postgres.running and s.postgres.accepting):
        return s.cluster
    return replace(s.cluster, members={**s.cluster.members, s.name: replace(me, state="running")})


def reported_position(s: Snapshot, member_name: str) -> int | None:
    """How far member `member_name` replayed, as its member key says (`replay_lsn`), for
    moving its slot here while it streams from another member: None unless it is on this
    node's timeline (a position on another timeline may lie beyond the fork), and never
    beyond this node's own position."""
    member = s.cluster.members.get(member_name)
    own = s.postgres.lsn
    if member is None or member.replay_lsn is None or own is None:
        return None
    if member.timeline is None or member.timeline != s.postgres.timeline:
        return None
    return min(member.replay_lsn, own)


def _streams(tags: Mapping[str, Any]) -> bool:
    return not tags.get("nostream")


def member_slot_names(view: ClusterView, own_name: str, config: DynamicConfig) -> tuple[str, ...]:
    """The slot names of the members in the cluster now (but `own_name`, and members that
    do not stream)."""
    if not config.postgresql.use_slots:
        return ()
    own = slot_name(own_name)
    names = {slot_name(m.name) for m in view.members.values() if _streams(m.tags)} - {own}
    return tuple(sorted(n for n in names if SLOT_NAME.match(n)))


def retained(s: Snapshot) -> tuple[str, ...]:
    """The member slots kept now: those of the members in the view, those needed within
    member_slots_ttl (the engine's memory), and on a replica those the leader lists in
    `retain_slots`."""
    if not s.config.postgresql.use_slots:
        return ()
    names = set(member_slot_names(s.cluster, s.name, s.config)) | set(s.local.slots_retained)
    if not s.holds_key:
        names |= set(s.cluster.status.retain_slots)
    names.discard(slot_name(s.name))
    return tuple(sorted(n for n in names if SLOT_NAME.match(n)))


def published_retain(s: Snapshot) -> tuple[str, ...]:
    """`retain_slots` as the leader publishes it: the member slots it keeps, and its own
    (after a failover the new leader keeps a slot for it)."""
    if not s.config.postgresql.use_slots:
        return ()
    return tuple(sorted({*retained(s), slot_name(s.name)}))


def trusted_positions(s: Snapshot) -> Mapping[str, int]:
    """The slot positions of the `status` key, when the leader that wrote them is on this
    member's timeline: positions written by a leader that is gone (before the new one
    writes its own) may lie beyond where the new timeline forked."""
    status = s.cluster.status
    if status.timeline is None or status.timeline != s.postgres.timeline:
        return {}
    return {name: lsn for name, lsn in status.slots.items() if SLOT_NAME.match(name)}


def wanted_slots(s: Snapshot) -> dict[str, WantedSlot]:
    """The slots this member should have now, with the published position of each."""
    cfg = s.config
    if not cfg.postgresql.use_slots:
        return {}
    own = slot_name(s.name)
    nofailover = not s.tags.can_be_leader
    positions = trusted_positions(s)
    members = {slot_name(m.name): m.name for m in s.cluster.members.values()}
    view = _view_from_here(s)
    result: dict[str, WantedSlot] = {}
    for name in retained(s):
        member = members.get(name, name)
        holder = slot_holder(view, member, standby_cluster=cfg.standby_cluster is not None)
        here = holder == s.name
        # On the leader, the slot of a member cascading from another: it falls back here.
        cascading = s.holds_key and holder is not None and not here
        if not (here or cascading) and (nofailover or cfg.member_slots_ttl <= 0):
            continue
        if here:
            position = None
        elif cascading:
            position = reported_position(s, member)
        else:
            position = positions.get(name)
        result[name] = WantedSlot(name, "physical", member=True, in_use_here=here,
                                  position=position)  # fmt: skip
    if nofailover:
        return result
    primary = s.holds_key and s.is_running_primary
    for name, slot in permanent_slots(cfg).items():
        if name == own or name in result:
            continue  # never a slot for oneself; a member's slot wins over a permanent one
        if slot.kind == "logical" and s.tags.nostream:
            continue
        result[name] = WantedSlot(
            name,
            slot.kind,
            slot.database,
            slot.plugin,
            in_use_here=primary,
            position=None if primary else positions.get(name),
        )
    return result


def _ignored(slot: ReplicationSlot, ignore_slots: tuple[Mapping[str, Any], ...]) -> bool:
    """An `ignore_slots` entry matches: each of name, type, database, plugin it gives."""
    facts = {"name": slot.name, "type": slot.kind, "database": slot.database,
             "plugin": slot.plugin}  # fmt: skip
    return any(
        all(not value or facts.get(key) == value for key, value in entry.items())
        for entry in ignore_slots
    )


def _lost_handling(wanted: WantedSlot | None, ignored: bool) -> str:
    if ignored:
        return "ignore_slots names it: haagent leaves it alone"
    if wanted is None:
        return "no member or permanent slot needs it: dropped"
    if wanted.kind == "physical":
        return (
            "dropped and created again; its consumer cannot stream the WAL that is gone "
            "(a member that needs it is cloned again with haactl reinit)"
            if wanted.member
            else "dropped and created again at the current position; its consumer cannot "
            "stream the WAL that is gone"
        )
    return (
        "it is not advanced and not created again, since a new slot would start after "
        "changes its consumer has not read: resynchronise the consumer, then drop the "
        f"slot (SELECT pg_drop_replication_slot('{wanted.name}')) and haagent creates it anew"
    )


def slot_changes(s: Snapshot) -> SlotChanges:
    """What to change in this member's slots now: drop, create, advance, and the lost
    slots to report.  Logical slots a replica must copy are `to_copy`'s."""
    pg = s.postgres
    cfg = s.config
    if not cfg.postgresql.use_slots or not (pg.running and pg.accepting):
        return SlotChanges()
    primary = s.holds_key and s.is_running_primary
    sync_worker = not primary and (pg.server_version or 0) >= SLOT_SYNC_SINCE
    wanted = wanted_slots(s)
    existing = {slot.name: slot for slot in pg.slots if not slot.temporary}
    drop: list[SlotDrop] = []
    create: list[SlotSpec] = []
    advance: list[SlotAdvance] = []
    lost: list[LostSlot] = []
    for name, slot in sorted(existing.items()):
        want = wanted.get(name)
        ignored = want is None and _ignored(slot, cfg.ignore_slots)
        if slot.lost:
            lost.append(LostSlot(name, slot.kind, _lost_handling(want, ignored)))
        if want is None:
            synced = sync_worker and slot.kind == "logical" and slot.synced
            if not (ignored or synced or slot.active or cfg.pause):
                drop.append(SlotDrop(name, slot.database, "no member or permanent slot needs it"))
            continue
        if not want.matches(slot):
            if not (slot.active or cfg.pause):
                why = f"it is {slot.kind} {slot.plugin or ''} {slot.database or ''}".rstrip()
                drop.append(SlotDrop(name, slot.database, f"{why}; the config wants another"))
                if want.kind == "physical" or primary:
                    create.append(want.spec(failover=_failover(s)))
            continue
        if slot.lost:
            if want.kind == "physical" and not (slot.active or cfg.pause):
                drop.append(SlotDrop(name, slot.database, "lost"))
                create.append(want.spec())
            continue  # a permanent logical slot: never made again, never advanced
        if _stale_xmin(s, want, slot):
            drop.append(SlotDrop(name, None, f"its member does not stream from here and its "
                                 f"xmin {slot.xmin} would hold back vacuum"))  # fmt: skip
            create.append(want.spec())
            continue
        if want.in_use_here or want.position is None:
            continue
        if want.kind == "logical" and sync_worker:
            continue  # PostgreSQL's slot sync worker moves it
        if slot.position is not None and want.position > slot.position and not slot.active:
            advance.append(SlotAdvance(name, slot.kind, slot.database, want.position))
    for name, want in sorted(wanted.items()):
        if name in existing:
            continue
        if want.kind == "physical":
            create.append(want.spec())
        elif primary:
            create.append(replace(want.spec(failover=_failover(s)), warning=_made_late(s, name)))
    return SlotChanges(tuple(drop), tuple(create), tuple(advance), tuple(lost))


def _stale_xmin(s: Snapshot, want: WantedSlot, slot: ReplicationSlot) -> bool:
    """A member's slot here that its member does not stream from (it did, with
    hot_standby_feedback, and left): nobody moves its xmin.  Not while the cluster has no
    leader, nor on a standby leader (as Patroni), nor in maintenance mode."""
    if not want.member or want.in_use_here or slot.kind != "physical":
        return False
    if slot.xmin is None or slot.active or s.config.pause or s.cluster.leader is None:
        return False
    return not s.holds_key or s.is_running_primary


def _made_late(s: Snapshot, name: str) -> str:
    """What to say when a new primary makes a permanent logical slot that the previous
    leader published (another timeline's `status`): it had no copy, so the new slot starts
    at this node's position, after changes its consumer may not have read."""
    status = s.cluster.status
    before = status.slots.get(name)
    if before is None or status.timeline == s.postgres.timeline:
        return ""
    return (
        f"{SLOT_MADE_AFTER_FAILOVER_CODE}: the permanent logical slot {name} had no copy on "
        f"{s.name} when it became the primary: made anew at its current position; its "
        f"consumer had got to {format_lsn(before)} on the previous primary and may miss the "
        "changes in between: resynchronise it"
    )


def _failover(s: Snapshot) -> bool:
    """A logical slot the primary creates is a failover slot from PostgreSQL 17 on."""
    return (s.postgres.server_version or 0) >= SLOT_SYNC_SINCE


def to_copy(s: Snapshot) -> tuple[SlotSpec, ...]:
    """The permanent logical slots this replica (PostgreSQL before 17) should copy from the
    leader now: missing here, created there (the leader published a position for them),
    no copy failed within COPY_RETRY_SECONDS, not in maintenance mode (a copy restarts
    PostgreSQL)."""
    pg = s.postgres
    if (
        s.holds_key
        or s.config.pause
        or not (pg.running and pg.accepting and pg.in_recovery and pg.receiver_streaming)
        or (pg.server_version or 0) >= SLOT_SYNC_SINCE
    ):
        return ()
    failed = s.local.slot_copy_failed_at
    if failed is not None and s.now - failed < COPY_RETRY_SECONDS:
        return ()
    present = {slot.name for slot in pg.slots}
    return tuple(
        want.spec()
        for name, want in sorted(wanted_slots(s).items())
        if want.kind == "logical" and name not in present and want.position is not None
    )


def published_positions(s: Snapshot) -> dict[str, int]:
    """The slot positions the leader publishes in `status`: each slot's (a logical slot's
    confirmed position, a physical slot's restart_lsn), its own slot at its WAL position
    (replicas keep a slot for it); with member_slots_ttl 0 only the permanent slots, as
    Patroni does.  Lost slots are left out: their WAL is gone."""
    cfg = s.config
    if not cfg.postgresql.use_slots:
        return {}
    permanent = permanent_slots(cfg)
    every = cfg.member_slots_ttl > 0
    result = {
        slot.name: slot.position
        for slot in s.postgres.slots
        if not slot.temporary and not slot.lost and slot.position is not None
        and (every or slot.name in permanent)
    }  # fmt: skip
    own = slot_name(s.name)
    if s.postgres.write_lsn is not None and (every or own in permanent):
        result[own] = s.postgres.write_lsn
    return result


def slot_lag(slot: ReplicationSlot, position: int | None) -> int | None:
    """Bytes of WAL between this node's position and where the slot's consumer got."""
    if position is None or slot.position is None:
        return None
    return max(0, position - slot.position)


def leader_slot_actions(s: Snapshot) -> list[Action]:
    """The primary's slot upkeep each cycle: its slots, then the `status` key."""
    positions = tuple(sorted(published_positions(s).items()))
    lost = tuple(sorted(slot.name for slot in s.postgres.slots if slot.lost and not slot.temporary))
    return [EnsureSlots(slot_changes(s)), WriteStatusKey(positions, published_retain(s), lost)]


def replica_slot_actions(s: Snapshot) -> list[Action]:
    """A replica's slot upkeep: only when there is something to change or to report."""
    changes = slot_changes(s)
    return [EnsureSlots(changes)] if changes else []
