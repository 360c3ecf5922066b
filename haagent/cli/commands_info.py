"""`haactl history`, `dsn`, `query` and `version`: what the cluster is, and reaching it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from haagent import __version__
from haagent.cli.common import require_cluster, require_member, split_cluster_and_members
from haagent.cli.context import Ctl
from haagent.cli.errors import ActionFailed, BadInput
from haagent.cli.rest import command_client
from haagent.cli.store import open_store
from haagent.cli.table import Table, format_option, render
from haagent.core.fitness import member_lag
from haagent.dcs.model import ClusterView, Member
from haagent.rest_client import MemberStatus

DSN_ROLES = ("leader", "primary", "master", "replica", "standby-leader", "any")

# -- history ---------------------------------------------------------------------------


async def _history(ctl: Ctl, cluster: str, fmt: str) -> None:
    async with open_store(ctl, cluster) as store:
        snapshot = await store.read()
    require_cluster(snapshot, store.prefix, store.conn.etcd_hosts)
    rows = [[e.timeline, e.lsn, e.reason, e.timestamp, e.new_leader] for e in snapshot.view.history]
    table = Table(
        columns=["TL", "LSN", "Reason", "Timestamp", "New Leader"],
        rows=sorted(rows, key=lambda r: int(r[0])),
        right=frozenset({"TL", "LSN"}),
    )
    click.echo(render(table, fmt))


@click.command(name="history", short_help="Show the timeline history.")
@click.argument("cluster_name", required=False)
@format_option()
@click.pass_obj
def history_command(ctl: Ctl, cluster_name: str | None, fmt: str) -> None:
    """Show the timeline history: each failover or switchover, when and to whom."""
    ctl.run(_history(ctl, ctl.cluster(cluster_name), fmt))


# -- dsn -------------------------------------------------------------------------------


def pick_member(view: ClusterView, scope: str, role: str, member: str | None) -> Member:
    """The member a connection should go to: by name, else by role."""
    if member is not None:
        require_member(view, member, scope)
        return view.members[member]
    leader = view.members.get(view.leader_name or "")
    if role in ("leader", "primary", "master", "standby-leader"):
        if leader is None:
            raise ActionFailed(f"cluster {scope} has no leader now; see `haactl list`")
        return leader
    running = [
        m for m in view.members.values() if m.state == "running" and m.name != view.leader_name
    ]
    running.sort(key=lambda m: (member_lag(view, m) is None, member_lag(view, m) or 0, m.name))
    if role == "replica":
        if not running:
            raise ActionFailed(f"cluster {scope} has no running replica; see `haactl list`")
        return running[0]
    candidates = ([leader] if leader is not None else []) + running
    if not candidates:
        raise ActionFailed(f"cluster {scope} has no running member; see `haactl list`")
    return candidates[0]


def host_port(member: Member) -> tuple[str, int]:
    address = member.host_port
    if address is None:
        raise ActionFailed(f"{member.name} publishes no usable conn_url ({member.conn_url!r})")
    host, port = address
    return host, port or 5432


def dsn_of(member: Member) -> str:
    host, port = host_port(member)
    return f"host={host} port={port}"


async def _dsn(ctl: Ctl, cluster: str, role: str, member: str | None) -> None:
    async with open_store(ctl, cluster) as store:
        snapshot = await store.read()
    view = require_cluster(snapshot, store.prefix, store.conn.etcd_hosts)
    click.echo(dsn_of(pick_member(view, cluster, role, member)))


_DSN_ROLE = click.option(
    "-r", "--role", type=click.Choice(DSN_ROLES), default="primary", show_default=True,
    help="Which member: the leader, the least lagging replica, or any running one.",
)  # fmt: skip
_MEMBER = click.option("-m", "--member", help="This member, whatever its role.")


@click.command(name="dsn", short_help="Print a libpq connection string.")
@click.argument("cluster_name", required=False)
@_DSN_ROLE
@_MEMBER
@click.pass_obj
def dsn_command(ctl: Ctl, cluster_name: str | None, role: str, member: str | None) -> None:
    """Print a libpq connection string for the leader (or a replica)."""
    ctl.run(_dsn(ctl, ctl.cluster(cluster_name), role, member))


# -- query -----------------------------------------------------------------------------


def sql_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def run_query(
    dsn: dict[str, Any], sql: str, timeout: float
) -> tuple[list[str], list[Sequence[Any]], str]:
    import psycopg

    try:
        with psycopg.connect(**dsn, connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
            cursor = conn.execute(sql.encode("utf-8"))
            if cursor.description is None:
                return [], [], cursor.statusmessage or ""
            columns = [c.name for c in cursor.description]
            return columns, list(cursor.fetchall()), cursor.statusmessage or ""
    except psycopg.Error as e:
        message = " ".join(str(e).split())
        raise ActionFailed(f"query on {dsn['host']}:{dsn['port']} failed: {message}") from None


@click.command(name="query", short_help="Run SQL on the leader or a replica.")
@click.argument("cluster_name", required=False)
@_DSN_ROLE
@_MEMBER
@click.option("-c", "--command", "sql", help="The SQL to run.")
@click.option("--file", "sql_file", type=click.File("r"), help="Read the SQL from a file.")
@click.option("-U", "--username", help="Database user (default: the config's superuser).")
@click.option("--password", is_flag=True, help="Ask for the password.")
@click.option("-d", "--dbname", default="postgres", show_default=True)
@format_option(default="tsv")
@click.pass_obj
def query_command(
    ctl: Ctl,
    cluster_name: str | None,
    role: str,
    member: str | None,
    sql: str | None,
    sql_file: Any,
    username: str | None,
    password: bool,
    dbname: str,
    fmt: str,
) -> None:
    """Run SQL on the leader (or a replica, or a named member)."""
    if (sql is None) == (sql_file is None):
        raise BadInput("give the SQL with -c 'SELECT ...' or --file FILE (one of them)")
    text = sql if sql is not None else sql_file.read()
    conn = ctl.connection

    async def target() -> Member:
        cluster = ctl.cluster(cluster_name)
        async with open_store(ctl, cluster) as store:
            snapshot = await store.read()
        view = require_cluster(snapshot, store.prefix, store.conn.etcd_hosts)
        return pick_member(view, cluster, role, member)

    chosen = ctl.run(target())
    host, port = host_port(chosen)
    superuser = conn.superuser
    dsn: dict[str, Any] = {"host": host, "port": port, "dbname": dbname}
    user = username or (superuser.username if superuser else None)
    if user:
        dsn["user"] = user
    if password:
        dsn["password"] = click.prompt(
            f"Password for {user or 'the database user'}", hide_input=True
        )
    elif superuser and superuser.password and user == superuser.username:
        dsn["password"] = superuser.password
    if superuser and user == superuser.username:
        dsn.update(superuser.libpq)  # its TLS client certificate and the like
    columns, rows, status = run_query(dsn, text, conn.retry_timeout)
    if not columns:
        click.echo(status)
        return
    if fmt in ("pretty", "tsv"):  # as psql shows them: t/f, NULL as nothing
        rows = [[sql_text(v) for v in row] for row in rows]
    click.echo(render(Table(columns=columns, rows=rows), fmt))


# -- version ---------------------------------------------------------------------------


def pg_version(number: Any) -> str:
    if not isinstance(number, int) or number <= 0:
        return "unknown"
    if number >= 100000:
        return f"{number // 10000}.{number % 10000}"
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def describe_status(status: MemberStatus) -> str:
    product = "haagent" if status.haagent is not None else "Patroni"
    version = status.version or "?"
    return f"{product} {version} PostgreSQL {pg_version(status.server_version)}"


async def _versions(ctl: Ctl, cluster: str, wanted: Sequence[str]) -> None:
    async with open_store(ctl, cluster) as store, command_client(ctl) as rest:
        snapshot = await store.read()
        view = require_cluster(snapshot, store.prefix, store.conn.etcd_hosts)
        for name in wanted:
            require_member(view, name, cluster)
        members = [view.members[n] for n in (wanted or sorted(view.members))]
        statuses = await rest.statuses(members)
    for member in members:
        body = statuses[member.name]
        text = (
            describe_status(body)
            if isinstance(body, MemberStatus)
            else f"REST API unreachable ({body})"
        )
        click.echo(f"{member.name}: {text}")


@click.command(name="version", short_help="Show haactl's and the members' versions.")
@click.argument("names", nargs=-1, metavar="[CLUSTER_NAME] [MEMBER]...")
@click.pass_obj
def version_command(ctl: Ctl, names: tuple[str, ...]) -> None:
    """Print haactl's version, and the members' (agent and PostgreSQL)."""
    click.echo(f"haactl version {__version__}")
    options = ctl.options
    if not (names or options.config_file or options.dcs_url or options.scope):
        return
    cluster_arg, wanted = split_cluster_and_members(names, ctl.connection.scope)
    ctl.run(_versions(ctl, ctl.cluster(cluster_arg), wanted))
