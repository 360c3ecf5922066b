"""`haactl flush`: cancel a scheduled switchover or scheduled restarts (patronictl's flush).

    haactl flush switchover                 DELETE /switchover on the leader
    haactl flush [CLUSTER] [MEMBER]... restart   DELETE /restart on members

When the leader's API does not answer, a scheduled switchover is cancelled by clearing
the `failover` key in etcd (`{}`, compare-and-swap on its revision).
"""

from __future__ import annotations

import click

from haagent.cli.commands_members import choose_members
from haagent.cli.common import confirm, require_cluster, split_cluster_and_members
from haagent.cli.context import Ctl
from haagent.cli.errors import ActionFailed, BadInput
from haagent.cli.rest import ApiUnreachable, command_client
from haagent.cli.store import open_store
from haagent.dcs import codec

TARGETS = ("restart", "switchover")


async def _flush_switchover(ctl: Ctl, cluster: str, force: bool) -> None:
    async with open_store(ctl, cluster) as store, command_client(ctl) as rest:
        snap = await store.read()
        view = require_cluster(snap, store.prefix, store.conn.etcd_hosts)
        failover = view.failover
        if failover is None or failover.scheduled_at is None:
            click.echo("No switchover is scheduled")
            return
        when = failover.scheduled_at.isoformat()
        confirm(f"Cancel the switchover scheduled at {when} from {failover.leader}?", force)
        leader = view.members.get(view.leader_name or "")
        if leader is not None:
            try:
                reply = await rest.call("DELETE", leader.api_url, "/switchover", timeout=10)
            except ApiUnreachable as e:
                click.echo(f"{leader.name}'s REST API did not answer ({e}); clearing etcd instead")
            else:
                if not reply.ok:
                    raise ActionFailed(
                        f"{leader.name} refused ({reply.status}: {reply.message}); "
                        "check --user / restapi.authentication"
                    )
                click.echo(f"Success: {reply.message}")
                return
        revision = snap.revision_of(codec.FAILOVER)
        if not await store.put_if(codec.FAILOVER, codec.CLEARED_FAILOVER, revision):
            raise ActionFailed("the failover key changed meanwhile; check `haactl list`")
        click.echo("Success: scheduled switchover deleted (in etcd)")


async def _flush_restarts(ctl: Ctl, names: tuple[str, ...], force: bool) -> None:
    cluster_arg, wanted = split_cluster_and_members(names, ctl.connection.scope)
    cluster = ctl.cluster(cluster_arg)
    async with open_store(ctl, cluster) as store, command_client(ctl) as rest:
        snap = await store.read()
        view = require_cluster(snap, store.prefix, store.conn.etcd_hosts)
        members = choose_members(view, cluster, wanted, "any")
        confirm(f"Cancel the scheduled restarts of {', '.join(members)}?", force)
        failed = False
        for name in members:
            try:
                reply = await rest.call(
                    "DELETE", view.members[name].api_url, "/restart", timeout=10
                )
            except ApiUnreachable as e:
                click.echo(f"Failed: flush scheduled restart for member {name} ({e})")
                failed = True
                continue
            if reply.ok:
                click.echo(f"Success: flush scheduled restart for member {name}")
            elif reply.status == 404:
                click.echo(f"No scheduled restart for member {name}")
            else:
                click.echo(f"Failed: flush scheduled restart for member {name}: {reply.message}")
                failed = True
        if failed:
            raise ActionFailed("some scheduled restarts were not cancelled; see above")


@click.command(name="flush", short_help="Cancel a scheduled switchover or restarts.")
@click.argument("words", nargs=-1, metavar="[CLUSTER_NAME] [MEMBER]... restart|switchover")
@click.option("--force", is_flag=True, help="Do not ask.")
@click.pass_obj
def flush_command(ctl: Ctl, words: tuple[str, ...], force: bool) -> None:
    """Cancel a scheduled switchover, or members' scheduled restarts."""
    if not words or words[-1] not in TARGETS:
        raise BadInput("say what to cancel: haactl flush [CLUSTER] [MEMBER]... restart|switchover")
    target, rest = words[-1], words[:-1]
    if target == "switchover":
        cluster_arg, members = split_cluster_and_members(rest, ctl.connection.scope)
        if members:
            raise BadInput("flush switchover takes no member names")
        ctl.run(_flush_switchover(ctl, ctl.cluster(cluster_arg), force))
    else:
        ctl.run(_flush_restarts(ctl, rest, force))
