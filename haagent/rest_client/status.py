"""A member's `GET /patroni` document as one typed value.

haagent writes the document in `haagent.api.status_json.node_status`; Patroni writes
the same fields.  `parse_status` reads either into a `MemberStatus`, for the agent (a
peer's WAL position in a leader race) and for `haactl` (`explain`, `version`, the
last decision after a switchover).  A member's answer is untrusted: a document that is
not a member's status (not an object, `xlog` or `tags` not objects, a `role` that is
not text, a primary's `xlog.location` that is not a WAL position) is refused with
`BadStatus`; an optional field of the wrong kind counts as absent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from haagent.config import tags as tag_rules
from haagent.dcs.codec import MAX_LSN, MAX_TIMELINE

# The roles whose `xlog.location` is the position of a server that accepts writes.
PRIMARY_ROLES = frozenset({"primary", "master", "standby_leader"})


class BadStatus(ValueError):
    """The document is not a member's status; the text says what is wrong with it."""


@dataclass(frozen=True)
class LastDecision:
    """haagent's own block (`haagent`): the last HA decision and the watchdog's state."""

    reason_code: str | None = None
    reason_text: str | None = None
    watchdog: str | None = None


@dataclass(frozen=True)
class MemberStatus:
    state: str | None = None
    role: str | None = None
    timeline: int | None = None
    server_version: int | None = None
    # `xlog`: a primary's `location`, a replica's `received_location`/`replayed_location`
    location: int | None = None
    received_location: int | None = None
    replayed_location: int | None = None
    tags: Mapping[str, Any] = field(default_factory=dict)
    watchdog_failed: bool = False
    # Its pre_promote script cancelled its promotion lately: it keeps out of races.
    pre_promote_failed: bool = False
    version: str | None = None  # `patroni.version`: the agent's version
    haagent: LastDecision | None = None  # None: the member runs Patroni (or an old haagent)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def in_recovery(self) -> bool:
        return self.role not in ("primary", "master")

    @property
    def lsn(self) -> int | None:
        """The WAL position for a race: a primary's location, else the best of a replica's
        received and replayed positions."""
        if self.role in PRIMARY_ROLES and self.location is not None:
            return self.location
        known = [p for p in (self.received_location, self.replayed_location) if p is not None]
        return max(known) if known else None

    @property
    def nofailover(self) -> bool:
        """Not to be promoted now: its tags say so, its required watchdog is unusable, or
        its pre_promote script just cancelled its promotion."""
        return tag_rules.nofailover(self.tags) or self.watchdog_failed or self.pre_promote_failed

    @property
    def failover_priority(self) -> int:
        return tag_rules.failover_priority(self.tags)


def _int_in(value: object, maximum: int) -> int | None:
    """An integer within 0..maximum, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum:
        return value
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _last_decision(block: object) -> LastDecision:
    if not isinstance(block, dict):
        return LastDecision()
    return LastDecision(
        reason_code=_text(block.get("reason_code")),
        reason_text=_text(block.get("reason_text")),
        watchdog=_text(block.get("watchdog")),
    )


def parse_status(body: object) -> MemberStatus:
    """The typed value of a decoded `GET /patroni` document; raises BadStatus."""
    if not isinstance(body, dict):
        raise BadStatus("not a JSON object")
    xlog = body.get("xlog") or {}
    tags = body.get("tags") or {}
    role = body.get("role")
    for key, value, kind in (("xlog", xlog, dict), ("tags", tags, dict), ("role", role, str)):
        if value is not None and not isinstance(value, kind):
            raise BadStatus(f"{key} is a {type(value).__name__}, not a {kind.__name__}")
    location = None
    if role in PRIMARY_ROLES and "location" in xlog:
        location = _int_in(xlog["location"], MAX_LSN)
        if location is None:
            shown = str(xlog["location"])[:40]
            raise BadStatus(f"xlog.location {shown!r} is not a WAL position")
    patroni = body.get("patroni")
    server_version = _int_in(body.get("server_version"), 2**31 - 1)
    return MemberStatus(
        state=_text(body.get("state")),
        role=role,
        timeline=_int_in(body.get("timeline"), MAX_TIMELINE),
        server_version=server_version or None,
        location=location,
        received_location=_int_in(xlog.get("received_location"), MAX_LSN),
        replayed_location=_int_in(xlog.get("replayed_location"), MAX_LSN),
        tags=tags,
        watchdog_failed=bool(body.get("watchdog_failed")),
        pre_promote_failed=body.get("pre_promote_failed") is True,
        version=_text(patroni.get("version")) if isinstance(patroni, dict) else None,
        haagent=_last_decision(body.get("haagent")) if "haagent" in body else None,
    )


def decode_status(raw: bytes) -> MemberStatus:
    """`parse_status` of the JSON text of an answer; raises BadStatus."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise BadStatus(f"not JSON ({str(e)[:80]})") from None
    return parse_status(body)
