"""`haactl remove`: delete every key of a cluster from etcd.

It asks for the cluster's name, then a phrase, then (when the cluster is healthy) the
leader's name; anything else typed leaves every key in place.
"""

from __future__ import annotations

import click

from haagent.cli.common import names, require_cluster
from haagent.cli.context import Ctl
from haagent.cli.errors import ActionFailed
from haagent.cli.store import open_store


async def _remove(ctl: Ctl, cluster: str) -> None:
    async with open_store(ctl, cluster) as store:
        snapshot = await store.read()
        view = require_cluster(snapshot, store.prefix, store.conn.etcd_hosts)
        typed = click.prompt("Please confirm the cluster name to remove", default="")
        if typed != cluster:
            raise ActionFailed("Cluster names specified do not match; nothing was removed")
        phrase = "Yes I am aware"
        typed = click.prompt(
            f"You are about to remove all information in etcd for {cluster} "
            f'({store.prefix}), please type: "{phrase}"',
            default="",
        )
        if typed != phrase:
            raise ActionFailed("You did not exactly type the phrase; nothing was removed")
        leader = view.members.get(view.leader_name or "")
        if leader is not None and leader.state == "running":
            typed = click.prompt(
                "This cluster currently is healthy. Please specify the leader's name to proceed",
                default="",
            )
            if typed != leader.name:
                raise ActionFailed(f"{typed!r} is not the leader; nothing was removed")
        await store.delete_cluster()
    click.echo(f"Cluster {cluster} removed from etcd ({store.prefix})")
    if view.members:
        click.echo(
            f"Stop the agents of {names(view.members)} before bootstrapping again, "
            "or they write their keys back"
        )


@click.command(name="remove", short_help="Delete every key of the cluster from etcd.")
@click.argument("cluster_name", required=False)
@click.pass_obj
def remove_command(ctl: Ctl, cluster_name: str | None) -> None:
    """Delete every key of the cluster from etcd (asks for the name and a phrase)."""
    ctl.run(_remove(ctl, ctl.cluster(cluster_name)))
