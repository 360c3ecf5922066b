"""The cluster's event history in etcd: one bounded ring of keys per member.

Each member appends to its own keys, `<prefix>events/<member>/<slot>` with
`slot = seq % EVENTS_PER_MEMBER` (four digits), so members never contend and the
history never grows past EVENTS_PER_MEMBER events per member: the oldest slot is
overwritten.  A value is one JSON object::

    {"seq": 41, "time": 1764518400.25, "member": "node1", "kind": "failover",
     "code": "leader_race", "text": "...", "timeline": 3, "lsn": 50331800}

The keys carry no lease: the history outlives the member.  They are not part of
the cluster view: full reads skip the `events/` range (`view.read_cluster`) and
the watch ignores it, so the HA loop never reads or waits for them.  Readers
(`haactl events`, `GET /events`) merge the members' rings by time; a value that
is not such an object is skipped and counted, never fatal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from haagent.config.parse import duration_seconds, is_member_name
from haagent.dcs import codec
from haagent.dcs.kv import Get, KeyValue, KVBackend, Put, prefix_range_end

EVENTS_PER_MEMBER = 1000
MAX_TEXT = 1000  # characters of an event's text kept (a failure's message can be long)
MAX_EVENT_BYTES = 8192


@dataclass(frozen=True)
class ClusterEvent:
    member: str
    seq: int
    time: float  # Unix time in seconds
    kind: str
    code: str
    text: str
    timeline: int | None = None
    lsn: int | None = None


@dataclass(frozen=True)
class EventsRead:
    """Events merged across members in time order, and how many values were unreadable."""

    events: tuple[ClusterEvent, ...]
    skipped: int = 0


def parse_since(text: str, now: datetime) -> float:
    """The Unix time a `since` of `text` means at `now`: a duration back (90s, 30min, 2h,
    1d) or a time (ISO 8601; local time when it names no offset).  ValueError otherwise."""
    seconds = duration_seconds(text)
    if seconds is not None:
        return now.timestamp() - seconds
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"since {text[:40]!r} is neither a duration (such as 90s, 30min, 2h, 1d) nor a "
            "time (such as 2026-11-30T03:00 or 2026-11-30T03:00+01:00)"
        ) from None
    return (when if when.tzinfo is not None else when.astimezone()).timestamp()


def event_document(event: ClusterEvent) -> dict[str, Any]:
    """One event as JSON (`GET /events`, `haactl events -f json`): the time in ISO 8601 UTC."""
    when = datetime.fromtimestamp(event.time, UTC).isoformat(timespec="milliseconds")
    return {**asdict(event), "time": when}


def event_key(member: str, seq: int) -> str:
    return f"{codec.EVENTS}{member}/{seq % EVENTS_PER_MEMBER:04d}"


def encode_event(event: ClusterEvent) -> bytes:
    data = asdict(event)
    data["text"] = event.text[:MAX_TEXT]
    return codec.dumps(data)


def _int(data: dict[str, object], key: str, *, optional: bool = False) -> int | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ValueError(f"{key} {value!r:.40} is not a non-negative integer")
    return value


def _str(data: dict[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ValueError(f"{key} is not a string of at most {MAX_TEXT} characters")
    return value


def decode_event(key: str, value: bytes) -> ClusterEvent:
    """The event stored at `key` (relative to the prefix); ValueError when it is not one."""
    if len(value) > MAX_EVENT_BYTES:
        raise ValueError(f"{len(value)} bytes, over {MAX_EVENT_BYTES}")
    member = key[len(codec.EVENTS) :].rpartition("/")[0]
    try:
        data = json.loads(value.decode("utf-8"))
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("member") != member or not is_member_name(member):
        raise ValueError(f"member {data.get('member')!r:.40} does not match the key")
    when = data.get("time")
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise ValueError("time is not a number")
    seq = _int(data, "seq")
    assert seq is not None
    return ClusterEvent(
        member=member,
        seq=seq,
        time=float(when),
        kind=_str(data, "kind"),
        code=_str(data, "code"),
        text=_str(data, "text"),
        timeline=_int(data, "timeline", optional=True),
        lsn=_int(data, "lsn", optional=True),
    )


def merge_events(
    kvs: Iterable[KeyValue],
    prefix: bytes,
    *,
    member: str | None = None,
    since: float | None = None,
) -> EventsRead:
    """Decode the events among `kvs`, keep `member`'s (all when None) from `since` (Unix
    time) on, and order them by time (then member and sequence)."""
    events: list[ClusterEvent] = []
    skipped = 0
    for kv in kvs:
        key = kv.key[len(prefix) :].decode("utf-8", errors="replace")
        if not key.startswith(codec.EVENTS):
            continue
        try:
            event = decode_event(key, kv.value)
        except ValueError:
            skipped += 1
            continue
        if member is not None and event.member != member:
            continue
        if since is not None and event.time < since:
            continue
        events.append(event)
    events.sort(key=lambda e: (e.time, e.member, e.seq))
    return EventsRead(tuple(events), skipped)


def events_range(prefix: bytes, member: str | None = None) -> Get:
    """The range of every member's events, or of one member's."""
    start = prefix + codec.EVENTS.encode("utf-8")
    if member is not None:
        start += member.encode("utf-8") + b"/"
    return Get(start, prefix_range_end(start))


async def read_events(
    backend: KVBackend,
    prefix: bytes,
    *,
    budget: float,
    member: str | None = None,
    since: float | None = None,
) -> EventsRead:
    where = events_range(prefix, member)
    _, kvs = await backend.range(where.key, where.range_end, budget=budget)
    return merge_events(kvs, prefix, member=member, since=since)


async def last_seq(backend: KVBackend, prefix: bytes, member: str, *, budget: float) -> int:
    """The highest sequence number `member` wrote (-1 when it wrote none)."""
    found = await read_events(backend, prefix, member=member, budget=budget)
    return max((e.seq for e in found.events), default=-1)


async def write_event(
    backend: KVBackend, prefix: bytes, event: ClusterEvent, *, budget: float
) -> None:
    """Store `event` in its member's ring (overwriting the slot's oldest event)."""
    key = prefix + event_key(event.member, event.seq).encode("utf-8")
    await backend.txn([], [Put(key, encode_event(event))], budget=budget)
