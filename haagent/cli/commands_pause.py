"""`haactl pause` and `resume`: maintenance mode on and off.

They set `pause` in the DCS config: `PATCH /config` through a member's API (the
leader's first), or a compare-and-swap write of the `config` key when no API answers;
`--wait` waits until every member's key shows the new state.
"""

from __future__ import annotations

import json

import click

from haagent.cli.commands_list import config_of
from haagent.cli.common import names, require_cluster
from haagent.cli.context import Ctl
from haagent.cli.errors import ActionFailed
from haagent.cli.rest import ApiUnreachable, command_client
from haagent.cli.store import open_store
from haagent.config.model import DynamicConfig
from haagent.dcs import codec


def _wait_timeout(config: DynamicConfig) -> float:
    """How long the members may take to show a pause: two loops and a retry, plus margin."""
    return 2.0 * config.loop_wait + config.retry_timeout + 10.0


async def _set_pause(ctl: Ctl, cluster: str, pause: bool, wait: bool) -> None:
    word = "paused" if pause else "resumed"
    async with open_store(ctl, cluster) as store, command_client(ctl) as rest:
        snap = await store.read()
        view = require_cluster(snap, store.prefix, store.conn.etcd_hosts)
        config = config_of(view)
        if config.pause == pause:
            state = "paused" if pause else "not paused"
            raise ActionFailed(f"cluster {cluster} is already {state}; nothing to do")
        if not pause and view.leader_name is None:
            click.echo(
                f"Warning: no member of cluster {cluster} holds the leader key; once resumed, "
                "the members race for it and the winner runs the primary (a primary without "
                "the key that loses the race is demoted)",
                err=True,
            )
        order = sorted(view.members, key=lambda n: (n != view.leader_name, n))
        done = False
        for name in order:
            try:
                reply = await rest.call(
                    "PATCH", view.members[name].api_url, "/config", {"pause": pause}, timeout=10
                )
            except ApiUnreachable:
                continue
            if reply.ok:
                done = True
                break
            raise ActionFailed(
                f"{name} refused the change ({reply.status}: {reply.message}); "
                "check --user / restapi.authentication, then try again"
            )
        if not done:
            current = snap.json_value(codec.CONFIG)
            current = dict(current) if isinstance(current, dict) else {}
            current["pause"] = pause
            value = json.dumps(current, separators=(",", ":")).encode()
            if not await store.put_if(codec.CONFIG, value, snap.revision_of(codec.CONFIG)):
                raise ActionFailed("the config changed meanwhile; run the command again")
            click.echo("No REST API answered; wrote the config key in etcd instead")
        if not wait:
            click.echo(f"Success: cluster management is {word}")
            return
        click.echo(f"'{'pause' if pause else 'resume'}' request sent, waiting until it is "
                   "recognized by all nodes")  # fmt: skip
        timeout = _wait_timeout(config)
        final = await store.wait_for(
            lambda s: all(m.pause == pause for m in s.view.members.values()), timeout
        )
        if final is None:
            late = await store.read()
            behind = [n for n, m in late.view.members.items() if m.pause != pause]
            raise ActionFailed(
                f"cluster management is {word} in etcd, but {names(behind)} did not show it "
                f"within {timeout:.0f}s; check those agents (`haactl explain`)"
            )
        click.echo(f"Success: cluster management is {word}")


@click.command(name="pause", short_help="Maintenance mode: no automatic failover.")
@click.argument("cluster_name", required=False)
@click.option("--wait", is_flag=True, help="Wait until every member shows the pause.")
@click.pass_obj
def pause_command(ctl: Ctl, cluster_name: str | None, wait: bool) -> None:
    """Maintenance mode: the agents stop failing over, starting and stopping PostgreSQL."""
    ctl.run(_set_pause(ctl, ctl.cluster(cluster_name), True, wait))


@click.command(name="resume")
@click.argument("cluster_name", required=False)
@click.option("--wait", is_flag=True, help="Wait until every member shows the resume.")
@click.pass_obj
def resume_command(ctl: Ctl, cluster_name: str | None, wait: bool) -> None:
    """Leave maintenance mode: automatic failover is on again."""
    ctl.run(_set_pause(ctl, ctl.cluster(cluster_name), False, wait))
