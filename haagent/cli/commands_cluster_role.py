"""`haactl demote-cluster` and `promote-cluster`: a primary cluster becomes a standby
cluster of another one, and back, with patronictl's flags and prompts.

Both `PATCH /config` the leader's REST API with the `standby_cluster` section (null to
promote), then wait until the leader key's holder shows the new role (`standby_leader`
or `primary`) and runs, and (demoting) the old leader runs again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from haagent.cli.commands_list import config_of, render_cluster
from haagent.cli.common import confirm, require_cluster
from haagent.cli.context import Ctl
from haagent.cli.errors import ActionFailed, BadInput
from haagent.cli.rest import ApiUnreachable, command_client
from haagent.cli.store import Snapshot, open_store


def _leader_role(snap: Snapshot) -> tuple[str | None, str | None]:
    view = snap.view
    leader = view.members.get(view.leader_name or "")
    return (leader.role, leader.state) if leader is not None else (None, None)


async def _change_role(ctl: Ctl, cluster: str, force: bool, standby: dict[str, Any] | None) -> None:
    demote = standby is not None
    verb, target = ("demote", "standby_leader") if demote else ("promote", "primary")
    async with open_store(ctl, cluster) as store, command_client(ctl) as rest:
        snap = await store.read()
        view = require_cluster(snap, store.prefix, store.conn.etcd_hosts)
        leader_name = view.leader_name
        if leader_name is None or leader_name not in view.members:
            raise ActionFailed(f"cluster {cluster} has no leader, {verb}ion is not possible")
        if _leader_role(snap)[0] == target:
            raise ActionFailed(f"cluster {cluster} is already in the required state ({target})")
        click.echo("Current cluster topology")
        click.echo(render_cluster(snap))
        confirm(f"Are you sure you want to {verb} {cluster} cluster?", force)
        try:
            reply = await rest.call(
                "PATCH",
                view.members[leader_name].api_url,
                "/config",
                {"standby_cluster": standby},
                timeout=10,
            )
        except ApiUnreachable as e:
            raise ActionFailed(f"failed to {verb} {cluster} cluster: {e}") from None
        if not reply.ok:
            raise ActionFailed(
                f"failed to {verb} {cluster} cluster: PATCH /config answered {reply.status} "
                f"({reply.message})"
            )
        config = config_of(view)
        timeout = 2.0 * config.ttl + 60.0

        def done(s: Snapshot) -> bool:
            role, state = _leader_role(s)
            if s.view.leader is None or role != target or state != "running":
                return False
            old = s.view.members.get(leader_name)
            return not demote or (old is not None and old.state == "running")

        final = await store.wait_for(done, timeout, interval=1.0)
        if final is None:
            late = await store.read()
            role, state = _leader_role(late)
            raise ActionFailed(
                f"{cluster} did not finish within {timeout:.0f}s: leader "
                f"{late.view.leader_name or '(none)'}, role {role}, state {state}; "
                "see `haactl explain`"
            )
        now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{now} cluster is successfully {verb}d")
        click.echo(render_cluster(final))


@click.command(name="demote-cluster", short_help="Demote the cluster to a standby cluster.")
@click.argument("cluster_name", required=False)
@click.option("--force", is_flag=True, help="Do not ask.")
@click.option("--host", help="Address of the remote node.")
@click.option("--port", type=int, help="Port of the remote node.")
@click.option("--restore-command", help="Command to restore WAL records from the remote primary.")
@click.option("--primary-slot-name", help="Name of the slot on the remote node to use.")
@click.pass_obj
def demote_cluster_command(
    ctl: Ctl,
    cluster_name: str | None,
    force: bool,
    host: str | None,
    port: int | None,
    restore_command: str | None,
    primary_slot_name: str | None,
) -> None:
    """Make this cluster a standby cluster of a remote primary (`standby_cluster`): its
    leader follows the remote primary as the standby leader, rewound where needed."""
    if not any((host, port, restore_command)):
        raise BadInput("at least --host, --port or --restore-command should be specified")
    values = {
        "host": host,
        "port": port,
        "primary_slot_name": primary_slot_name,
        "restore_command": restore_command,
    }
    standby = {k: v for k, v in values.items() if v}
    ctl.run(_change_role(ctl, ctl.cluster(cluster_name), force, standby))


@click.command(name="promote-cluster", short_help="Promote a standby cluster to run standalone.")
@click.argument("cluster_name", required=False)
@click.option("--force", is_flag=True, help="Do not ask.")
@click.pass_obj
def promote_cluster_command(ctl: Ctl, cluster_name: str | None, force: bool) -> None:
    """Make this standby cluster a primary cluster: its standby leader is promoted."""
    ctl.run(_change_role(ctl, ctl.cluster(cluster_name), force, None))
