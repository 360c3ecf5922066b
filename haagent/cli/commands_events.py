"""`haactl events`: what happened in the cluster, from every member's event history.

Each agent appends its role changes, leader-key changes, changes of decision,
failed actions, switchovers, failovers, pauses and resumes to its own ring of
keys in etcd (`haagent.dcs.events`); this command merges the rings in time
order.  It reads etcd only, so it works while any member (or all of them) is down.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from haagent.cli.context import Ctl
from haagent.cli.errors import BadInput
from haagent.cli.store import open_store
from haagent.cli.table import Table, format_option, render
from haagent.config.parse import is_member_name
from haagent.dcs.events import EventsRead, event_document, parse_since
from haagent.postgres.lsn import format_lsn

SINCE_HELP = "Only events from this long ago (90s, 30min, 2h, 1d) or this time (ISO 8601)."


def local_time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).astimezone().isoformat(timespec="milliseconds")


def events_table(scope: str, read: EventsRead) -> Table:
    rows = [
        [
            local_time(e.time), e.member, e.kind, e.code, e.timeline,
            None if e.lsn is None else format_lsn(e.lsn), e.text,
        ]
        for e in read.events
    ]  # fmt: skip
    footer = []
    if read.skipped:
        footer.append(f"{read.skipped} unreadable event value(s) in etcd skipped")
    return Table(
        columns=["Time", "Member", "Kind", "Code", "TL", "LSN", "Text"],
        rows=rows,
        title=f"Cluster: {scope} events",
        right=frozenset({"TL"}),
        footer=footer,
    )


def events_document(read: EventsRead) -> list[dict[str, object]]:
    return [event_document(e) for e in read.events]


async def _events(ctl: Ctl, cluster: str, since: str | None, member: str | None, fmt: str) -> None:
    if member is not None and not is_member_name(member):
        raise BadInput(f"--member {member!r} is not a member name")
    try:
        start = None if since is None else parse_since(since, datetime.now().astimezone())
    except ValueError as e:
        raise BadInput(f"--{e}") from None
    async with open_store(ctl, cluster) as store:
        read = await store.events(member=member, since=start)
    table = events_table(cluster, read)
    if fmt in ("json", "yaml"):
        click.echo(render(table, fmt, events_document(read)))
    else:
        click.echo(render(table, fmt))


@click.command(name="events", short_help="Show what happened in the cluster, in time order.")
@click.argument("cluster_name", required=False)
@click.option("--since", help=SINCE_HELP)
@click.option("--member", help="Only this member's events.")
@format_option()
@click.pass_obj
def events_command(
    ctl: Ctl, cluster_name: str | None, since: str | None, member: str | None, fmt: str
) -> None:
    """Show the cluster's event history: role changes, leader changes, switchovers,
    failovers, failed actions, pauses and resumes, with reason codes, from every member."""
    ctl.run(_events(ctl, ctl.cluster(cluster_name), since, member, fmt))
