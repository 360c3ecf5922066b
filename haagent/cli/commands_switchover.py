"""`haactl switchover` and `haactl failover`.

Missing options are asked for with the obvious default (the current leader; any fit
member; now), the cluster is shown and the change confirmed unless `--force`.  The
request goes to the leader's REST API (the candidate's when there is no leader); when
that API does not answer, the `failover` key is written in etcd instead (compare-and-swap)
and haactl watches etcd for the outcome.  Either way it reports who leads now and how
long the handover took.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from haagent.cli.commands_list import config_of, render_cluster
from haagent.cli.common import (
    Stopwatch,
    confirm,
    example_time,
    names,
    parse_when,
    require_cluster,
    require_member,
    stamp,
)
from haagent.cli.context import Ctl
from haagent.cli.errors import ActionFailed, BadInput
from haagent.cli.rest import ApiUnreachable, RestClient, command_client
from haagent.cli.store import Snapshot, Store, open_store
from haagent.core.fitness import unfit_reason
from haagent.dcs import codec
from haagent.dcs.model import ClusterView


def _timeout(view: ClusterView) -> float:
    """How long a handover may take: the agents' own limit plus a margin."""
    return max(30.0, 2.0 * config_of(view).ttl) + 15.0


def _leader_option(leader: str | None, master: str | None) -> str | None:
    if leader and master and leader != master:
        raise BadInput(f"--leader {leader} and --master {master} differ; give one of them")
    return leader or master


async def _api_request(
    rest: RestClient, snap: Snapshot, via: str, path: str, body: dict[str, Any]
) -> tuple[int, str] | None:
    """POST to `via`'s API: (status, message), or None when it did not answer."""
    member = snap.view.members[via]
    try:
        reply = await rest.call("POST", member.api_url, path, body, timeout=_timeout(snap.view))
    except ApiUnreachable as e:
        click.echo(f"{via}'s REST API did not answer ({e}); writing the failover key instead")
        return None
    if reply.status in (401, 403):
        raise ActionFailed(
            f"{via}'s REST API refused the request ({reply.status}: {reply.message}); "
            "check --user / HAACTL_USER or restapi.authentication in the config"
        )
    return reply.status, reply.message


async def _last_decision(rest: RestClient, snap: Snapshot, name: str | None) -> str:
    member = snap.view.members.get(name or "")
    if member is None:
        return ""
    try:
        status = await rest.status(member.api_url)
    except ApiUnreachable:
        return ""
    text = status.haagent.reason_text if status.haagent is not None else None
    return f" ({name}: {text})" if text else ""


async def handover(
    store: Store,
    rest: RestClient,
    snap: Snapshot,
    *,
    kind: str,
    leader: str | None,
    candidate: str | None,
    when: datetime | None,
) -> None:
    """Ask for the switchover/failover, wait for the outcome and report it."""
    view = snap.view
    clock = Stopwatch()
    via = leader or candidate
    assert via is not None
    body: dict[str, Any] = {"leader": leader} if leader else {}
    if candidate:
        body["candidate"] = candidate
    if when is not None:
        body["scheduled_at"] = when.isoformat()
    answer = await _api_request(rest, snap, via, f"/{kind}", body)
    if answer is not None:
        status, message = answer
        if status == 202:
            click.echo(f"{stamp()} {message}")
            return
        if not 200 <= status < 300:
            raise ActionFailed(f"{kind} failed: {via} answered {status}: {message}")
    else:
        value = codec.encode_failover(leader, candidate, when)
        if not await store.put_if(codec.FAILOVER, value, snap.revision_of(codec.FAILOVER)):
            raise ActionFailed(
                "the failover key changed while haactl was writing it (another request?); "
                "check `haactl list` and try again"
            )
        if when is not None:
            click.echo(f"{stamp()} {kind} scheduled at {when.isoformat()} (written to etcd)")
            return

    final = await store.wait_for(lambda s: _moved(s, leader, candidate), _timeout(view))
    new = final.view.leader_name if final else None
    if final is None or new is None or new == leader or candidate not in (None, new):
        why = await _last_decision(rest, final or snap, leader)
        raise ActionFailed(
            f"{kind} did not happen within {clock.seconds:.1f}s: the leader is "
            f"{new or 'nobody'}{why}; see `haactl list` and `haactl explain`"
        )
    running = await store.wait_for(lambda s: _runs_as_primary(s, new), _timeout(view))
    if running is None:
        why = await _last_decision(rest, final, new)
        raise ActionFailed(
            f"{new} took the leader key but does not run as primary after "
            f"{clock.seconds:.1f}s{why}; see `haactl list` and `haactl explain`"
        )
    verb = "switched over" if kind == "switchover" else "failed over"
    click.echo(f'{stamp()} Successfully {verb} to "{new}" in {clock.seconds:.1f}s')
    click.echo(render_cluster(running))


def _moved(s: Snapshot, leader: str | None, candidate: str | None) -> bool:
    """The leader key moved as asked, or the old leader refused (cleared the request)."""
    now = s.view.leader_name
    if now is not None and now != leader and candidate in (None, now):
        return True
    return s.view.failover is None and now is not None and now == leader


def _runs_as_primary(s: Snapshot, name: str) -> bool:
    member = s.view.members.get(name)
    return (
        s.view.leader_name == name
        and member is not None
        and member.role == "primary"
        and member.state == "running"
    )


def _check_fit(view: ClusterView, candidate: str | None, leader: str, strict: bool) -> None:
    config = config_of(view)
    if candidate is not None:
        why = unfit_reason(view, config, view.members[candidate])
        if why is not None and strict:
            raise ActionFailed(
                f"{candidate} cannot take over now: {why}; see `haactl explain`, "
                "or pick another --candidate"
            )
        if why is not None:
            click.echo(f"Warning: {why}; the agents may refuse it", err=True)
        return
    fit = [n for n, m in view.members.items() if n != leader and not unfit_reason(view, config, m)]
    if not fit and strict:
        raise ActionFailed(
            "no member could take over now (none is a running streaming replica within "
            "maximum_lag_on_failover); see `haactl explain`"
        )


async def _switchover(
    ctl: Ctl,
    cluster: str,
    leader: str | None,
    candidate: str | None,
    scheduled: str | None,
    force: bool,
) -> None:
    async with open_store(ctl, cluster) as store, command_client(ctl) as rest:
        snap = await store.read()
        view = require_cluster(snap, store.prefix, store.conn.etcd_hosts)
        config = config_of(view)
        current = view.leader_name
        if current is None:
            raise ActionFailed(
                f"cluster {cluster} has no leader, so there is nothing to switch over; "
                "use `haactl failover --candidate NAME`"
            )
        if leader is None:
            leader = current if force else click.prompt("Primary", default=current)
        require_member(view, leader, cluster, "leader")
        if leader != current:
            raise BadInput(
                f"{leader} is not the leader of cluster {cluster} (the leader is {current}); "
                f"pass --leader {current}"
            )
        others = [n for n in sorted(view.members) if n != current]
        if candidate is None and not force:
            candidate = click.prompt(f"Candidate {others}", default="", show_default=False) or None
        if candidate is not None:
            require_member(view, candidate, cluster, "candidate")
            if candidate == leader:
                raise BadInput(
                    f"leader and candidate are the same member ({leader}); "
                    f"name another --candidate ({names(others)})"
                )
        if config.pause and candidate is None:
            raise BadInput(
                f"cluster {cluster} is paused (maintenance mode): a switchover needs "
                f"--candidate NAME ({names(others)}), or `haactl resume` first"
            )
        if scheduled is None and not force:
            scheduled = click.prompt(
                f"When should the switchover take place (e.g. {example_time()})", default="now"
            )
        when = parse_when(scheduled, "switchover")
        if config.pause and when is not None:
            raise BadInput("a switchover cannot be scheduled in maintenance mode; run it now")
        _check_fit(view, candidate, leader, strict=when is None)
        if not force:
            click.echo(render_cluster(snap))
            confirm(
                f"Are you sure you want to switchover cluster {cluster}, "
                f"demoting current leader {current}?",
                force,
            )
        await handover(
            store, rest, snap, kind="switchover", leader=leader, candidate=candidate, when=when
        )


async def _failover(
    ctl: Ctl, cluster: str, leader: str | None, candidate: str | None, force: bool
) -> None:
    async with open_store(ctl, cluster) as store, command_client(ctl) as rest:
        snap = await store.read()
        view = require_cluster(snap, store.prefix, store.conn.etcd_hosts)
        current = view.leader_name
        if leader is not None:
            require_member(view, leader, cluster, "leader")
            if leader != current:
                raise BadInput(
                    f"{leader} is not the leader of cluster {cluster} "
                    f"(the leader is {current or 'nobody'}); leave --leader out"
                )
        others = [n for n in sorted(view.members) if n != current]
        if candidate is None:
            if force:
                raise BadInput(
                    f"failover needs --candidate NAME ({names(others)}); "
                    "to let the cluster choose, use `haactl switchover`"
                )
            candidate = click.prompt(f"Candidate {others}", default="", show_default=False)
            if not candidate:
                raise BadInput(f"failover needs a candidate ({names(others)})")
        require_member(view, candidate, cluster, "candidate")
        if candidate == current:
            raise BadInput(
                f"{candidate} is already the leader; name another --candidate ({names(others)})"
            )
        _check_fit(view, candidate, current or "", strict=current is not None)
        if not force:
            click.echo(render_cluster(snap))
            question = f"Are you sure you want to failover cluster {cluster}"
            question += f", demoting current leader {current}?" if current else "?"
            confirm(question, force)
        await handover(
            store, rest, snap, kind="failover", leader=current, candidate=candidate, when=None
        )


_LEADER = click.option("--leader", "--primary", "leader", help="The current leader.")
_MASTER = click.option("--master", "master", hidden=True, help="Old name of --leader.")
_FORCE = click.option("--force", is_flag=True, help="Do not ask; use defaults for the rest.")


@click.command(name="switchover", short_help="Hand the leader role to another member.")
@click.argument("cluster_name", required=False)
@_LEADER
@_MASTER
@click.option("--candidate", help="The member to take over (default: the best fit one).")
@click.option("--scheduled", help="When: ISO-8601 (local time if no zone) or 'now'.")
@_FORCE
@click.pass_obj
def switchover_command(
    ctl: Ctl,
    cluster_name: str | None,
    leader: str | None,
    master: str | None,
    candidate: str | None,
    scheduled: str | None,
    force: bool,
) -> None:
    """Hand the leader role to another member (planned; the leader is healthy)."""
    leader = _leader_option(leader, master)
    if leader is not None and leader == candidate:
        raise BadInput(f"leader and candidate are the same member ({leader}); name another one")
    ctl.run(_switchover(ctl, ctl.cluster(cluster_name), leader, candidate, scheduled, force))


@click.command(name="failover", short_help="Promote a chosen member now.")
@click.argument("cluster_name", required=False)
@_LEADER
@_MASTER
@click.option("--candidate", help="The member to promote (required).")
@_FORCE
@click.pass_obj
def failover_command(
    ctl: Ctl,
    cluster_name: str | None,
    leader: str | None,
    master: str | None,
    candidate: str | None,
    force: bool,
) -> None:
    """Promote a chosen member now, with or without a healthy leader."""
    leader = _leader_option(leader, master)
    if leader is not None and leader == candidate:
        raise BadInput(f"leader and candidate are the same member ({leader}); name another one")
    ctl.run(_failover(ctl, ctl.cluster(cluster_name), leader, candidate, force))
