"""Which HA cycles are worth an entry in the cluster's event history (`haactl events`).

Pure: the engine describes each cycle as a `CycleFacts` twice, when it has decided
(`decision_events`: the agent's start, a new role, a new reason code) and once the
actions ran (`outcome_events`: the leader key moving to or from this member, a
switchover or a failover when this member took it, a failed action once per
distinct failure, maintenance mode switched on or off by the member holding the
leader key).  Steady cycles record nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class EventKind(StrEnum):
    ROLE = "role"
    LEADER = "leader"
    SWITCHOVER = "switchover"
    FAILOVER = "failover"
    DECISION = "decision"
    FAILURE = "failure"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class CycleFacts:
    """One HA cycle as far as the history is concerned, when decided or when done."""

    member: str
    role: str  # the published role: primary, replica, demoted, uninitialized ...
    leader: str | None  # the holder of the leader key after the cycle
    code: str
    text: str
    paused: bool
    # A switchover or failover was asked for (the `failover` key) when the cycle began,
    # and whether it named the leader to step down (a switchover) or not (a failover).
    requested: str | None = None  # "switchover" | "failover" | None
    failure: str | None = None


@dataclass(frozen=True)
class NewEvent:
    kind: EventKind
    code: str
    text: str


def decision_events(previous: CycleFacts | None, current: CycleFacts) -> tuple[NewEvent, ...]:
    """Recorded when the decision is taken, before its actions run (an agent that dies
    in the middle of an action still leaves what it set out to do): where the agent
    starts (`previous` None), a new role, a new reason code."""
    c = current
    if previous is None:
        return (NewEvent(EventKind.ROLE, c.code, f"agent started as {c.role}: {c.text}"),)
    p = previous
    if c.role != p.role:
        return (NewEvent(EventKind.ROLE, c.code, f"role {p.role} -> {c.role}: {c.text}"),)
    if c.code != p.code:
        return (NewEvent(EventKind.DECISION, c.code, c.text),)
    return ()


def outcome_events(previous: CycleFacts | None, current: CycleFacts) -> tuple[NewEvent, ...]:
    """Recorded once the actions ran: the leader key moving to or from this member, a
    failed action (once per distinct failure), maintenance mode switched by the leader."""
    c = current
    p = previous or replace(current, failure=None)  # the start itself is a decision event
    found: list[NewEvent] = []
    if c.leader != p.leader and c.member in (c.leader, p.leader):
        found.append(_leader_event(p, c))
    if c.failure is not None and (c.failure, c.code) != (p.failure, p.code):
        found.append(NewEvent(EventKind.FAILURE, c.code, f"{c.text}; failed: {c.failure}"))
    if c.paused != p.paused and c.leader == c.member:
        kind = EventKind.PAUSE if c.paused else EventKind.RESUME
        verb = "on" if c.paused else "off"
        found.append(NewEvent(kind, c.code, f"maintenance mode {verb}"))
    return tuple(found)


def _leader_event(p: CycleFacts, c: CycleFacts) -> NewEvent:
    """The leader key moved to or from this member: a switchover or a failover when this
    member took it from a running cluster, a plain leader event otherwise (bootstrap, a
    leader keeping its own key, a key given up)."""
    if c.leader != c.member:
        after = f"now held by {c.leader}" if c.leader else "now free"
        kind = EventKind.SWITCHOVER if c.requested == "switchover" else EventKind.LEADER
        return NewEvent(kind, c.code, f"gave up the leader key ({after}): {c.text}")
    before = f"after {p.leader}" if p.leader else "it was free"
    text = f"took the leader key ({before}): {c.text}"
    if c.requested == "switchover":
        return NewEvent(EventKind.SWITCHOVER, c.code, text)
    if c.requested == "failover" or p.role == "replica":
        return NewEvent(EventKind.FAILOVER, c.code, text)
    return NewEvent(EventKind.LEADER, c.code, text)
