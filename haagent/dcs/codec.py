"""Exact bytes of Patroni's etcd keys, to and from the `haagent.dcs.model` types.

Pure functions, no I/O.  JSON is written the way Patroni writes it
(`json.dumps(value, separators=(",", ":"))`: compact, ASCII-escaped, keys in a
fixed order) so that `patronictl`, vip-manager and dashboards read a haagent
cluster unchanged.

Everything read from etcd is untrusted: decoders raise `ValueError` on a value
that is not what Patroni writes (wrong JSON type, too large, nested too deep,
numbers out of range), and `decode_view` turns any exception into one warning
naming the key and treats the key as absent, so no value can stop the HA loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from haagent.config.dynamic import parse_dynamic_config
from haagent.config.errors import ConfigError
from haagent.config.model import DynamicConfig
from haagent.config.parse import MEMBER_NAME_RULE, is_member_name
from haagent.dcs.kv import KeyValue
from haagent.dcs.model import (
    ClusterStatus,
    ClusterView,
    Failover,
    HistoryEntry,
    Leader,
    Member,
    SyncState,
)
from haagent.postgres.slots import SLOT_NAME

log = logging.getLogger("haagent.dcs")

LEADER = "leader"
MEMBERS = "members/"
CONFIG = "config"
INITIALIZE = "initialize"
STATUS = "status"
HISTORY = "history"
SYNC = "sync"
FAILOVER = "failover"
FAILSAFE = "failsafe"
# haagent's event history (haagent.dcs.events): not part of the cluster view.
EVENTS = "events/"
# Written by Patroni before `status` existed; read as the optime when `status` is absent.
LEGACY_OPTIME = "optime/leader"

# The member JSON keys every member publishes, in Patroni's order.
_MEMBER_HEAD = ("conn_url", "api_url", "state", "role", "version")

# Limits on what is read: Patroni's values are a few hundred bytes, a few levels deep
# (a long `history` grows by ~100 bytes per failover).
MAX_VALUE_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_LSN = 2**64 - 1
MAX_TIMELINE = 2**32 - 1
MIN_SCHEDULE = datetime.min.replace(tzinfo=UTC) + timedelta(days=2)
MAX_SCHEDULE = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)


def dumps(value: Any) -> bytes:
    """JSON as Patroni writes it: compact separators, ASCII escapes, insertion order."""
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _loads(value: bytes) -> Any:
    try:
        data = json.loads(value.decode("utf-8"))
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    _check_depth(data)
    return data


def _check_depth(data: Any) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH (it must survive re-encoding)."""
    level: list[Any] = [data]
    for _ in range(MAX_JSON_DEPTH):
        children: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                children.extend(item.values())
            elif isinstance(item, list):
                children.extend(item)
        if not children:
            return
        level = children
    raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def _object(value: bytes, what: str) -> dict[str, Any]:
    data = _loads(value)
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")
    return data


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdigit() and len(digits) <= 30:
            return int(text)
    return None


def _bounded_int(value: object, what: str, maximum: int, minimum: int = 0) -> int | None:
    """An optional integer within [minimum, maximum]; anything else present is an error."""
    number = _opt_int(value)
    if number is None and value is not None:
        raise ValueError(f"{what} {_shown(value)} is not an integer")
    if number is not None and not minimum <= number <= maximum:
        raise ValueError(f"{what} {number} is out of range")
    return number


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _str_field(data: Mapping[str, Any], key: str, default: str) -> str:
    """A text field of a JSON object: absent or null gives `default`, another type is an error."""
    value = data.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ValueError(f"{key} {_shown(value)} is not a string")
    return value


def _shown(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- leader, initialize -------------------------------------------------------------------


def encode_leader(name: str) -> bytes:
    """The `leader` value: the member name as plain text, no quotes."""
    return name.encode("utf-8")


def _name(value: object, what: str) -> str:
    """A member name read from etcd (a key or a value): it ends up in postgresql.conf."""
    if not isinstance(value, str) or not is_member_name(value):
        raise ValueError(f"{what} {_shown(value)} is not a member name ({MEMBER_NAME_RULE})")
    return value


def _opt_name(value: object, what: str) -> str | None:
    return None if value is None or value == "" else _name(value, what)


def decode_leader(kv: KeyValue) -> Leader:
    name = _name(kv.value.decode("utf-8"), "the leader")
    return Leader(name=name, lease_id=kv.lease, mod_revision=kv.mod_revision)


def encode_initialize(sysid: str) -> bytes:
    """The database system identifier as a decimal string; `""` while bootstrapping."""
    if sysid and not sysid.isdigit():
        raise ValueError(f"system identifier {sysid!r} is not a decimal number")
    return sysid.encode("ascii")


# -- members --------------------------------------------------------------------------------


def encode_member(data: Mapping[str, Any]) -> bytes:
    """`members/<name>`: the member's JSON object exactly as given (ordered by the caller)."""
    return dumps(dict(data))


def member_to_dict(member: Member) -> dict[str, Any]:
    """The member JSON for `member`: modelled fields over `raw`, Patroni's keys first."""
    result: dict[str, Any] = {
        "conn_url": member.conn_url,
        "api_url": member.api_url,
        "state": member.state,
        "role": member.role,
        "version": member.version,
    }
    result.update((k, v) for k, v in member.raw.items() if k not in result)
    optional: dict[str, Any] = {
        "tags": dict(member.tags) or None,
        "xlog_location": member.xlog_location,
        "timeline": member.timeline,
        "replication_state": member.replication_state,
        "receive_lsn": member.receive_lsn,
        "replay_lsn": member.replay_lsn,
        "pending_restart": member.pending_restart or None,
        "scheduled_restart": dict(member.scheduled_restart) if member.scheduled_restart else None,
        "pause": member.pause or None,
    }
    for key, value in optional.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def decode_member(name: str, value: bytes, mod_revision: int = 0) -> Member:
    _name(name, "the key's member name")
    data = _object(value, f"member {name}")
    tags = data.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise ValueError(f"tags {_shown(tags)} is not a JSON object")
    scheduled = data.get("scheduled_restart")
    return Member(
        name=name,
        conn_url=_str_field(data, "conn_url", ""),
        api_url=_str_field(data, "api_url", ""),
        state=_str_field(data, "state", "stopped"),
        role=_str_field(data, "role", "uninitialized"),
        version=_str_field(data, "version", ""),
        tags=dict(tags) if isinstance(tags, dict) else {},
        xlog_location=_bounded_int(data.get("xlog_location"), "xlog_location", MAX_LSN),
        timeline=_bounded_int(data.get("timeline"), "timeline", MAX_TIMELINE),
        replication_state=_opt_str(data.get("replication_state")),
        receive_lsn=_bounded_int(data.get("receive_lsn"), "receive_lsn", MAX_LSN),
        replay_lsn=_bounded_int(data.get("replay_lsn"), "replay_lsn", MAX_LSN),
        pending_restart=bool(data.get("pending_restart", False)),
        scheduled_restart=dict(scheduled) if isinstance(scheduled, dict) else None,
        pause=bool(data.get("pause", False)),
        raw=data,
        mod_revision=mod_revision,
    )


# -- sync, failover, failsafe ---------------------------------------------------------------


def encode_sync(leader: str | None, sync_standby: Iterable[str], quorum: int = 0) -> bytes:
    """`{"leader":..,"sync_standby":"a,b" or null,"quorum":n}`, standbys sorted as Patroni does."""
    names = sorted(set(sync_standby))
    return dumps({"leader": leader, "sync_standby": ",".join(names) or None, "quorum": quorum})


def decode_sync(value: bytes, mod_revision: int = 0) -> SyncState:
    data = _object(value, "sync")
    standby = data.get("sync_standby")
    if isinstance(standby, str):
        names = tuple(_name(n.strip(), "sync_standby") for n in standby.split(",") if n.strip())
    elif isinstance(standby, list):
        names = tuple(_name(n, "sync_standby") for n in standby)
    elif standby is None:
        names = ()
    else:
        raise ValueError("sync_standby is neither a string nor null")
    return SyncState(
        leader=_opt_name(data.get("leader"), "leader"),
        sync_standby=names,
        quorum=_opt_int(data.get("quorum")) or 0,
        mod_revision=mod_revision,
    )


def encode_failover(
    leader: str | None, candidate: str | None, scheduled_at: datetime | None = None
) -> bytes:
    """`{"leader":..,"member":..,"scheduled_at":ISO-8601}` with only the fields that are set."""
    value: dict[str, str] = {}
    if leader:
        value["leader"] = leader
    if candidate:
        value["member"] = candidate
    if scheduled_at is not None:
        if scheduled_at.tzinfo is None or scheduled_at.utcoffset() is None:
            raise ValueError("failover scheduled_at must carry a timezone")
        value["scheduled_at"] = scheduled_at.isoformat()
    return dumps(value)


CLEARED_FAILOVER = b"{}"


def decode_failover(value: bytes, mod_revision: int = 0) -> Failover | None:
    """The requested switchover/failover, or None for `{}` (no request)."""
    data = _object(value, "failover")
    scheduled_at = None
    if data.get("scheduled_at"):
        scheduled_at = datetime.fromisoformat(_str_field(data, "scheduled_at", ""))
        if scheduled_at.tzinfo is None:
            raise ValueError(f"failover scheduled_at {data['scheduled_at']!r} has no timezone")
        # Times at the edge of the calendar overflow when compared across time zones.
        try:
            in_range = MIN_SCHEDULE <= scheduled_at.astimezone(UTC) <= MAX_SCHEDULE
        except OverflowError:
            in_range = False
        if not in_range:
            raise ValueError(f"failover scheduled_at {data['scheduled_at']!r} is out of range")
    leader = _opt_name(data.get("leader"), "leader")
    candidate = _opt_name(data.get("member"), "member") or _opt_name(
        data.get("candidate"), "candidate"
    )
    if leader is None and candidate is None and scheduled_at is None:
        return None
    return Failover(leader, candidate, scheduled_at, mod_revision=mod_revision)


def encode_failsafe(members: Mapping[str, str]) -> bytes:
    return dumps(dict(members))


def decode_failsafe(value: bytes) -> dict[str, str]:
    data = _object(value, "failsafe")
    for name, url in data.items():
        _name(name, "failsafe member")
        if not isinstance(url, str):
            raise ValueError(f"the api_url of {name!r} is {_shown(url)}, not a string")
    return dict(data)


# -- history, status, config -----------------------------------------------------------------


def encode_history(history: Iterable[HistoryEntry]) -> bytes:
    """A JSON list of `[timeline, lsn, "reason", "ISO time", "new leader"]` rows."""
    rows: list[list[Any]] = []
    for entry in history:
        row: list[Any] = [entry.timeline, entry.lsn, entry.reason]
        if entry.timestamp is not None or entry.new_leader is not None:
            row.append(entry.timestamp)
        if entry.new_leader is not None:
            row.append(entry.new_leader)
        rows.append(row)
    return dumps(rows)


def decode_history(value: bytes) -> tuple[HistoryEntry, ...]:
    data = _loads(value)
    if not isinstance(data, list):
        raise ValueError("history is not a JSON list")
    entries = []
    for row in data:
        if not isinstance(row, list) or len(row) < 3:
            raise ValueError(f"history row {row!r} is not [timeline, lsn, reason, ...]")
        timeline = _bounded_int(row[0], "history timeline", MAX_TIMELINE)
        lsn = _bounded_int(row[1], "history lsn", MAX_LSN)
        if timeline is None or lsn is None:
            raise ValueError(f"history row {row!r} has no integer timeline and lsn")
        timestamp = row[3] if len(row) > 3 and isinstance(row[3], str) else None
        new_leader = row[4] if len(row) > 4 and isinstance(row[4], str) else None
        entries.append(HistoryEntry(timeline, lsn, str(row[2]), timestamp, new_leader))
    return tuple(entries)


def encode_status(
    optime: int,
    slots: Mapping[str, int],
    retain_slots: Iterable[str] = (),
    timeline: int | None = None,
    lost_slots: Iterable[str] = (),
) -> bytes:
    """`{"optime":<int>,"slots":{name:<int>},"retain_slots":[..]}`, and haagent's
    `"timeline":<int>` when given and `"lost_slots":[..]` when there are any (Patroni's
    readers skip keys they do not know)."""
    value: dict[str, Any] = {
        "optime": int(optime),
        "slots": {str(k): int(v) for k, v in slots.items()},
        "retain_slots": list(retain_slots),
    }
    if timeline is not None:
        value["timeline"] = int(timeline)
    lost = sorted(str(name) for name in lost_slots)
    if lost:
        value["lost_slots"] = lost
    return dumps(value)


def decode_status(value: bytes) -> ClusterStatus:
    data = _object(value, "status")
    slots = data.get("slots")
    retain = data.get("retain_slots")
    lost = data.get("lost_slots")
    return ClusterStatus(
        optime=_bounded_int(data.get("optime"), "optime", MAX_LSN),
        slots={
            str(k): v
            for k, v in (slots or {}).items()
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_LSN
        }
        if isinstance(slots, dict)
        else {},
        retain_slots=tuple(str(s) for s in retain) if isinstance(retain, list) else (),
        timeline=_bounded_int(data.get("timeline"), "timeline", MAX_TIMELINE),
        lost_slots=tuple(s for s in lost if isinstance(s, str) and SLOT_NAME.match(s))
        if isinstance(lost, list)
        else (),
    )


def encode_config(config: Mapping[str, Any]) -> bytes:
    return dumps(dict(config))


def decode_config(value: bytes) -> DynamicConfig:
    data = _object(value, "config")
    try:
        return parse_dynamic_config(data, source="config")
    except ConfigError as e:
        raise ValueError(str(e)) from e


# -- the whole view ---------------------------------------------------------------------------

# Decoded values by key, valid while the key's mod_revision is unchanged.
DecodeCache = dict[str, tuple[int, object]]
_BAD = object()


def _decode_key(key: str, kv: KeyValue) -> object:
    if len(kv.value) > MAX_VALUE_BYTES:
        raise ValueError(f"the value is {len(kv.value)} bytes, over the limit of {MAX_VALUE_BYTES}")
    if key == LEADER:
        return decode_leader(kv)
    if key.startswith(MEMBERS):
        return decode_member(key[len(MEMBERS) :], kv.value, kv.mod_revision)
    if key == CONFIG:
        return decode_config(kv.value)
    if key == INITIALIZE:
        sysid = kv.value.decode("utf-8")
        if sysid and not (sysid.isascii() and sysid.isdigit()):
            raise ValueError(f"{_shown(sysid)} is not a database system identifier")
        return sysid
    if key == SYNC:
        return decode_sync(kv.value, kv.mod_revision)
    if key == FAILOVER:
        return decode_failover(kv.value, kv.mod_revision)
    if key == HISTORY:
        return decode_history(kv.value)
    if key == STATUS:
        return decode_status(kv.value)
    if key == FAILSAFE:
        return decode_failsafe(kv.value)
    if key == LEGACY_OPTIME:
        optime = _bounded_int(kv.value.decode("utf-8"), "optime/leader", MAX_LSN)
        if optime is None:
            raise ValueError("optime/leader is not an integer")
        return ClusterStatus(optime=optime)
    return None


def _decoded(
    key: str, kv: KeyValue, cache: DecodeCache | None, revision: int, prefix: str
) -> object:
    if cache is not None:
        hit = cache.get(key)
        if hit is not None and hit[0] == kv.mod_revision:
            return hit[1]
    try:
        value = _decode_key(key, kv)
    except Exception as e:  # any value at all must leave the HA loop deciding
        why = str(e) if isinstance(e, ValueError | UnicodeDecodeError) else type(e).__name__
        log.warning(
            "ignoring etcd key %s%s (mod_revision %d) at revision %d: %s; it counts as absent "
            "until it is rewritten",
            prefix, key, kv.mod_revision, revision, why[:200],
        )  # fmt: skip
        value = _BAD
    if cache is not None:
        cache[key] = (kv.mod_revision, value)
    return value


def decode_view(
    kvs: Mapping[str, KeyValue],
    *,
    revision: int | None = None,
    cache: DecodeCache | None = None,
    prefix: str = "",
) -> ClusterView:
    """The cluster view of one full read: `kvs` maps keys relative to `prefix` to values.

    A malformed value is logged (once per revision of the key when a `cache` is
    kept) and treated as absent; its revision is still reported for `config`,
    `sync` and `failover`, so a CAS can replace it.
    """
    if revision is None:
        revision = max((kv.mod_revision for kv in kvs.values()), default=0)
    fields: dict[str, Any] = {}
    members: dict[str, Member] = {}
    legacy_status: ClusterStatus | None = None
    for key in sorted(kvs):
        kv = kvs[key]
        value = _decoded(key, kv, cache, revision, prefix)
        if key == CONFIG:
            fields["config_revision"] = kv.mod_revision
        elif key == FAILOVER:
            fields["failover_revision"] = kv.mod_revision
        elif key == SYNC:
            fields["sync_revision"] = kv.mod_revision
        if value is _BAD or value is None:
            continue
        if key.startswith(MEMBERS):
            member = cast(Member, value)
            members[member.name] = member
        elif key == LEGACY_OPTIME:
            legacy_status = cast(ClusterStatus, value)
        elif key in (LEADER, CONFIG, INITIALIZE, SYNC, FAILOVER, HISTORY, STATUS, FAILSAFE):
            fields[key] = value
    if STATUS not in fields and legacy_status is not None:
        fields[STATUS] = legacy_status
    return ClusterView(revision=revision, members=members, **fields)
