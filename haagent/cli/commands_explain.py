"""`haactl explain`: for each member, could it become the leader now, and if not, why.

The answer combines three sources: the etcd view (the same `unfit_reason()` the agents
use for a switchover, `haagent.core.fitness`: running streaming replica, no `nofailover`,
within `maximum_lag_on_failover`, synchronous when `synchronous_mode` requires it), the member's
key (timeline, lag, tags), and its REST API (does it answer at all; the last decision the
agent took, with its reason code; the watchdog state).  Reason codes are the HA engine's
(`haagent.core.reasons.Code`), plus `unreachable` and `not_a_replica`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from haagent.cli.commands_events import events_document, local_time
from haagent.cli.commands_list import MIB, config_of, role_label, state_label, system_id
from haagent.cli.common import names, require_cluster
from haagent.cli.context import Ctl
from haagent.cli.errors import ActionFailed
from haagent.cli.rest import command_client
from haagent.cli.store import Snapshot, open_store
from haagent.cli.table import Table, format_option, render
from haagent.core.fitness import member_lag, unfit_reason
from haagent.core.reasons import Code, required_watchdog_unavailable
from haagent.dcs.events import ClusterEvent, EventsRead
from haagent.dcs.model import ClusterView, Member
from haagent.rest_client import LastDecision, MemberStatus

UNREACHABLE = "unreachable"
LEADER = "leader"


@dataclass(frozen=True)
class Verdict:
    """One member's answer: can it lead now, the reasons (code, text) if not."""

    name: str
    role: str
    state: str
    timeline: int | None
    lag: int | None
    api: str
    can_lead: bool
    reasons: tuple[tuple[str, str], ...] = ()
    last_code: str | None = None
    last_text: str | None = None
    watchdog: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def code(self) -> str:
        if self.role in ("Leader", "Standby Leader"):
            return LEADER
        return self.reasons[0][0] if self.reasons else ""


def cluster_timeline(view: ClusterView) -> int | None:
    leader = view.members.get(view.leader_name or "")
    if leader is not None and leader.timeline is not None:
        return leader.timeline
    return view.last_timeline if view.history else None


def assess(view: ClusterView, member: Member, status: MemberStatus | str | None) -> Verdict:
    """`status`: the member's status, or why it could not be had."""
    config = config_of(view)
    reasons: list[tuple[str, str]] = []
    notes: list[str] = []
    is_leader = member.name == view.leader_name
    if not is_leader:
        unfit = unfit_reason(view, config, member)
        if unfit is not None:
            reasons.append((unfit.code, unfit.text))
        timeline = cluster_timeline(view)
        if member.timeline is not None and timeline is not None and member.timeline < timeline:
            reasons.append(
                (Code.TIMELINE_BEHIND.value,
                 f"{member.name} is on timeline {member.timeline}, the cluster on {timeline}: "
                 "it must rewind or be reinitialized first")
            )  # fmt: skip
    block = LastDecision()
    if isinstance(status, MemberStatus):
        api = "ok"
        block = status.haagent or block
    elif isinstance(status, str):
        api = UNREACHABLE
        text = f"its REST API does not answer ({status}): is its agent running?"
        if is_leader:
            notes.append(text)
        else:
            reasons.append((UNREACHABLE, text))
    else:
        api = "not asked"
    last_code = block.reason_code
    watchdog = block.watchdog
    if last_code == Code.WATCHDOG_UNAVAILABLE.value and not is_leader:
        reasons.append(
            (Code.WATCHDOG_UNAVAILABLE.value,
             required_watchdog_unavailable(member=member.name)
             + f" (watchdog: {watchdog or 'unknown'})")
        )  # fmt: skip
    lag = None if is_leader else member_lag(view, member)
    if not is_leader and lag is None and member.state == "running":
        notes.append("its WAL position is unknown, so its lag cannot be checked")
    return Verdict(
        name=member.name,
        role=role_label(view, config, member),
        state=state_label(view, member),
        timeline=member.timeline,
        lag=lag,
        api=api,
        can_lead=is_leader or not reasons,
        reasons=tuple(reasons),
        last_code=last_code,
        last_text=block.reason_text,
        watchdog=watchdog,
        notes=tuple(notes),
    )


def likely_successor(view: ClusterView, verdicts: list[Verdict]) -> str | None:
    """The fit member furthest ahead (then by failover_priority, then by name)."""
    fit = [view.members[v.name] for v in verdicts if v.can_lead and v.name != view.leader_name]
    fit.sort(key=lambda m: (-(m.lsn if m.lsn is not None else -1), -m.failover_priority, m.name))
    return fit[0].name if fit else None


def summary(view: ClusterView, verdicts: list[Verdict]) -> list[str]:
    config = config_of(view)
    lines: list[str] = []
    sync = "on" if config.synchronous_mode else "off"
    if config.pause:
        lines.append(
            " Automatic failover: OFF, the cluster is paused (maintenance mode); "
            "only `haactl switchover/failover --candidate` promotes a member"
        )
    else:
        lines.append(
            f" Automatic failover: on (maximum_lag_on_failover {config.maximum_lag_on_failover}"
            f" bytes, synchronous_mode {sync})"
        )
    successor = likely_successor(view, verdicts)
    leader = view.leader_name
    fit = [v.name for v in verdicts if v.can_lead and v.name != leader]
    if leader is not None:
        if successor:
            lines.append(f" If {leader} failed now: {successor} would most likely take over")
        else:
            lines.append(
                f" If {leader} failed now: no member could take over (see the reasons below)"
            )
    elif config.pause:
        lines.append(" No leader: the cluster is paused, so no member takes the key by itself")
    elif fit:
        lines.append(f" No leader: a leader race should be running (fit: {names(fit)})")
    else:
        lines.append(" No leader, and no member is fit to take over: fix the reasons below")
    failover = view.failover
    if failover is not None:
        when = f" at {failover.scheduled_at.isoformat()}" if failover.scheduled_at else " now"
        lines.append(
            f" Requested: {'switchover' if failover.leader else 'failover'}{when} from "
            f"{failover.leader or '(no leader)'} to {failover.candidate or 'any fit member'}"
        )
    return lines


def details(verdicts: list[Verdict]) -> list[str]:
    lines: list[str] = []
    for v in verdicts:
        pad = " " * (len(v.name) + 3)
        if v.code == LEADER:
            head = "holds the leader key"
        elif v.can_lead:
            head = "could take over now"
        else:
            head = v.reasons[0][1]
        lines.append(f" {v.name}: {head}")
        lines.extend(f"{pad}{text}" for _, text in v.reasons[1:])
        lines.extend(f"{pad}note: {note}" for note in v.notes)
        if v.last_code or v.last_text:
            lines.append(f"{pad}last decision: {v.last_code or '?'}: {v.last_text or ''}".rstrip())
        if v.watchdog and v.watchdog not in ("off", "disabled"):
            lines.append(f"{pad}watchdog: {v.watchdog}")
    return lines


RECENT_EVENTS = 5


def recent_lines(recent: Sequence[ClusterEvent]) -> list[str]:
    if not recent:
        return []
    lines = ["", "recent events (haactl events for more):"]
    lines += [f"  {local_time(e.time)} {e.member} {e.kind} {e.code}: {e.text}" for e in recent]
    return lines


def explain_table(
    snapshot: Snapshot, verdicts: list[Verdict], recent: Sequence[ClusterEvent] = ()
) -> Table:
    rows = [
        [
            v.name,
            v.role,
            v.state,
            v.timeline,
            None if v.lag is None else round(v.lag / MIB, 1),
            v.api,
            "leader" if v.code == LEADER else "yes" if v.can_lead else "no",
            v.code if v.code != LEADER else "",
        ]
        for v in verdicts
    ]
    return Table(
        columns=["Member", "Role", "State", "TL", "Lag in MB", "API", "Can lead", "Reason"],
        rows=rows,
        title=f"Cluster: {snapshot.scope} ({system_id(snapshot.view)})",
        right=frozenset({"TL", "Lag in MB"}),
        footer=[*summary(snapshot.view, verdicts), "", *details(verdicts), *recent_lines(recent)],
    )


def explain_document(
    snapshot: Snapshot, verdicts: list[Verdict], recent: Sequence[ClusterEvent] = ()
) -> dict[str, Any]:
    view = snapshot.view
    return {
        "cluster": snapshot.scope,
        "system_identifier": view.initialize,
        "leader": view.leader_name,
        "paused": config_of(view).pause,
        "likely_successor": likely_successor(view, verdicts),
        "summary": [line.strip() for line in summary(view, verdicts)],
        "members": [
            {
                "name": v.name,
                "role": v.role,
                "state": v.state,
                "timeline": v.timeline,
                "lag_bytes": v.lag,
                "api": v.api,
                "can_lead": v.can_lead,
                "reason_code": v.code or None,
                "reasons": [{"code": c, "text": t} for c, t in v.reasons],
                "notes": list(v.notes),
                "last_decision": {"code": v.last_code, "text": v.last_text},
                "watchdog": v.watchdog,
            }
            for v in verdicts
        ],
        "recent_events": events_document(EventsRead(tuple(recent))),
    }


async def _explain(ctl: Ctl, cluster: str, fmt: str, ask_api: bool) -> None:
    async with open_store(ctl, cluster) as store, command_client(ctl) as rest:
        snapshot = await store.read()
        view = require_cluster(snapshot, store.prefix, store.conn.etcd_hosts)
        members = [view.members[n] for n in sorted(view.members)]
        statuses: dict[str, MemberStatus | str] = {}
        if ask_api:
            statuses = await rest.statuses(members)
        try:
            recent = (await store.events(member=None, since=None)).events[-RECENT_EVENTS:]
        except ActionFailed:
            recent = ()  # the history is a convenience here: explain stands without it
    verdicts = [assess(view, m, statuses.get(m.name)) for m in members]
    table = explain_table(snapshot, verdicts, recent)
    if fmt in ("json", "yaml"):
        click.echo(render(table, fmt, explain_document(snapshot, verdicts, recent)))
    else:
        click.echo(render(table, fmt))


@click.command(name="explain", short_help="Why each member could (not) become leader now.")
@click.argument("cluster_name", required=False)
@format_option()
@click.option("--no-api", is_flag=True, help="Do not ask the members' REST APIs (etcd only).")
@click.pass_obj
def explain_command(ctl: Ctl, cluster_name: str | None, fmt: str, no_api: bool) -> None:
    """Why each member could or could not become the leader now."""
    ctl.run(_explain(ctl, ctl.cluster(cluster_name), fmt, not no_api))
