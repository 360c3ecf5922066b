"""Physical replication slots: one per member on the primary, named after the member.

Which slots to drop is a pure decision (`slots_to_drop`) on member last-seen
times, so a member that is away for a while (a reboot, a re-clone) keeps its
WAL, and one gone for longer than the retention period (`member_slots_ttl`)
stops holding WAL forever.  Only slots named after members haagent knew are
ever dropped: slots users made for other purposes are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from haagent.postgres.lsn import parse_lsn_or_none

SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")


def slot_name(member_name: str) -> str:
    """A member's slot: its name lowercased, anything not [a-z0-9_] turned into `_`."""
    return re.sub(r"[^a-z0-9_]", "_", member_name.lower())[:63]


def check_slot_name(name: str) -> str:
    if not SLOT_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a slot name ([a-z0-9_], at most 63): use slot_name(member_name)"
        )
    return name


def gone_for_longer(last_seen: Mapping[str, float], now: float, retention: float) -> set[str]:
    """The names in `last_seen` not seen for longer than `retention` seconds: a member's
    slot is kept that long after it was last seen (`member_slots_ttl`), then dropped."""
    return {name for name, seen in last_seen.items() if now - seen > retention}


def slots_to_drop(
    existing: Iterable[str],
    last_seen: Mapping[str, float],
    now: float,
    retention: float,
    keep: Iterable[str] = (),
) -> set[str]:
    """Slots of members (by name) not seen for longer than `retention` seconds.

    `last_seen` maps member names to when they were last seen in the cluster
    (the current members with `now`); slots of unknown members and `keep` stay.
    """
    kept = set(keep)
    newest: dict[str, float] = {}
    for member, seen in last_seen.items():
        name = slot_name(member)
        newest[name] = max(seen, newest.get(name, seen))
    stale = gone_for_longer(newest, now, retention)
    return {name for name in existing if name in stale and name not in kept}


@dataclass(frozen=True)
class Slot:
    name: str
    active: bool
    restart_lsn: int | None
    temporary: bool = False


LIST_SQL = (
    "SELECT slot_name, active, restart_lsn::text, temporary FROM pg_replication_slots "
    "WHERE slot_type = 'physical' ORDER BY slot_name"
)


def slots_from_rows(rows: Iterable[tuple[object, ...]]) -> dict[str, Slot]:
    result = {}
    for name, active, restart, temporary in rows:
        lsn = parse_lsn_or_none(None if restart is None else str(restart))
        result[str(name)] = Slot(str(name), bool(active), lsn, bool(temporary))
    return result


def permanent_physical_slots(slots: Mapping[str, Any]) -> set[str]:
    """The dynamic config's `slots` of type physical (the default type)."""
    return {
        name
        for name, spec in slots.items()
        if not isinstance(spec, Mapping) or spec.get("type", "physical") == "physical"
    }


def ignored(name: str, ignore_slots: Iterable[Mapping[str, Any]]) -> bool:
    """Matches an `ignore_slots` entry for physical slots (`name` and `type` optional)."""
    return any(
        entry.get("type", "physical") == "physical" and entry.get("name", name) == name
        for entry in ignore_slots
    )


def plan_slots(
    existing: Mapping[str, Slot],
    members: Iterable[str],
    own_name: str,
    permanent: Iterable[str] = (),
    ignore_slots: Iterable[Mapping[str, Any]] = (),
) -> tuple[set[str], set[str]]:
    """(to create, to drop) so that the primary has exactly the slots it should.

    Wanted: one per member (but this one) and the permanent ones.  Like Patroni,
    other physical slots are dropped unless `ignore_slots` names them; temporary
    slots (pg_basebackup's) and slots in use are never dropped.
    """
    wanted = {slot_name(m) for m in members if m != own_name} | set(permanent)
    ignore = list(ignore_slots)
    create = wanted - set(existing)
    drop = {
        name
        for name, slot in existing.items()
        if name not in wanted and not slot.temporary and not slot.active
        and not ignored(name, ignore)
    }  # fmt: skip
    return create, drop
