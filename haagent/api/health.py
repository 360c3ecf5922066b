"""What each health endpoint answers, as pure functions of the published status.

Nothing here reads a clock, a socket or PostgreSQL: `check()` takes the status
the HA loop published, the request's query parameters and the current
monotonic time, and returns the HTTP code with the instant until which that
answer stays true (so the server can cache it).

Decisions, where Patroni's documentation leaves room:

- `/primary` (and `/`, `/master`, `/read-write`) is 200 only while the node
  holds the leader key, runs PostgreSQL read-write, its role is `primary`, and
  the key's lease, as this node computes it, has not lapsed
  (`leader_expires_at`).  A node that demotes publishes `demoting`/`demoted`
  first, and a node whose loop is stuck stops answering 200 when its lease
  would have expired.
- `/leader` is 200 for a key holder running as `primary` or `standby_leader`
  (not for a key holder that is demoting).
- `lag=` accepts bytes or PostgreSQL memory units (`B`, `kB`, `MB`, `GB`, `TB`,
  1024 apart, case-sensitive like PostgreSQL, an optional space between number
  and unit).  An unparseable value is ignored, as Patroni does, so a health
  check that worked against Patroni never takes every replica out of a pool.
- Lag is the leader's last known WAL position (the newer of the DCS `status`
  key's optime and the leader member's `xlog_location`, as everywhere:
  `haagent.core.fitness`) minus this node's replay position (its receive
  position for `/readiness?mode=write`).  An unknown leader
  position never counts as lagging; an unknown local position counts as 0.
- `tag_<key>=<value>` must equal the node's tag, compared as text without case
  (`true` matches a YAML `true`); a tag the node does not have never matches.
  Tag filters apply to the replica checks (`/replica`, `/read-only` on a
  replica, `/sync`, `/async`) and are ignored for the leader checks.
- `/liveness` is 200 while the last HA cycle finished less than `ttl` seconds
  ago on a primary, `2 * ttl` on any other node (Patroni's thresholds), or
  always while paused.  Before the first cycle the server's start time counts
  as the last cycle, so a starting agent is alive for one threshold.
- `/readiness` is 200 for the leader, or a running replica whose WAL receiver
  streams and whose lag is within `lag=` (default: `maximum_lag_on_failover`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

from haagent.core.fitness import lag, primary_position
from haagent.engine.status import PublishedStatus

FOREVER = math.inf

_UNITS = {"": 1, "B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_LAG_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")


class Kind(Enum):
    PRIMARY = "primary"
    LEADER = "leader"
    STANDBY_LEADER = "standby-leader"
    REPLICA = "replica"
    READ_ONLY = "read-only"
    READ_ONLY_SYNC = "read-only-sync"
    READ_ONLY_QUORUM = "read-only-quorum"
    HEALTH = "health"
    SYNC = "sync"
    QUORUM = "quorum"
    ASYNC = "async"
    LIVENESS = "liveness"
    READINESS = "readiness"


# Every path a health check answers on, Patroni's aliases included.
PATHS: Mapping[str, Kind] = {
    "/": Kind.PRIMARY,
    "/primary": Kind.PRIMARY,
    "/master": Kind.PRIMARY,
    "/read-write": Kind.PRIMARY,
    "/leader": Kind.LEADER,
    "/standby-leader": Kind.STANDBY_LEADER,
    "/standby_leader": Kind.STANDBY_LEADER,
    "/replica": Kind.REPLICA,
    "/read-only": Kind.READ_ONLY,
    "/read-only-sync": Kind.READ_ONLY_SYNC,
    "/read-only-synchronous": Kind.READ_ONLY_SYNC,
    "/read-only-quorum": Kind.READ_ONLY_QUORUM,
    "/quorum": Kind.QUORUM,
    "/health": Kind.HEALTH,
    "/sync": Kind.SYNC,
    "/synchronous": Kind.SYNC,
    "/async": Kind.ASYNC,
    "/asynchronous": Kind.ASYNC,
    "/liveness": Kind.LIVENESS,
    "/readiness": Kind.READINESS,
}


def parse_lag(value: str) -> int | None:
    """Bytes from `1048576`, `16kB`, `10MB`, `1.5 GB`; None when it is not such a value."""
    match = _LAG_RE.fullmatch(value)
    if match is None:
        return None
    number, unit = match.groups()
    multiplier = _UNITS.get(unit)
    if multiplier is None:
        return None
    size = float(number) * multiplier
    return int(size) if math.isfinite(size) else None  # 400 digits: not a lag either


def lag_bytes(status: PublishedStatus, *, received: bool = False) -> int | None:
    """How far this node's replay (or receive) position is behind the leader's; None if the
    leader's is unknown (an unknown local position counts as 0)."""
    pg = status.postgres
    own = pg.receive_lsn if received else pg.replay_lsn
    return lag(primary_position(status.cluster), own or 0)


def replication_state(status: PublishedStatus) -> str | None:
    """`streaming` or `in archive recovery` on a running replica, None elsewhere."""
    pg = status.postgres
    if not (pg.running and pg.in_recovery):
        return None
    return "streaming" if pg.receiver_streaming else "in archive recovery"


def tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def tags_match(status: PublishedStatus, query: Mapping[str, str]) -> bool:
    for key, wanted in query.items():
        if not key.startswith("tag_"):
            continue
        name = key[4:]
        if name not in status.tags or tag_text(status.tags[name]).lower() != wanted.lower():
            return False
    return True


def _listed_in_sync_key(status: PublishedStatus) -> bool:
    sync = status.cluster.sync
    return status.config.synchronous and sync is not None and sync.is_sync(status.name)


def is_sync_standby(status: PublishedStatus) -> bool:
    """A synchronous standby of `synchronous_mode: on` (a quorum standby is not one)."""
    return _listed_in_sync_key(status) and not status.config.quorum


def is_quorum_standby(status: PublishedStatus) -> bool:
    """A voter of the sync key under quorum commit (`synchronous_mode: quorum`)."""
    return _listed_in_sync_key(status) and status.config.quorum


def _leader_until(status: PublishedStatus, now: float) -> float | None:
    """Until when this node counts as the key holder; None if it does not now."""
    if not status.holds_leader_key:
        return None
    until = status.leader_expires_at
    if until is None:
        return FOREVER
    return until if now < until else None


def _is_lagging(status: PublishedStatus, query: Mapping[str, str]) -> bool:
    raw = query.get("lag")
    limit = parse_lag(raw) if raw is not None else None
    if limit is None:
        return False
    lag = lag_bytes(status)
    return lag is not None and lag > limit


def replica_ok(status: PublishedStatus, query: Mapping[str, str]) -> bool:
    """Patroni's replica check: running replica, load-balanced, not lagging, tags and state."""
    if not status.is_running_replica or status.state != "running":
        return False
    if tag_text(status.tags.get("noloadbalance", False)).lower() in ("true", "on", "yes", "1"):
        return False
    if _is_lagging(status, query):
        return False
    wanted_state = query.get("replication_state")
    if wanted_state is not None and wanted_state != replication_state(status):
        return False
    return tags_match(status, query)


def _primary(status: PublishedStatus, now: float) -> tuple[int, float]:
    until = _leader_until(status, now)
    if until is not None and status.is_primary and status.state == "running":
        return 200, until
    return 503, FOREVER


def _leader(status: PublishedStatus, now: float) -> tuple[int, float]:
    until = _leader_until(status, now)
    if until is not None and status.role in ("primary", "standby_leader"):
        return 200, until
    return 503, FOREVER


def _standby_leader(status: PublishedStatus, now: float) -> tuple[int, float]:
    until = _leader_until(status, now)
    if until is not None and status.role == "standby_leader" and status.postgres.running:
        return 200, until
    return 503, FOREVER


def _liveness(status: PublishedStatus, now: float, started_at: float) -> tuple[int, float]:
    if status.paused:
        return 200, FOREVER
    threshold = status.config.ttl * (1 if status.is_primary else 2)
    deadline = max(status.loop_finished_at, started_at) + threshold
    return (200, deadline) if now < deadline else (503, FOREVER)


def _readiness(status: PublishedStatus, query: Mapping[str, str], now: float) -> tuple[int, float]:
    until = _leader_until(status, now)
    if until is not None and status.role in ("primary", "standby_leader"):
        return (200, until) if status.postgres.running else (503, FOREVER)
    pg = status.postgres
    if not (status.is_running_replica and pg.receiver_streaming):
        return 503, FOREVER
    raw = query.get("lag")
    limit = parse_lag(raw) if raw is not None else None
    if limit is None:
        limit = status.config.maximum_lag_on_failover
    lag = lag_bytes(status, received=query.get("mode") == "write")
    return (503, FOREVER) if lag is not None and lag > limit else (200, FOREVER)


def check(
    kind: Kind,
    status: PublishedStatus,
    query: Mapping[str, str],
    now: float,
    *,
    started_at: float = 0.0,
) -> tuple[int, float]:
    """The HTTP code of a health check, and the monotonic instant until which it holds.

    `now` and `started_at` are monotonic times.  A 200 from a leader check holds
    until the leader key would lapse; any answer may change with a new status.
    """
    if kind is Kind.PRIMARY:
        return _primary(status, now)
    if kind is Kind.LEADER:
        return _leader(status, now)
    if kind is Kind.STANDBY_LEADER:
        return _standby_leader(status, now)
    if kind is Kind.REPLICA:
        return (200 if replica_ok(status, query) else 503), FOREVER
    if kind in (Kind.READ_ONLY, Kind.READ_ONLY_SYNC, Kind.READ_ONLY_QUORUM):
        code, until = _primary(status, now)
        if code == 200:
            return code, until
        listed = {
            Kind.READ_ONLY: True,
            Kind.READ_ONLY_SYNC: is_sync_standby(status),
            Kind.READ_ONLY_QUORUM: is_quorum_standby(status),
        }[kind]
        return (200 if listed and replica_ok(status, query) else 503), FOREVER
    if kind is Kind.HEALTH:
        ok = status.postgres.running and status.state == "running"
        return (200 if ok else 503), FOREVER
    if kind is Kind.SYNC:
        ok = is_sync_standby(status) and replica_ok(status, query)
        return (200 if ok else 503), FOREVER
    if kind is Kind.QUORUM:
        ok = is_quorum_standby(status) and replica_ok(status, query)
        return (200 if ok else 503), FOREVER
    if kind is Kind.ASYNC:
        ok = not _listed_in_sync_key(status) and replica_ok(status, query)
        return (200 if ok else 503), FOREVER
    if kind is Kind.LIVENESS:
        return _liveness(status, now, started_at)
    return _readiness(status, query, now)
