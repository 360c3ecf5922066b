"""Patroni's rules for the boolean tags and their priority counterparts, in one place.

`nofailover` / `failover_priority` and `nosync` / `sync_priority` say the same thing
twice.  When the boolean tag is set it decides; otherwise a priority of 0 or less
means "never" (a promotion, a synchronous standby).  The priority defaults to 1, and
is 0 when the boolean tag is true.  The config (`Tags`), members read from etcd and
peers' REST answers all go through these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _never(tags: Mapping[str, Any], flag: str, priority: str) -> bool:
    value = tags.get(flag)
    if value is not None:
        return bool(value)
    number = _int(tags.get(priority))
    return number is not None and number <= 0


def _priority(tags: Mapping[str, Any], flag: str, priority: str) -> int:
    if tags.get(flag):
        return 0
    number = _int(tags.get(priority))
    return 1 if number is None else number


def nofailover(tags: Mapping[str, Any]) -> bool:
    """Never promoted (`nofailover`, or a `failover_priority` of 0 or less without it)."""
    return _never(tags, "nofailover", "failover_priority")


def failover_priority(tags: Mapping[str, Any]) -> int:
    return _priority(tags, "nofailover", "failover_priority")


def nosync(tags: Mapping[str, Any]) -> bool:
    """Never a synchronous standby (`nosync`, or a `sync_priority` of 0 or less without it)."""
    return _never(tags, "nosync", "sync_priority")


def sync_priority(tags: Mapping[str, Any]) -> int:
    return _priority(tags, "nosync", "sync_priority")


def nostream(tags: Mapping[str, Any]) -> bool:
    """Never streams WAL: replays from the archive (restore_command) only."""
    value = tags.get("nostream")
    return value is True or (isinstance(value, str) and value.strip().lower() in _TRUE_WORDS)


def replicatefrom(tags: Mapping[str, Any]) -> str | None:
    """The member to stream from (`replicatefrom`), when it names one."""
    value = tags.get("replicatefrom")
    return value if isinstance(value, str) and value.strip() else None


_TRUE_WORDS = frozenset({"on", "true", "yes", "y", "1"})
