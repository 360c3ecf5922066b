"""`haactl list` and `haactl topology`: the members as etcd shows them.

Read straight from etcd (one range read), so the table is complete while any member's
agent or REST API is down.  Columns as in `patronictl list`: Member, Host, Role (Leader,
Sync Standby, Quorum Standby, Replica), State, TL, Lag in MB; "Pending restart",
"Scheduled restart" and "Tags" appear when they have something to say (or with `-e`).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import click

from haagent.cli.context import Ctl
from haagent.cli.errors import ActionFailed
from haagent.cli.store import Snapshot, Store, open_store
from haagent.cli.table import Table, format_option, render
from haagent.config.model import DynamicConfig
from haagent.core import topology
from haagent.core.fitness import member_lag
from haagent.dcs.model import ClusterView, Member
from haagent.postgres.slots import SLOT_LOST_CODE

MIB = 1024 * 1024


async def pause(seconds: float) -> None:
    """The wait between two refreshes of a watch."""
    await asyncio.sleep(seconds)


def config_of(view: ClusterView) -> DynamicConfig:
    return view.config if view.config is not None else DynamicConfig()


def host_of(member: Member) -> str:
    """The PostgreSQL host of `member`, with the port when it is not 5432 (the conn_url as
    published when it names no host)."""
    address = member.host_port
    if address is None:
        return member.conn_url
    host, port = address
    return f"{host}:{port}" if port not in (None, 5432) else host


def role_label(view: ClusterView, config: DynamicConfig, member: Member) -> str:
    """`ClusterView.member_role` in patronictl's words, and what a key holder's view
    alone does not say (a primary without the key, a demoted or uninitialized node)."""
    role = view.member_role(member, config.synchronous, quorum=config.quorum)
    if role == "leader":
        return "Leader"
    if role == "standby_leader":
        return "Standby Leader"
    if member.role in ("primary", "master") and member.state == "running":
        return "Primary (no leader key)"
    if role == "sync_standby":
        return "Sync Standby"
    if role == "quorum_standby":
        return "Quorum Standby"
    if member.role == "demoted":
        return "Demoted"
    if member.role == "uninitialized":
        return "Uninitialized"
    return "Replica"


def state_label(view: ClusterView, member: Member) -> str:
    return view.member_state(member)


def lag_mb(view: ClusterView, member: Member) -> float | str | None:
    """Lag in MiB (1 decimal), "unknown" when a position is unknown, None for the leader."""
    if member.name == view.leader_name:
        return None
    lag = member_lag(view, member)
    return "unknown" if lag is None else round(lag / MIB, 1)


def system_id(view: ClusterView) -> str:
    if view.initialize is None:
        return "uninitialized"
    return view.initialize or "initializing"


def tree_order(view: ClusterView) -> list[tuple[int, Member]]:
    """Members depth-first from the leader, each under the member it streams from as the
    agents decide it (`core.topology.upstream`: `replicatefrom` while the named member
    runs); a `nostream` member under the leader."""
    members = view.members
    children: dict[str | None, list[str]] = {}
    leader = view.leader_name if view.leader_name in members else None
    for name in sorted(members):
        if name == leader:
            continue
        source = topology.upstream(view, name, members[name].tags, standby_cluster=False)
        parent = source if source in members and source != name else leader
        children.setdefault(parent, []).append(name)
    order: list[tuple[int, Member]] = []
    seen: set[str] = set()

    def walk(name: str, depth: int) -> None:
        if name in seen:
            return
        seen.add(name)
        order.append((depth, members[name]))
        for child in children.get(name, []):
            walk(child, depth + 1)

    roots = [leader] if leader else children.get(None, [])
    for root in roots:
        walk(root, 0)
    for name in sorted(members):  # members of a replicatefrom cycle
        walk(name, 1 if leader else 0)
    return order


def footer(view: ClusterView) -> list[str]:
    lines: list[str] = []
    if config_of(view).pause:
        lines.append(" Maintenance mode: on")
    failover = view.failover
    if failover is not None and failover.scheduled_at is not None:
        lines.append(f" Switchover scheduled at: {failover.scheduled_at.isoformat()}")
        if failover.leader:
            lines.append(f"                    from: {failover.leader}")
        if failover.candidate:
            lines.append(f"                      to: {failover.candidate}")
    elif failover is not None:
        kind = "Switchover" if failover.leader else "Failover"
        lines.append(
            f" {kind} requested: {failover.leader or '(no leader)'} -> "
            f"{failover.candidate or 'any fit member'}"
        )
    for slot in view.status.lost_slots:
        lines.append(
            f" Replication slot {slot} on {view.leader_name or 'the leader'} is lost "
            f"({SLOT_LOST_CODE}): PostgreSQL removed WAL it needed; see that member's log"
        )
    if view.leader is None and view.members:
        lines.append(" No member holds the leader key (see `haactl explain`)")
    return lines


def cluster_table(snapshot: Snapshot, *, extended: bool = False, tree: bool = False) -> Table:
    view = snapshot.view
    config = config_of(view)
    members: Sequence[tuple[int, Member]]
    if tree:
        members = tree_order(view)
    else:
        members = [(0, view.members[name]) for name in sorted(view.members)]
    pending = extended or any(m.pending_restart for _, m in members)
    scheduled = extended or any(m.scheduled_restart for _, m in members)
    tags = extended
    columns = ["Member", "Host", "Role", "State", "TL", "Lag in MB"]
    columns += ["Pending restart"] * pending + ["Scheduled restart"] * scheduled + ["Tags"] * tags
    rows: list[list[Any]] = []
    for depth, member in members:
        name = ("  " * (depth - 1) + "+ " if depth else "") + member.name
        row: list[Any] = [
            name,
            host_of(member),
            role_label(view, config, member),
            state_label(view, member),
            member.timeline,
            lag_mb(view, member),
        ]
        if pending:
            row.append(member.pending_restart)
        if scheduled:
            row.append((member.scheduled_restart or {}).get("schedule"))
        if tags:
            row.append(", ".join(f"{k}: {v}" for k, v in sorted(member.tags.items())) or None)
        rows.append(row)
    return Table(
        columns=columns,
        rows=rows,
        title=f"Cluster: {snapshot.scope} ({system_id(view)})",
        right=frozenset({"TL", "Lag in MB"}),
        footer=footer(view),
    )


def render_cluster(snapshot: Snapshot, fmt: str = "pretty", **kwargs: Any) -> str:
    table = cluster_table(snapshot, **kwargs)
    if fmt == "pretty":
        return render(table, fmt)
    with_cluster = Table(
        columns=["Cluster", *table.columns],
        rows=[[snapshot.scope, *row] for row in table.rows],
    )
    return render(with_cluster, fmt)


def _show(store: Store, fmt: str, extended: bool, tree: bool) -> Callable[[], Awaitable[str]]:
    async def read() -> str:
        snapshot = await store.read()
        if not snapshot.exists:
            raise ActionFailed(
                f"cluster {store.scope!r} has no keys under {store.prefix} in etcd at "
                f"{store.conn.etcd_hosts}; check the cluster name (scope) and namespace"
            )
        return render_cluster(snapshot, fmt, extended=extended, tree=tree)

    return read


async def _watch(
    ctl: Ctl, cluster: str, fmt: str, extended: bool, tree: bool, timestamp: bool, every: float
) -> None:
    async with open_store(ctl, cluster) as store:
        show = _show(store, fmt, extended, tree)
        while True:
            try:
                text = await show()
            except ActionFailed as e:
                text = f"Error: {e.format_message()}"
            if sys.stdout.isatty():
                click.clear()
            if timestamp or every:
                click.echo(datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"))
            click.echo(text)
            if not every:
                return
            await pause(every)


def _list_options(command: Any) -> Any:
    decorators: list[Callable[[Any], Any]] = [
        click.argument("cluster_name", required=False),
        click.option("-e", "--extended", is_flag=True, help="Show tags and restart columns."),
        click.option("-t", "--timestamp", is_flag=True, help="Print the time first."),
        format_option(),
        click.option("-W", "watch_2", is_flag=True, help="Refresh every 2 seconds."),
        click.option(
            "-w", "--watch", type=click.FloatRange(min=0.1), help="Refresh every N seconds."
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _run_list(
    ctl: Ctl,
    cluster_name: str | None,
    extended: bool,
    timestamp: bool,
    fmt: str,
    watch_2: bool,
    watch: float | None,
    tree: bool,
) -> None:
    every = watch or (2.0 if watch_2 else 0.0)
    cluster = ctl.cluster(cluster_name)
    if not every:

        async def once() -> None:
            async with open_store(ctl, cluster) as store:
                if timestamp:
                    click.echo(datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"))
                click.echo(await _show(store, fmt, extended, tree)())

        ctl.run(once())
        return
    try:
        ctl.run(_watch(ctl, cluster, fmt, extended, tree, timestamp, every))
    except KeyboardInterrupt:
        return


@click.command(name="list")
@_list_options
@click.pass_obj
def list_command(
    ctl: Ctl,
    cluster_name: str | None,
    extended: bool,
    timestamp: bool,
    fmt: str,
    watch_2: bool,
    watch: float | None,
) -> None:
    """Show the cluster's members, read straight from etcd."""
    _run_list(ctl, cluster_name, extended, timestamp, fmt, watch_2, watch, tree=False)


@click.command(name="topology")
@_list_options
@click.pass_obj
def topology_command(
    ctl: Ctl,
    cluster_name: str | None,
    extended: bool,
    timestamp: bool,
    fmt: str,
    watch_2: bool,
    watch: float | None,
) -> None:
    """Like list, with replicas under the member they stream from."""
    _run_list(ctl, cluster_name, extended, timestamp, fmt, watch_2, watch, tree=True)
