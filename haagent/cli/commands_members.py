"""`haactl restart`, `reinit` and `reload`: actions on chosen members.

Each chosen member's REST API is called and one line per member is printed
(`Success: ...` / `Failed: ...`); any failure makes the exit status 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import click

from haagent.cli.commands_list import render_cluster
from haagent.cli.common import (
    confirm,
    example_time,
    names,
    parse_when,
    require_cluster,
    require_member,
    split_cluster_and_members,
)
from haagent.cli.context import Ctl
from haagent.cli.errors import ActionFailed, BadInput
from haagent.cli.rest import ApiUnreachable, RestClient, command_client
from haagent.cli.store import Snapshot, open_store
from haagent.dcs.model import ClusterView, Member

ROLES = ("leader", "primary", "master", "standby-leader", "replica", "any")
RESTART_ROLES = {"leader": "primary", "master": "primary", "standby-leader": "standby_leader"}


def member_role(view: ClusterView, member: Member) -> str:
    if member.name == view.leader_name:
        return "standby-leader" if member.role == "standby_leader" else "primary"
    return "replica"


def choose_members(view: ClusterView, scope: str, wanted: Sequence[str], role: str) -> list[str]:
    """The named members (all when none is named), filtered by role."""
    for name in wanted:
        require_member(view, name, scope)
    chosen = list(wanted) or sorted(view.members)
    want = {"leader": "primary", "master": "primary"}.get(role, role)
    if want != "any":
        chosen = [n for n in chosen if member_role(view, view.members[n]) == want]
    if not chosen:
        raise BadInput(
            f"no member of cluster {scope} matches (role {role}, members {names(wanted)}); "
            "check `haactl list`"
        )
    return chosen


async def _post_each(
    rest: RestClient,
    view: ClusterView,
    members: Sequence[str],
    path: str,
    body: dict[str, Any] | None,
    what: str,
    timeout: float,
    *,
    accepted_is_done: bool = False,
) -> bool:
    """POST to each member in turn; True when every one succeeded.

    202 means "scheduled", except with `accepted_is_done` (a reload: the agent re-read its
    config before answering 202, the code Patroni answers it with)."""
    ok = True
    for name in members:
        member = view.members[name]
        try:
            reply = await rest.call("POST", member.api_url, path, body, timeout=timeout)
        except ApiUnreachable as e:
            click.echo(f"Failed: {what} for member {name}: its REST API did not answer ({e})")
            ok = False
            continue
        if reply.status == 202 and not accepted_is_done:
            click.echo(f"Success: {what} scheduled on member {name}: {reply.message}")
        elif reply.ok:
            click.echo(f"Success: {what} on member {name}: {reply.message}")
        else:
            click.echo(
                f"Failed: {what} for member {name}, status code={reply.status}, ({reply.message})"
            )
            ok = False
    return ok


async def _members_action(
    ctl: Ctl,
    arguments: Sequence[str],
    role: str,
    force: bool,
    what: str,
    act: Callable[[RestClient, Snapshot, list[str]], Awaitable[bool]],
    ask: Callable[[], None] | None = None,
) -> None:
    """Resolve CLUSTER/MEMBER..., ask the questions, confirm, and `act` on the members."""
    cluster_arg, wanted = split_cluster_and_members(arguments, ctl.connection.scope)
    cluster = ctl.cluster(cluster_arg)
    async with open_store(ctl, cluster) as store, command_client(ctl) as rest:
        snap = await store.read()
        view = require_cluster(snap, store.prefix, store.conn.etcd_hosts)
        members = choose_members(view, cluster, wanted, role)
        if ask is not None:
            ask()
        if not force:
            click.echo(render_cluster(snap))
        confirm(f"Are you sure you want to {what} members {', '.join(members)}?", force)
        if not await act(rest, snap, members):
            raise ActionFailed(f"{what} failed on some members; see the lines above")


_ROLE = click.option(
    "--role",
    type=click.Choice(ROLES),
    default="any",
    show_default=True,
    help="Only members with this role.",
)
_FORCE = click.option("--force", is_flag=True, help="Do not ask.")
_NAMES = click.argument("names", nargs=-1, metavar="[CLUSTER_NAME] [MEMBER]...")


@click.command(name="restart")
@_NAMES
@_ROLE
@click.option("--scheduled", help="When: ISO-8601 (local time if no zone) or 'now'.")
@click.option("--pending", is_flag=True, help="Only members with a pending restart.")
@click.option("--pg-version", help="Only members running an older PostgreSQL (e.g. 16.2).")
@click.option("--timeout", "pg_timeout", type=float, help="Seconds to wait for PostgreSQL.")
@_FORCE
@click.pass_obj
def restart_command(
    ctl: Ctl,
    names: tuple[str, ...],
    role: str,
    scheduled: str | None,
    pending: bool,
    pg_version: str | None,
    pg_timeout: float | None,
    force: bool,
) -> None:
    """Restart PostgreSQL on members (all when none is named)."""
    body: dict[str, Any] = {}
    if pending:
        body["restart_pending"] = True
    if pg_version:
        body["postgres_version"] = pg_version
    if pg_timeout is not None:
        body["timeout"] = pg_timeout
    if role != "any":
        body["role"] = RESTART_ROLES.get(role, role)
    timeout = (pg_timeout or 120.0) + 30.0
    when = parse_when(scheduled, "restart")

    def ask() -> None:
        nonlocal when
        if scheduled is None and not force:
            answer = click.prompt(
                f"When should the restart take place (e.g. {example_time()})", default="now"
            )
            when = parse_when(answer, "restart")

    async def run(rest: RestClient, snap: Snapshot, members: list[str]) -> bool:
        if when is not None:
            body["schedule"] = when.isoformat()
        if pending:
            members = [n for n in members if snap.view.members[n].pending_restart]
            if not members:
                click.echo("No member has a pending restart")
                return True
        return await _post_each(rest, snap.view, members, "/restart", body, "restart", timeout)

    ctl.run(_members_action(ctl, names, role, force, "restart", run, ask))


@click.command(name="reinit", short_help="Copy a replica's data again from the cluster.")
@_NAMES
@click.option("--from-leader", is_flag=True, help="Copy from the leader, not any member.")
@click.option("--wait", is_flag=True, help="Wait until the new copy runs.")
@_FORCE
@click.pass_obj
def reinit_command(
    ctl: Ctl, names: tuple[str, ...], from_leader: bool, wait: bool, force: bool
) -> None:
    """Throw away a replica's data and copy it again from the cluster."""

    async def run(rest: RestClient, snap: Snapshot, members: list[str]) -> bool:
        leader = snap.view.leader_name
        if leader in members:
            raise ActionFailed(
                f"{leader} is the leader: it cannot be reinitialized (switch over first)"
            )
        body = {"force": force, "from_leader": from_leader}
        ok = True
        for name in members:
            post = _post_each(rest, snap.view, [name], "/reinitialize", body, "reinitialize", 3600)
            if wait:
                ok = await post and ok
                continue
            try:  # the agent answers when the copy is done: don't block on it without --wait
                ok = await asyncio.wait_for(post, 10.0) and ok
            except TimeoutError:
                click.echo(f"Success: reinitialize of member {name} started; follow `haactl list`")
        return ok

    if not names:
        raise BadInput("name the member(s) to reinitialize: haactl reinit [CLUSTER] MEMBER...")
    ctl.run(_members_action(ctl, names, "any", force, "reinitialize", run))


@click.command(name="reload", short_help="Make members reload their config.")
@_NAMES
@_ROLE
@_FORCE
@click.pass_obj
def reload_command(ctl: Ctl, names: tuple[str, ...], role: str, force: bool) -> None:
    """Make members re-read their config file (and reload PostgreSQL)."""

    async def run(rest: RestClient, snap: Snapshot, members: list[str]) -> bool:
        return await _post_each(
            rest, snap.view, members, "/reload", None, "reload", 30.0, accepted_is_done=True
        )

    ctl.run(_members_action(ctl, names, role, force, "reload", run))
