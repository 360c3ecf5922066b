"""JSON bodies of the changing endpoints, validated into the typed requests.

Every function here is pure: it takes the decoded body (and the current time
where a schedule must not be in the past) and returns a request, or raises
`BodyError` with the HTTP code and a sentence naming the field that is wrong.
Unknown fields are refused so that a typo (`candiate`) never passes silently.

Codes follow Patroni: 400 for a malformed body, 422 for a schedule in the past.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from haagent.engine.requests import (
    FailoverRequest,
    FailsafeRequest,
    ReinitializeRequest,
    RestartRequest,
    SwitchoverRequest,
)

MAX_BODY_BYTES = 64 * 1024

_VERSION_RE = re.compile(r"\d+(\.\d+){0,2}")
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(ms|s|min|h|d)?\s*")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_RESTART_ROLES = {
    "primary": "primary",
    "master": "primary",
    "standby_leader": "standby_leader",
    "replica": "replica",
    "any": None,
}


class BodyError(ValueError):
    """A request body that cannot be accepted: `status` is the HTTP code to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode(raw: bytes, *, required: bool) -> Any:
    """The JSON value of a body; None for an empty body unless one is `required`."""
    if len(raw) > MAX_BODY_BYTES:
        raise BodyError(f"request body is larger than {MAX_BODY_BYTES} bytes")
    if not raw:
        if required:
            raise BodyError("a JSON object body is required")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("request body is not UTF-8 text") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BodyError(f"request body is not valid JSON: {exc}") from None


def _fields(doc: Any, allowed: frozenset[str], what: str) -> Mapping[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise BodyError(f"the body of {what} must be a JSON object, not {_json_type(doc)}")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise BodyError(f"unknown field {unknown[0]!r} in {what} (expected: {expected})")
    return doc


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _string(doc: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            raise BodyError(f"field {key!r} is required")
        return None
    if not isinstance(value, str):
        raise BodyError(f"field {key!r} must be a string, not {_json_type(value)}")
    return value


def _bool(doc: Mapping[str, Any], key: str) -> bool:
    value = doc.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BodyError(f"field {key!r} must be true or false, not {_json_type(value)}")
    return value


_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def _bool_or_word(doc: Mapping[str, Any], key: str) -> bool:
    """A boolean, or one written as a string (`"True"`, `"false"`, `"on"`), as Patroni reads
    the restart conditions (patronictl and scripts send them either way)."""
    value = doc.get(key, False)
    if isinstance(value, str) and value.lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.lower() in _TRUE_WORDS
    if value is not None and not isinstance(value, bool):
        raise BodyError(
            f'field {key!r} must be true or false (or the string "true"/"false"), '
            f"not {_json_type(value) if not isinstance(value, str) else repr(value)}"
        )
    return bool(value)


def parse_schedule(value: Any, key: str, action: str, now: datetime) -> datetime | None:
    """An ISO-8601 time with a time zone, not in the past (`now` is timezone-aware)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BodyError(f"field {key!r} must be an ISO-8601 string, not {_json_type(value)}")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BodyError(
            f"field {key!r}: cannot parse {value!r} as an ISO-8601 time "
            "(for example 2024-09-24T12:00:00+00:00)"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise BodyError(
            f"field {key!r}: timezone information is mandatory for the scheduled {action}"
        )
    try:
        when.astimezone(UTC)
    except OverflowError:
        raise BodyError(f"field {key!r}: {value!r} is out of range") from None
    if when < now:
        raise BodyError(f"cannot schedule {action} in the past", status=422)
    return when


def _candidate(fields: Mapping[str, Any]) -> str | None:
    """`candidate`, or `member` as older clients call it."""
    candidate = _string(fields, "candidate")
    member = _string(fields, "member")
    return candidate if candidate is not None else member


def switchover(doc: Any, now: datetime) -> SwitchoverRequest:
    """`POST /switchover`: leader required, candidate and scheduled_at optional."""
    fields = _fields(
        doc, frozenset({"leader", "candidate", "member", "scheduled_at"}), "switchover"
    )
    leader = _string(fields, "leader", required=True)
    assert leader is not None
    candidate = _candidate(fields)
    if candidate is not None and candidate == leader:
        raise BodyError(f"switchover target and source are the same: {leader!r}")
    scheduled_at = parse_schedule(fields.get("scheduled_at"), "scheduled_at", "switchover", now)
    return SwitchoverRequest(leader=leader, candidate=candidate, scheduled_at=scheduled_at)


def failover(doc: Any) -> FailoverRequest:
    """`POST /failover`: candidate required; a leader, when given, must differ."""
    fields = _fields(doc, frozenset({"leader", "candidate", "member", "scheduled_at"}), "failover")
    if "scheduled_at" in fields:
        raise BodyError("failover cannot be scheduled; use /switchover")
    candidate = _candidate(fields)
    if candidate is None:
        raise BodyError("field 'candidate' is required for failover")
    leader = _string(fields, "leader")
    if leader is not None and leader == candidate:
        raise BodyError(f"failover target and source are the same: {leader!r}")
    return FailoverRequest(candidate=candidate, leader=leader)


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise BodyError("field 'timeout' must be a number of seconds, not a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.fullmatch(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise BodyError(
            f"field 'timeout' must be a number of seconds (or like '30s'), not {value!r}"
        )
    if not 0 <= seconds < 10**9:
        raise BodyError("field 'timeout' must be between 0 and 10^9 seconds")
    return seconds


def restart(doc: Any, now: datetime) -> RestartRequest:
    """`POST /restart`: every condition optional."""
    allowed = frozenset({"schedule", "role", "postgres_version", "timeout", "restart_pending"})
    fields = _fields(doc, allowed, "restart")
    role_text = _string(fields, "role")
    role: str | None = None
    if role_text is not None:
        if role_text not in _RESTART_ROLES:
            raise BodyError("field 'role' must be one of primary, standby_leader, replica, any")
        role = _RESTART_ROLES[role_text]
    version = fields.get("postgres_version")
    if version is not None:
        if isinstance(version, int) and not isinstance(version, bool):
            version = str(version)
        if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
            raise BodyError("field 'postgres_version' must look like 15 or 15.4")
    return RestartRequest(
        schedule=parse_schedule(fields.get("schedule"), "schedule", "restart", now),
        role=role,
        postgres_version=version,
        timeout=_timeout(fields.get("timeout")),
        restart_pending=_bool_or_word(fields, "restart_pending"),
    )


def reinitialize(doc: Any) -> ReinitializeRequest:
    """`POST /reinitialize`: `force`, and `from_leader` (Patroni spells it `from-leader`)."""
    fields = _fields(doc, frozenset({"force", "from_leader", "from-leader"}), "reinitialize")
    underscore, hyphen = _bool(fields, "from_leader"), _bool(fields, "from-leader")
    from_leader = underscore or hyphen
    return ReinitializeRequest(force=_bool(fields, "force"), from_leader=from_leader)


def failsafe(doc: Any) -> FailsafeRequest:
    """`POST /failsafe` from the leader: its member data, `name` required."""
    if not isinstance(doc, dict):
        raise BodyError(f"the body of failsafe must be a JSON object, not {_json_type(doc)}")
    leader = _string(doc, "name", required=True)
    assert leader is not None
    for key in ("conn_url", "api_url"):
        _string(doc, key)
    slots = doc.get("slots")
    if slots is not None and not (
        isinstance(slots, dict)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in slots.values())
    ):
        raise BodyError("field 'slots' must be an object of slot names to integer LSNs")
    return FailsafeRequest(leader=leader, body=doc)


_CONFIG_INTS = frozenset(
    {
        "ttl",
        "loop_wait",
        "retry_timeout",
        "maximum_lag_on_failover",
        "maximum_lag_on_syncnode",
        "primary_start_timeout",
        "primary_stop_timeout",
        "master_start_timeout",
        "master_stop_timeout",
        "synchronous_node_count",
        "member_slots_ttl",
        "max_timelines_history",
    }
)
_CONFIG_BOOLS = frozenset({"synchronous_mode_strict", "failsafe_mode", "check_timeline", "pause"})
_CONFIG_OBJECTS = frozenset({"postgresql", "slots", "standby_cluster"})


def config(doc: Any, *, patch: bool) -> Mapping[str, Any]:
    """`PATCH /config` (null deletes a key) or `PUT /config`: an object, known keys typed."""
    what = "PATCH /config" if patch else "PUT /config"
    if not isinstance(doc, dict):
        raise BodyError(f"the body of {what} must be a JSON object, not {_json_type(doc)}")
    for key, value in doc.items():
        if value is None:
            if patch:
                continue
            raise BodyError(f"field {key!r} is null; PUT /config takes values, not deletions")
        if key in _CONFIG_INTS and (isinstance(value, bool) or not isinstance(value, int)):
            raise BodyError(f"field {key!r} must be an integer, not {_json_type(value)}")
        if key in _CONFIG_BOOLS and not isinstance(value, bool):
            raise BodyError(f"field {key!r} must be true or false, not {_json_type(value)}")
        if key == "synchronous_mode" and not (isinstance(value, bool) or value == "quorum"):
            raise BodyError("field 'synchronous_mode' must be true, false or 'quorum'")
        if key in _CONFIG_OBJECTS and not isinstance(value, dict):
            raise BodyError(f"field {key!r} must be a JSON object, not {_json_type(value)}")
        if key in _CONFIG_INTS and key != "maximum_lag_on_syncnode" and value < 0:
            raise BodyError(f"field {key!r} must not be negative")
    return doc
