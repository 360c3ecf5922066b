"""`haactl`: the operator's CLI for a haagent (or Patroni) cluster on etcd v3.

    haactl -c /etc/haagent/node1.yml list
    haactl --dcs-url etcd3://127.0.0.1:2379 --scope stampede explain
    HAACTL_CONFIG=/etc/haagent/node1.yml haactl switchover --candidate node2

Commands take an optional CLUSTER_NAME (default: the config's scope), as patronictl's do.
Exit status: 0 success, 1 the action failed, 2 bad usage.
"""

from __future__ import annotations

from pathlib import Path

import click

from haagent import __version__
from haagent.cli import (
    commands_cluster_role,
    commands_config,
    commands_events,
    commands_explain,
    commands_flush,
    commands_info,
    commands_list,
    commands_members,
    commands_pause,
    commands_remove,
    commands_switchover,
)
from haagent.cli.context import Ctl, Options

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(name="haactl", context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="haactl", message="%(prog)s %(version)s")
@click.option(
    "-c",
    "--config-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar=["HAACTL_CONFIG", "PATRONICTL_CONFIG_FILE"],
    help="A node's YAML config (or a short one with scope, etcd3, ctl). Env: HAACTL_CONFIG.",
)
@click.option(
    "-d",
    "--dcs-url",
    "--dcs",
    metavar="URL",
    help="etcd endpoints instead of the config's etcd3.hosts: etcd3://h1:2379,h2:2379.",
)
@click.option("--scope", envvar="HAACTL_SCOPE", help="The cluster name when not in the config.")
@click.option("--namespace", help="The etcd namespace (default /service/).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    help="Seconds an etcd call may take (default: the config's retry_timeout, else 10).",
)
@click.option("-k", "--insecure", is_flag=True, help="Do not verify the REST API's certificate.")
@click.option(
    "--user",
    envvar="HAACTL_USER",
    metavar="USER",
    help="REST API user (default: restapi.authentication); the password comes from "
    "HAACTL_PASSWORD. Env: HAACTL_USER (USER:PASSWORD there is accepted).",
)
@click.option(
    "--password", envvar="HAACTL_PASSWORD", hidden=True, help="REST API password (env only)."
)
@click.option("--cacert", type=click.Path(path_type=Path), help="CA file for the REST API's TLS.")
@click.option("--cert", type=click.Path(path_type=Path), help="Client certificate for the API.")
@click.option("--key", type=click.Path(path_type=Path), help="Key of the client certificate.")
@click.pass_context
def main(
    ctx: click.Context,
    config_file: Path | None,
    dcs_url: str | None,
    scope: str | None,
    namespace: str | None,
    timeout: float | None,
    insecure: bool,
    user: str | None,
    password: str | None,
    cacert: Path | None,
    cert: Path | None,
    key: Path | None,
) -> None:
    """Inspect and operate a haagent (or Patroni) PostgreSQL cluster.

    Exit status: 0 success, 1 the action failed, 2 bad usage.
    """
    for name, shown in (("user", "--user USER:PASSWORD"), ("password", "--password")):
        value = user if name == "user" else password
        from_argv = ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        if from_argv and (name == "password" or (value and ":" in value)):
            raise click.UsageError(
                f"{shown} puts the password on the command line, where every user of this "
                "host can read it (ps); pass --user USER and set HAACTL_PASSWORD instead"
            )
    options = Options(
        config_file=config_file,
        dcs_url=dcs_url,
        scope=scope,
        namespace=namespace,
        timeout=timeout,
        insecure=insecure,
        user=user,
        password=password,
        cacert=cacert,
        cert=cert,
        key=key,
    )
    # Tests hand in a Ctl (with an in-memory etcd) as `obj`; keep its backend.
    given = ctx.obj if isinstance(ctx.obj, Ctl) else None
    ctx.obj = Ctl(options, given.backend_factory, given.rest_transport) if given else Ctl(options)


for command in (
    commands_list.list_command,
    commands_list.topology_command,
    commands_switchover.switchover_command,
    commands_switchover.failover_command,
    commands_members.restart_command,
    commands_members.reinit_command,
    commands_members.reload_command,
    commands_pause.pause_command,
    commands_pause.resume_command,
    commands_cluster_role.demote_cluster_command,
    commands_cluster_role.promote_cluster_command,
    commands_flush.flush_command,
    commands_config.show_config_command,
    commands_config.edit_config_command,
    commands_info.history_command,
    commands_events.events_command,
    commands_info.dsn_command,
    commands_info.query_command,
    commands_info.version_command,
    commands_remove.remove_command,
    commands_explain.explain_command,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
